"""Source outage: HRIS/LDAP unreachable, timing out or truncated — never a delete.

A good HRIS read is applied first; then each outage is met by an applying run, which
must raise :class:`SourceError` and leave Feishu exactly as it was (zero writes).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from orgsync.config import config_from_dict
from orgsync.errors import SourceError
from orgsync.ledger import Ledger
from orgsync.runner import run_once
from orgsync.sandbox import SandboxServer
from tests.connectors.json_server import Call, JsonServer, Reply
from tests.torture.harness import SCALE, dump, report, writes

PEOPLE = [{"id": f"{i:05d}", "name": f"员工{i}", "email": f"e{i}@example.com",
           "mobile": f"+86138{i:08d}", "dept": "研发中心/平台部" if i % 2 else "销售部",
           "boss": None if i == 0 else "00000"} for i in range(30)]
PAGING = {"type": "offset", "size": 10, "total": "total"}


def _source(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "hris", "base_url": url, "backoff": 0.01, "max_retries": 1, "timeout": 0.3,
            "employees": {"path": "/people", "records": "data", "pagination": PAGING},
            "departments": {"from": "path", "field": "dept"},
            "mapping": {"employees": {"key": "id", "name": "name", "email": "email",
                                      "mobile": "mobile", "manager_key": "boss"}}, **extra}


def _config(sb: SandboxServer, tmp: Path, source: dict[str, Any]) -> Any:
    return config_from_dict({
        "version": 1,
        "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": sb.config.app_secret, "rate_scale": SCALE},
        "source": source, "ledger": {"url": f"sqlite:///{tmp / 'l.db'}"},
        "sync": {"leaver_action": "delete"}}, file="<torture>", base_dir=tmp)


def _good(call: Call) -> Reply:
    offset, limit = int(call.query["offset"]), int(call.query["limit"])
    return Reply(body={"data": PEOPLE[offset:offset + limit], "total": len(PEOPLE)})


def _truncated(call: Call) -> Reply:
    offset, limit = int(call.query["offset"]), int(call.query["limit"])
    return Reply(body={"data": PEOPLE[offset:min(offset + limit, 10)], "total": len(PEOPLE)})


def _shrunk(call: Call) -> Reply:
    """A consistent but two-thirds-short answer (a filter gone wrong upstream)."""
    offset, limit = int(call.query["offset"]), int(call.query["limit"])
    return Reply(body={"data": PEOPLE[:10][offset:offset + limit], "total": 10})


def _empty(call: Call) -> Reply:
    return Reply(body={"data": [], "total": 0})


def _slow(call: Call) -> Reply:
    return Reply(body={"data": []}, delay=1.0)


def _error(call: Call) -> Reply:
    return Reply(status=503, body={"error": "maintenance"}) if call.query["offset"] != "0" \
        else _good(call)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


OUTAGES = {
    "truncated": _truncated, "shrunk": _shrunk, "empty": _empty, "timeout": _slow,
    "5xx-mid-pagination": _error,
}


@pytest.mark.timeout(120)
def test_source_outages_never_delete(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Down, timing out, 5xx mid-pages, truncated, empty, LDAP down: SourceError and zero writes."""
    sandbox.configure(rate_scale=SCALE)
    with JsonServer(_good) as srv:
        ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
        first = asyncio.run(run_once(_config(sandbox, tmp_path, _source(srv.url)), ledger,
                                     apply=True))
        assert first.exit_code == 0
    before = dump(sandbox)
    writes_before = len(writes(sandbox))
    assert len(before["users"]) == len(PEOPLE)
    tried: list[str] = []

    def refused(source: dict[str, Any], name: str) -> None:
        with pytest.raises(SourceError) as err:
            asyncio.run(run_once(_config(sandbox, tmp_path, source), ledger, apply=True))
        assert str(err.value), name
        tried.append(name)

    for name, handler in OUTAGES.items():
        with JsonServer(handler) as srv:
            refused(_source(srv.url), name)
    refused(_source(f"http://127.0.0.1:{_free_port()}"), "hris-down")
    refused({"type": "ldap", "preset": "openldap", "url": f"ldap://127.0.0.1:{_free_port()}",
             "base_dn": "dc=example,dc=com", "timeout": 1}, "ldap-down")
    ledger.close()
    assert len(writes(sandbox)) == writes_before  # not one write, let alone a delete
    assert dump(sandbox)["users"] == before["users"]
    report("outage", outages=tried, deletes=0, writes=0)
