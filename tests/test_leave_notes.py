"""The manager's note about a long leave (``notify.leave_note_days``), over the sandbox's IM
endpoint on a real socket: sent once per leave, only from the configured length."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orgsync.feishu import FeishuClient
from orgsync.leave_sync import LeaveOutcome, run_leave
from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from tests.sandbox_run import config, run

NOW = datetime(2026, 12, 20, 2, 0, tzinfo=UTC)
HEADER = "leave_id,employee_id,start,end,kind,status\n"


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=10.0)
    return sandbox


class Team:
    """张伟 (E1) manages Anna (E2) and 李娜 (E3); leave notes from 3 days."""

    def __init__(self, sb: SandboxServer, tmp: Path) -> None:
        self.sb, self.tmp = sb, tmp
        (tmp / "departments.csv").write_text("department_id,name,parent_id\nD1,研发部,\n",
                                             encoding="utf-8")
        (tmp / "employees.csv").write_text(
            "employee_id,name,email,mobile,department_ids,manager_id\n"
            "E1,张伟,e1@example.com,+8613800000001,D1,\n"
            "E2,Anna Smith,e2@example.com,+8613800000002,D1,E1\n"
            "E3,李娜,e3@example.com,+8613800000003,D1,E1\n", encoding="utf-8")
        self.leaves(HEADER)
        self.cfg = config(sb, tmp, tmp / "l.db",
                          leave={"source": {"type": "csv", "file": str(tmp / "leaves.csv")}},
                          notify={"enabled": True, "language": "en", "leave_note_days": 3})
        self.ledger = Ledger(self.cfg.ledger.url, now=lambda: NOW)
        assert run(self.cfg, self.ledger).exit_code == 0

    def leaves(self, text: str) -> None:
        (self.tmp / "leaves.csv").write_text(text, encoding="utf-8")

    def sync(self) -> LeaveOutcome:
        async def go() -> LeaveOutcome:
            async with FeishuClient(self.cfg.feishu) as client:
                return await run_leave(self.cfg, self.ledger, client, apply=True, now=NOW)
        return asyncio.run(go())

    def notes(self) -> list[tuple[str, str]]:
        """``(receiver employee id, text)`` of every leave note the sandbox received."""
        by_open_id = {u.open_id: u.user_id for u in self.sb.tenant.users.values()}
        return [(by_open_id[m["receiver"]], text) for m in self.sb.tenant.messages
                if "on leave" in (text := json.loads(m["content"])["text"])]


def test_a_long_leave_notes_the_manager_once_and_a_short_one_does_not(
        sb: SandboxServer, tmp_path: Path) -> None:
    team = Team(sb, tmp_path)
    team.leaves(HEADER + "L1,E2,2026-12-24,2026-12-28,Annual,approved\n"
                         "L2,E3,2026-12-22,2026-12-23,病假,approved\n")
    outcome = team.sync()
    assert outcome.notes is not None
    assert outcome.notes.sent == [
        "leave_note@L1@Annual@2026-12-24@2026-12-28@5:E2"]
    assert team.notes() == [
        ("E1", "Anna Smith is on leave (Annual) from 2026-12-24 to 2026-12-28, 5 days.")]

    team.leaves(HEADER + "L1,E2,2026-12-24,2026-12-29,Annual,approved\n"
                         "L2,E3,2026-12-22,2026-12-23,病假,approved\n")
    changed = team.sync()
    assert changed.done == {"leave.delete": 1, "leave.create": 1}
    assert len(team.notes()) == 1  # the same leave, changed: no second note
    rows = team.ledger.notifications(kinds=("leave_note",))
    assert [(r.event, r.status) for r in rows] == [
        ("leave_note@L1@Annual@2026-12-24@2026-12-28@5:E2", "sent")]


def test_leave_notes_are_off_by_default(sb: SandboxServer, tmp_path: Path) -> None:
    team = Team(sb, tmp_path)
    team.cfg = config(sb, tmp_path, tmp_path / "l.db",
                      leave={"source": {"type": "csv", "file": str(tmp_path / "leaves.csv")}},
                      notify={"enabled": True, "language": "en"})
    team.leaves(HEADER + "L1,E2,2026-12-01,2026-12-31,Annual,approved\n")
    assert team.sync().done == {"leave.create": 1}
    assert team.notes() == []
    assert team.ledger.notifications(kinds=("leave_note",)) == []


def test_a_note_still_owed_when_the_leave_is_cancelled_is_never_sent(
        sb: SandboxServer, tmp_path: Path) -> None:
    """The manager cannot be reached yet (230013): the note waits; the leave is cancelled
    before it could go: the next leave run deletes the mark and cancels the note."""
    team = Team(sb, tmp_path)
    sb.tenant.set_reachable("E1", False)
    team.leaves(HEADER + "L1,E2,2026-12-24,2026-12-28,Annual,approved\n")
    first = team.sync()
    assert first.notes is not None
    assert first.notes.pending == ["leave_note@L1@Annual@2026-12-24@2026-12-28@5:E2"]

    sb.tenant.set_reachable("E1", True)
    team.leaves(HEADER + "L1,E2,2026-12-24,2026-12-28,Annual,cancelled\n")
    second = team.sync()
    assert second.done == {"leave.delete": 1}
    assert second.notes is not None
    assert second.notes.sent == []
    assert team.notes() == []
    assert [(r.status, r.message) for r in team.ledger.notifications(kinds=("leave_note",))] \
        == [("cancelled", "the leave was cancelled before the note was sent")]
