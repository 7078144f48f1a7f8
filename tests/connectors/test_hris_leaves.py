"""Leave records from an HR REST API (connectors.hris.leaves) against a real HTTP server."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from orgsync.config import Config, config_from_dict
from orgsync.errors import ConfigError, SourceError
from orgsync.leave_sync import read_leave_data
from tests.connectors.json_server import Call, JsonServer, Reply

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def leave(i: int) -> dict[str, Any]:
    """One leave in the generic test shape (ids are numbers, as many APIs send them)."""
    return {"id": i, "employee": {"id": f"{i % 50:05d}"}, "from": f"2026-12-{1 + i % 28:02d}",
            "to": f"2026-12-{1 + i % 28:02d}", "type": {"name": "年假"}, "state": "approved"}


LEAVES = [leave(i) for i in range(230)]


def config(tmp_path: Path, source: dict[str, Any]) -> Config:
    return config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
                             "source": {"type": "csv"}, "ledger": {"url": "sqlite:///l.db"},
                             "leave": {"source": {"type": "hris", **source}}},
                            base_dir=tmp_path)


def generic(url: str) -> dict[str, Any]:
    return {"base_url": url, "auth": {"type": "bearer", "token": "t0ken"},
            "leaves": {"path": "/leaves", "records": "data",
                       "params": {"from": "{today}", "to": "{horizon}"},
                       "pagination": {"type": "offset", "size": 100, "total": "total"}},
            "mapping": {"leave_id": "id", "employee_id": "employee.id", "start": "from",
                        "end": "to", "kind": "type.name", "status": "state"}}


def test_every_page_is_read_and_mapped_through_the_shared_mapping(tmp_path: Path) -> None:
    def handle(call: Call) -> Reply:
        assert call.headers["authorization"] == "Bearer t0ken"
        # yesterday to a day past the 60-day window
        assert (call.query["from"], call.query["to"]) == ("2026-11-30", "2027-01-31")
        offset, limit = int(call.query["offset"]), int(call.query["limit"])
        return Reply(body={"data": LEAVES[offset:offset + limit], "total": len(LEAVES)})

    with JsonServer(handle) as srv:
        data = read_leave_data(config(tmp_path, generic(srv.url)), NOW)
        pages = len(srv.calls)
    assert pages == 3
    assert (len(data.records), data.issues) == (230, [])
    first = data.records["7"]
    assert (first.employee_id, first.start, first.end, first.kind, first.approved, first.where) \
        == ("00007", date(2026, 12, 8), date(2026, 12, 8), "年假", True,
            "hris leaves:page 1 item 8")


def test_a_bad_record_is_held_and_a_failed_page_fails_the_read(tmp_path: Path) -> None:
    bad = [{**leave(1), "to": "2026-11-01"}, {**leave(2), "employee": {}}]
    with JsonServer(lambda c: Reply(body={"data": bad, "total": 2})) as srv:
        data = read_leave_data(config(tmp_path, generic(srv.url)), NOW)
    assert [str(i) for i in data.issues] == [
        "hris leaves:page 1 item 1: leave 1: end 2026-11-01 is before start 2026-12-02 (held)",
        "hris leaves:page 1 item 2: leave 2: employee_id is empty (held)"]
    assert data.held == {"1", "2"}

    def second_page_fails(call: Call) -> Reply:
        if call.query["offset"] == "0":
            return Reply(body={"data": LEAVES[:100], "total": 230})
        return Reply(500, {"error": "boom"})

    with JsonServer(second_page_fails) as srv, pytest.raises(SourceError, match="page 2"):
        read_leave_data(config(tmp_path, {**generic(srv.url), "max_retries": 0}), NOW)


def test_the_bamboohr_preset_reads_time_off_requests(tmp_path: Path) -> None:
    requests = [
        {"id": "1", "employeeId": "4", "status": {"status": "approved"}, "start": "2026-12-24",
         "end": "2026-12-26", "type": {"id": "78", "name": "Vacation"}},
        {"id": "2", "employeeId": "5", "status": {"status": "canceled"}, "start": "2026-12-24",
         "end": "2026-12-24", "type": {"id": "79", "name": "Sick"}},
        {"id": "3", "employeeId": "6", "status": {"status": "requested"},
         "start": "2026-12-28", "end": "2026-12-28", "type": {"id": "78", "name": "Vacation"}},
    ]

    def handle(call: Call) -> Reply:
        assert (call.method, call.path) == ("GET", "/api/gateway.php/acme/v1/time_off/requests/")
        assert call.query == {"start": "2026-11-30", "end": "2027-01-31"}
        assert call.headers["accept"] == "application/json"
        if call.headers.get("authorization") != "Basic YXBpLWtleTp4":  # api-key:x
            return Reply(401, {})
        return Reply(body=requests)

    with JsonServer(handle) as srv:
        data = read_leave_data(config(tmp_path, {
            "preset": "bamboohr", "base_url": f"{srv.url}/api/gateway.php/acme/v1",
            "auth": {"username": "api-key"}}), NOW)
    assert data.issues == []
    assert {k: (r.employee_id, r.kind, r.approved) for k, r in data.records.items()} == {
        "1": ("4", "Vacation", True), "2": ("5", "Sick", False), "3": ("6", "Vacation", False)}


def test_a_missing_mapping_field_fails_fast_naming_the_key(tmp_path: Path) -> None:
    source = generic("https://hr.example.com")
    del source["mapping"]["employee_id"]
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, source)
    assert exc.value.key == "leave.source.mapping.employee_id"
