"""Leave marks end to end: leave file → plan → time-off events in the sandbox (real socket)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from orgsync.errors import SourceError
from orgsync.explain import explain, render_text
from orgsync.feishu import FeishuClient
from orgsync.leave_sync import LeaveOutcome, run_leave, stored_marks
from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from tests.connectors.json_server import JsonServer, Reply
from tests.daemon_proc import InProcessDaemon, wait_for
from tests.sandbox_run import config, run

NOW = datetime(2026, 12, 20, 2, 0, tzinfo=UTC)
EMPLOYEES = ("employee_id,name,email,mobile,department_ids,city\n"
             "E1,张伟,e1@example.com,+8613800000001,D1,北京\n"
             "E2,Anna Smith,e2@example.com,+8613800000002,D1,London\n"
             "E3,李娜,e3@example.com,+8613800000003,D1,上海\n")
HEADER = "leave_id,employee_id,start,end,kind,status\n"


@pytest.fixture(name="fast_sandbox")
def _fast_sandbox(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=10.0)
    return sandbox


class Org:
    """A synced three-person org with a leave file, and helpers to run leave sync."""

    def __init__(self, sb: SandboxServer, tmp: Path, **leave: Any) -> None:
        self.sb = sb
        self.src = tmp
        (tmp / "departments.csv").write_text("department_id,name,parent_id\nD1,研发部,\n",
                                             encoding="utf-8")
        (tmp / "employees.csv").write_text(EMPLOYEES, encoding="utf-8")
        self.leaves(HEADER)
        self.cfg = config(sb, tmp, tmp / "l.db", leave={
            "source": {"type": "csv", "file": str(tmp / "leaves.csv")},
            "city_timezones": {"London": "Europe/London"}, **leave})
        self.ledger = Ledger(self.cfg.ledger.url)
        assert run(self.cfg, self.ledger).exit_code == 0

    def leaves(self, text: str) -> None:
        (self.src / "leaves.csv").write_text(text, encoding="utf-8")

    def sync(self, at: datetime = NOW, **kw: Any) -> LeaveOutcome:
        async def go() -> LeaveOutcome:
            async with FeishuClient(self.cfg.feishu) as client:
                return await run_leave(self.cfg, self.ledger, client, apply=True, now=at, **kw)
        return asyncio.run(go())

    def events(self) -> list[dict[str, Any]]:
        """The time-off events in the sandbox's state dump (over the socket)."""
        reply = httpx.get(self.sb.base_url + "/_sandbox/state",
                          headers={"Authorization": f"Bearer {self.sb.config.app_secret}"})
        events: list[dict[str, Any]] = reply.json()["data"]["timeoff_events"]
        return sorted(events, key=lambda e: (e["user_id"], e["start_time"]))

    def calls(self) -> int:
        return sum(1 for r in self.sb.requests() if "timeoff_events" in r["path"])


def shown(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(e["user_id"], e["timezone"], e["start_time"], e["end_time"]) for e in events]


def test_all_day_and_hourly_leave_show_and_a_second_run_makes_no_call(
        fast_sandbox: SandboxServer, tmp_path: Path) -> None:
    org = Org(fast_sandbox, tmp_path)
    org.leaves(HEADER + "L1,E1,2026-12-24,2026-12-25,年假,approved\n"
                        "L2,E3,2026-12-22T14:00+08:00,2026-12-22T18:00+08:00,病假,\n")
    outcome = org.sync()
    assert (outcome.exit_code, outcome.done) == (0, {"leave.create": 2})
    events = org.events()
    assert shown(events) == [("E1", "Asia/Shanghai", "2026-12-24", "2026-12-25"),
                             ("E3", "Asia/Shanghai", "1797919200", "1797933600")]
    assert events[0]["title"] == "请假：年假 / On leave: 年假"
    assert events[1]["description"] == ("李娜 请假 2026-12-22 14:00 – 2026-12-22 18:00 / "
                                         "李娜 is on leave 2026-12-22 14:00 – 2026-12-22 18:00")
    ids = {k: m.event_id for k, m in stored_marks(org.ledger).items()}
    assert ids == {"L1": events[0]["timeoff_event_id"], "L2": events[1]["timeoff_event_id"]}
    calls = org.calls()
    again = org.sync()
    assert (again.plan.operations, org.calls() - calls) == ([], 0)


def test_timezones_without_and_with_daylight_saving(fast_sandbox: SandboxServer,
                                                    tmp_path: Path) -> None:
    """London (BST/GMT) by city, Shanghai (no DST) by default: an all-day leave over the
    October change ends at midnight London time, an hourly one keeps its instants."""
    org = Org(fast_sandbox, tmp_path, person_timezones={"E3": "America/New_York"})
    org.leaves(HEADER + "L1,E2,2026-10-24,2026-10-25,Annual,approved\n"
                        "L2,E2,2026-10-26T09:00+00:00,2026-10-26T10:00+00:00,Doctor,\n"
                        "L3,E3,2026-11-01,2026-11-01,Sick,\n")
    at = datetime(2026, 10, 20, tzinfo=UTC)
    org.sync(at)
    assert shown(org.events()) == [
        ("E2", "Europe/London", "1793005200", "1793008800"),
        ("E2", "Europe/London", "2026-10-24", "2026-10-25"),
        ("E3", "America/New_York", "2026-11-01", "2026-11-01")]
    marks = stored_marks(org.ledger)
    # The last day ends at 00:00 GMT on the 26th (the clocks went back on the 25th) and
    # New York's 1 November ends at 05:00 UTC on the 2nd (EST from that morning).
    assert marks["L1"].ends_at == datetime(2026, 10, 26, 0, 0, tzinfo=UTC)
    assert marks["L3"].ends_at == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)
    # Cancelled after it ended: past leave is left alone.
    org.leaves(HEADER + "L1,E2,2026-10-24,2026-10-25,Annual,cancelled\n"
                        "L2,E2,2026-10-26T09:00+00:00,2026-10-26T10:00+00:00,Doctor,\n"
                        "L3,E3,2026-11-01,2026-11-01,Sick,\n")
    assert org.sync(datetime(2026, 10, 26, 0, 30, tzinfo=UTC)).plan.operations == []
    assert len(org.events()) == 3


def test_change_cancel_and_vanish(fast_sandbox: SandboxServer, tmp_path: Path) -> None:
    org = Org(fast_sandbox, tmp_path)
    org.leaves(HEADER + "L1,E1,2026-12-24,2026-12-25,年假,\nL2,E2,2026-12-28,2026-12-28,Sick,\n"
                        "L3,E3,2027-01-04,2027-01-05,婚假,\n")
    org.sync()
    before = {e["user_id"]: e["timeoff_event_id"] for e in org.events()}
    org.leaves(HEADER + "L1,E1,2026-12-24,2026-12-26,年假,\nL2,E2,2026-12-28,2026-12-28,Sick,"
                        "cancelled\n")
    outcome = org.sync()
    assert outcome.done == {"leave.delete": 3, "leave.create": 1}
    after = org.events()
    assert shown(after) == [("E1", "Asia/Shanghai", "2026-12-24", "2026-12-26")]
    assert after[0]["timeoff_event_id"] != before["E1"]
    assert set(stored_marks(org.ledger)) == {"L1"}


def test_overlapping_leave_is_merged_and_bad_rows_are_held(fast_sandbox: SandboxServer,
                                                          tmp_path: Path) -> None:
    org = Org(fast_sandbox, tmp_path)
    org.leaves(HEADER + "L1,E1,2026-12-24,2026-12-26,年假,\n"
                        "L2,E1,2026-12-26T14:00+08:00,2026-12-27T12:00+08:00,事假,\n"
                        "L3,E9,2026-12-24,2026-12-24,年假,\n"
                        "L4,E3,2026-12-25,2026-12-24,年假,\n")
    outcome = org.sync()
    assert shown(org.events()) == [("E1", "Asia/Shanghai", "2026-12-24", "2026-12-27")]
    assert org.events()[0]["title"] == "请假：年假/事假 / On leave: 年假/事假"
    notes = [str(i) for i in outcome.plan.issues]
    assert notes == [
        "leaves.csv:5: leave L4: end 2026-12-24 is before start 2026-12-25 (held)",
        "leaves.csv:4: leave L3: unknown person E9 (not managed by orgsync) (held)",
        "leaves.csv:2: leave L1+L2: overlapping leaves of E1 merged into one mark "
        "(张伟 (E1) 2026-12-24 – 2026-12-27 年假/事假) (note)"]


def test_a_leaver_loses_future_marks_first(fast_sandbox: SandboxServer, tmp_path: Path) -> None:
    """The directory run that freezes a leaver deletes their future marks before the freeze;
    their past marks and everyone else's stay."""
    org = Org(fast_sandbox, tmp_path)
    org.leaves(HEADER + "L1,E1,2026-12-24,2026-12-25,年假,\nL2,E2,2027-01-10,2027-01-11,Annual,\n"
                        "L3,E2,2027-02-01,2027-02-01,Annual,\n")
    org.sync()
    (tmp_path / "employees.csv").write_text(EMPLOYEES.replace(
        "E2,Anna Smith,e2@example.com,+8613800000002,D1,London\n", ""), encoding="utf-8")
    seen = len(fast_sandbox.requests())
    assert run(org.cfg, org.ledger, accept_shrink=True).exit_code == 0  # E2 frozen, a leaver
    writes = [(r["method"], r["path"].rsplit("/", 1)[0], (r.get("body") or {}).get("is_frozen"))
              for r in fast_sandbox.requests()[seen:]
              if r["method"] != "GET" and "/auth/" not in r["path"]]
    assert writes[:2] == [("DELETE", "/open-apis/calendar/v4/timeoff_events", None)] * 2
    assert ("PATCH", "/open-apis/contact/v3/users", True) in writes[2:]
    assert shown(org.events()) == [("E1", "Asia/Shanghai", "2026-12-24", "2026-12-25")]
    assert set(stored_marks(org.ledger)) == {"L1"}
    assert org.sync().plan.operations == []


def test_a_person_resigned_in_feishu_is_reported_not_failed(fast_sandbox: SandboxServer,
                                                           tmp_path: Path) -> None:
    org = Org(fast_sandbox, tmp_path)
    org.leaves(HEADER + "L1,E3,2026-12-24,2026-12-25,年假,\n")
    fast_sandbox.tenant.find_user("E3", "user_id").resigned = True  # type: ignore[union-attr]
    outcome = org.sync()
    assert outcome.exit_code == 0
    assert outcome.warnings == ["李娜 (E3) 2026-12-24 – 2026-12-25 年假: not marked — the "
                                "person has resigned in Feishu (195100)"]
    assert (org.events(), stored_marks(org.ledger)) == ([], {})


def test_a_failed_or_empty_leave_file_deletes_nothing(fast_sandbox: SandboxServer,
                                                      tmp_path: Path) -> None:
    org = Org(fast_sandbox, tmp_path)
    org.leaves(HEADER + "L1,E1,2026-12-24,2026-12-25,年假,\n")
    org.sync()
    org.leaves(HEADER)
    with pytest.raises(SourceError, match="no records while marks for future leave exist"):
        org.sync()
    (tmp_path / "leaves.csv").unlink()
    with pytest.raises(SourceError):
        org.sync()
    (tmp_path / "leaves.csv").write_text("leave_id,start,end\nL1,2026-12-24,2026-12-25\n",
                                         encoding="utf-8")
    with pytest.raises(SourceError, match="missing required column employee_id"):
        org.sync()
    assert len(org.events()) == 1
    assert [r.mode for r in org.ledger.runs()][:3] == ["leave-apply"] * 3


def test_deleting_too_many_future_marks_is_held(fast_sandbox: SandboxServer,
                                                tmp_path: Path) -> None:
    org = Org(fast_sandbox, tmp_path, max_delete_floor=2, max_delete_fraction=0.5)
    rows = [f"L{n},E{n % 3 + 1},2027-01-{n + 1:02d},2027-01-{n + 1:02d},年假,\n"
            for n in range(6)]
    org.leaves(HEADER + "".join(rows))
    org.sync()
    org.leaves(HEADER + rows[0] + rows[1])
    held = org.sync()
    assert (held.exit_code, held.applied, len(org.events())) == (5, False, 6)
    assert held.plan.held == ["4 leave marks would be deleted, more than the limit of 3 (50% of "
                              "6 future marks, at least 2; leave.max_delete_fraction / "
                              "max_delete_floor)"]
    approved = org.sync(approve=True)
    assert (approved.exit_code, len(org.events())) == (0, 2)


def test_sigkill_between_feishu_answer_and_journal_duplicates_never_loses(
        fast_sandbox: SandboxServer, tmp_path: Path) -> None:
    """``orgsync leave apply`` killed after Feishu created the event but before its answer
    was journaled: the next run creates the mark again (two events, one known), as the
    README says — the person is never left unmarked."""
    org = Org(fast_sandbox, tmp_path)
    org.leaves(HEADER + "L1,E1,2026-12-24,2026-12-25,年假,\n")
    conf = tmp_path / "orgsync.yaml"
    conf.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": fast_sandbox.base_url, "app_id": fast_sandbox.config.app_id,
                   "app_secret": "${TEST_SECRET}", "rate_scale": 10.0},
        "source": {"type": "csv", "departments": "departments.csv",
                   "employees": "employees.csv"},
        "ledger": {"url": "sqlite:///l.db"},
        "leave": {"source": {"type": "csv", "file": "leaves.csv"}},
    }), encoding="utf-8")
    # Every call is applied, then its answer hangs: the process is killed while it waits.
    fast_sandbox.configure(fault_timeout=1.0, fault_after_apply=1.0, hang_seconds=60.0)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "orgsync"), "leave", "apply", "-c", str(conf)],
        env={**os.environ, "TEST_SECRET": fast_sandbox.config.app_secret},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not fast_sandbox.tenant.timeoff_events and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    assert len(org.events()) == 1
    assert [(m.status, m.event_id) for m in stored_marks(org.ledger).values()] == [
        ("creating", None)]
    fast_sandbox.configure(fault_timeout=0.0, fault_after_apply=0.5)
    outcome = org.sync()
    assert outcome.warnings == ["leave L1: an earlier create was interrupted before its answer "
                                "was recorded; created again — the person may show this mark "
                                "twice"]
    events = org.events()
    assert shown(events) == [("E1", "Asia/Shanghai", "2026-12-24", "2026-12-25")] * 2
    kept = stored_marks(org.ledger)["L1"]
    assert kept.status == "active"
    assert kept.event_id in {e["timeoff_event_id"] for e in events}
    calls = org.calls()
    assert org.sync().plan.operations == []
    assert org.calls() == calls


def test_the_daemon_runs_leave_on_its_own_schedule(fast_sandbox: SandboxServer,
                                                   tmp_path: Path) -> None:
    """With a leave source, the leader schedules leave runs besides the directory runs, under
    the same writer lock; each is a ledger run of its own."""
    org = Org(fast_sandbox, tmp_path)
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    org.leaves(HEADER + f"L1,E1,{day},{day},年假,\n")
    cfg = replace(org.cfg, daemon=replace(org.cfg.daemon, interval=3600.0, run_on_start=True,
                                          full_resync_cron=None),
                  admin=replace(org.cfg.admin, port=0))
    d = InProcessDaemon(cfg)
    try:
        wait_for(lambda: any(r.kind == "leave" for r in d.daemon.history), 30, "a leave run")
        assert [(r.kind, r.trigger, r.outcome) for r in d.daemon.history] == [
            ("leave", "schedule", "ok"), ("incremental", "schedule", "ok")]
    finally:
        assert d.stop() == 0
    assert shown(org.events()) == [("E1", "Asia/Shanghai", day, day)]
    assert [r.mode for r in org.ledger.runs()][:2] == ["leave-apply", "apply"]


def test_explain_shows_a_persons_leave_marks(fast_sandbox: SandboxServer,
                                             tmp_path: Path) -> None:
    org = Org(fast_sandbox, tmp_path)
    org.leaves(HEADER + "L1,E3,2026-12-24,2026-12-25,年假,approved\n"
                        "L2,E3,2026-12-22T14:00+08:00,2026-12-22T18:00+08:00,病假,\n")
    org.sync()
    events = {e["start_time"]: e["timeoff_event_id"] for e in org.events()}
    report = asyncio.run(explain(org.cfg, org.ledger, "E3", now=NOW))
    assert report["leave_marks"] == [
        {"leave": "L2", "start": "1797919200", "end": "1797933600", "timezone": "Asia/Shanghai",
         "status": "active", "event_id": events["1797919200"]},
        {"leave": "L1", "start": "2026-12-24", "end": "2026-12-25", "timezone": "Asia/Shanghai",
         "status": "active", "event_id": events["2026-12-24"]}]
    text = io.StringIO()
    render_text(report, Console(file=text, width=300))
    assert ("Leave marks (the leave ledger):\n"
            "  leave L2: 2026-12-22 06:00 UTC – 2026-12-22 10:00 UTC (Asia/Shanghai), active, "
            f"event {events['1797919200']}\n"
            "  leave L1: 2026-12-24 – 2026-12-25 (Asia/Shanghai), active, "
            f"event {events['2026-12-24']}\n") in text.getvalue()
    assert "Leave marks (the leave ledger): none" in _explained_text(org, "E1")


def _explained_text(org: Org, key: str) -> str:
    text = io.StringIO()
    render_text(asyncio.run(explain(org.cfg, org.ledger, key, now=NOW)),
                Console(file=text, width=300))
    return text.getvalue()


def test_an_hr_api_that_returns_no_leave_deletes_nothing(fast_sandbox: SandboxServer,
                                                         tmp_path: Path) -> None:
    """An HRIS leave source over a real HTTP server: its mark is made; then the API answers
    an empty list while that mark's leave is still ahead: a failed read, nothing deleted."""
    records = [{"id": "L1", "emp": "E1", "from": "2026-12-24", "to": "2026-12-25"}]
    with JsonServer(lambda call: Reply(body={"data": records})) as srv:
        org = Org(fast_sandbox, tmp_path, source={
            "type": "hris", "base_url": srv.url, "leaves": {"path": "/leaves", "records": "data"},
            "mapping": {"leave_id": "id", "employee_id": "emp", "start": "from", "end": "to"}})
        assert org.sync().done == {"leave.create": 1}
        records.clear()
        with pytest.raises(SourceError, match=r"^hris leaves: the leave source has no records"):
            org.sync()
    assert shown(org.events()) == [("E1", "Asia/Shanghai", "2026-12-24", "2026-12-25")]
