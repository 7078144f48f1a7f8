"""People's lifecycle against the sandbox, on a controllable clock: leavers, rehires, pre-hires."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.runner import RunOutcome
from orgsync.sandbox import SandboxServer
from orgsync.state import Lifecycle
from orgsync.synth import generate_org, write_csv
from tests.sandbox_run import SCALE, config, run


def calls(sb: SandboxServer, since: int) -> list[tuple[str, str, Any]]:
    return [(r["method"], r["path"], r["body"]) for r in sb.requests()[since:]
            if "tenant_access_token" not in r["path"] and not r["path"].endswith("batch_get_id")]


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


ORG = generate_org(employees=40, departments=8, levels=3)
BOSSES = {e.manager_key for e in ORG.employees.values()} | {
    d.leader_key for d in ORG.departments.values()}
LEAVER = sorted(k for k in ORG.employees if k not in BOSSES)[0]
USERS = "/open-apis/contact/v3/users"


def without(key: str) -> Snapshot:
    return Snapshot(dict(ORG.departments), {k: e for k, e in ORG.employees.items() if k != key})


def test_leaver_is_frozen_then_deleted_after_grace_with_handover(sb: SandboxServer,
                                                                 tmp_path: Path) -> None:
    """Day 0 freeze; day 5 nothing; day 15 delete with docs/calendar handed to the manager."""
    write_csv(ORG, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", lifecycle={"grace_days": 14})
    ledger = Ledger(cfg.ledger.url)
    t0 = datetime.now(UTC)
    run(cfg, ledger, t0)
    write_csv(without(LEAVER), tmp_path / "s")
    mark = len(sb.requests())
    run(cfg, ledger, t0)
    assert calls(sb, mark) == [("PATCH", f"{USERS}/{LEAVER}", {"is_frozen": True})]
    assert ledger.load_state().users[LEAVER].lifecycle is Lifecycle.FROZEN
    mark = len(sb.requests())
    assert run(cfg, ledger, t0 + timedelta(days=5)).plan.empty
    out = run(cfg, ledger, t0 + timedelta(days=15))
    manager = ORG.employees[LEAVER].manager_key
    assert manager is not None
    assert [(op.kind.value, op.key) for op in out.plan.operations] == [("user.delete", LEAVER)]
    assert out.plan.operations[0].reason.startswith("grace period over (frozen since ")
    deletes = [c for c in calls(sb, mark) if c[0] == "DELETE"]
    assert deletes == [("DELETE", f"{USERS}/{LEAVER}", {
        "docs_acceptor_user_id": manager, "calendar_acceptor_user_id": manager,
        "department_chat_acceptor_user_id": manager, "external_chat_acceptor_user_id": manager})]
    user = sb.tenant.find_user(LEAVER, "user_id")
    assert user is not None
    assert user.resigned
    assert ledger.load_state().users[LEAVER].lifecycle is Lifecycle.DELETED


def test_handover_goes_to_the_configured_account(sb: SandboxServer, tmp_path: Path) -> None:
    """lifecycle.handover_to overrides the manager as the acceptor."""
    write_csv(ORG, tmp_path / "s")
    it = sorted(BOSSES - {None, ORG.employees[LEAVER].manager_key})[0]
    assert it is not None
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", sync={"leaver_action": "delete"},
                 lifecycle={"handover_to": it})
    ledger = Ledger(cfg.ledger.url)
    now = datetime.now(UTC)
    run(cfg, ledger, now)
    write_csv(without(LEAVER), tmp_path / "s")
    out = run(cfg, ledger, now)
    assert dict(out.plan.operations[0].payload)["docs_acceptor_user_id"] == it


def _leave_and_return(sb: SandboxServer, tmp_path: Path, back_after: timedelta
                      ) -> tuple[RunOutcome, list[tuple[str, str, Any]]]:
    write_csv(ORG, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", sync={"leaver_action": "delete"})
    ledger = Ledger(cfg.ledger.url)
    now = datetime.now(UTC)
    run(cfg, ledger, now)
    write_csv(without(LEAVER), tmp_path / "s")
    run(cfg, ledger, now)
    returning = replace(ORG.employees[LEAVER], job_title="回归员工")
    write_csv(Snapshot(dict(ORG.departments), {**ORG.employees, LEAVER: returning}),
              tmp_path / "s")
    mark = len(sb.requests())
    out = run(cfg, ledger, now + back_after)
    assert out.exit_code == 0
    again = run(cfg, ledger, now + back_after)
    assert again.plan.empty
    return out, calls(sb, mark)


def test_rehire_inside_the_window_is_resurrected(sb: SandboxServer, tmp_path: Path) -> None:
    """Back after 3 days: resurrected into their departments, then patched; no new account."""
    out, made = _leave_and_return(sb, tmp_path, timedelta(days=3))
    assert [op.kind.value for op in out.plan.operations][:2] == ["user.resurrect", "user.update"]
    assert made[0] == ("POST", f"{USERS}/{LEAVER}/resurrect", {"departments": [
        {"department_id": d} for d in ORG.employees[LEAVER].department_keys]})
    assert not any(m == "POST" and p == USERS for m, p, _ in made)
    accounts = [u for u in sb.tenant.state()["users"] if u["user_id"] == LEAVER]
    assert len(accounts) == 1
    assert accounts[0]["job_title"] == "回归员工"


def test_rehire_without_resurrect_access_gets_a_new_account(sb: SandboxServer,
                                                           tmp_path: Path) -> None:
    """44029 (resurrect not granted, feishu-api-more.md §1.7): a new account instead, noted."""
    sb.configure(resurrect_available=False)
    out, made = _leave_and_return(sb, tmp_path, timedelta(days=3))
    assert [(m, p) for m, p, _ in made][:2] == [("POST", f"{USERS}/{LEAVER}/resurrect"),
                                                ("POST", USERS)]
    assert out.result is not None
    back = next(r for r in out.result.results if r.op.kind.value == "user.resurrect")
    assert back.status == "done"
    assert "resurrect refused (44029" in (back.message or "")
    assert "created a new account instead" in (back.message or "")
    accounts = [u for u in sb.tenant.state()["users"] if u["user_id"] == LEAVER]
    assert sorted(u["status"]["is_resigned"] for u in accounts) == [False, True]
    live = next(u for u in accounts if not u["status"]["is_resigned"])
    assert live["job_title"] == "回归员工"
    mirror = Ledger(config(sb, tmp_path / "s", tmp_path / "l.db").ledger.url).load_state()
    assert mirror.users[LEAVER].open_id == live["open_id"]


def test_rehire_while_the_deletion_is_pending_waits_for_a_later_run(sb: SandboxServer,
                                                                    tmp_path: Path) -> None:
    """44034 (deletion still in progress): failed with the note, the next run resurrects."""
    sb.configure(deletion_pending_seconds=3600.0)
    write_csv(ORG, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", sync={"leaver_action": "delete"})
    ledger = Ledger(cfg.ledger.url)
    now = datetime.now(UTC)
    run(cfg, ledger, now)
    write_csv(without(LEAVER), tmp_path / "s")
    run(cfg, ledger, now)
    write_csv(ORG, tmp_path / "s")
    out = run(cfg, ledger, now + timedelta(hours=1))
    assert out.result is not None
    assert [(r.op.kind.value, r.code) for r in out.result.failed] == [("user.resurrect", 44034)]
    assert "the next run tries again" in (out.result.failed[0].message or "")
    sb.advance_clock(3600)
    again = run(cfg, ledger, now + timedelta(hours=2))
    assert again.exit_code == 0
    assert [op.kind.value for op in again.plan.operations][:1] == ["user.resurrect"]
    accounts = [u for u in sb.tenant.state()["users"] if u["user_id"] == LEAVER]
    assert [u["status"]["is_resigned"] for u in accounts] == [False]


def test_rehire_outside_the_window_is_a_new_account(sb: SandboxServer, tmp_path: Path) -> None:
    """Back after 40 days: created again as a new hire, not clashing with the old account."""
    out, made = _leave_and_return(sb, tmp_path, timedelta(days=40))
    assert "user.create" in [op.kind.value for op in out.plan.operations]
    assert not any(p.endswith("/resurrect") for _, p, _ in made)
    accounts = [u for u in sb.tenant.state()["users"] if u["user_id"] == LEAVER]
    assert sorted(u["status"]["is_resigned"] for u in accounts) == [False, True]


def test_prehire_is_created_prehire_days_before_the_start(sb: SandboxServer,
                                                           tmp_path: Path) -> None:
    """Starting in 20 days with prehire_days=7: not created on day 0 or 12, created on day 13."""
    today = datetime.now(UTC)
    start = today.date() + timedelta(days=20)
    newbie = replace(ORG.employees[LEAVER], key="E09999", join_date=start,
                     email="newbie@example.com", mobile="+8613711112222", employee_no=None)
    write_csv(Snapshot(dict(ORG.departments), {**ORG.employees, "E09999": newbie}),
              tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", lifecycle={"prehire_days": 7})
    ledger = Ledger(cfg.ledger.url)
    first = run(cfg, ledger, today)
    assert "E09999" not in {op.key for op in first.plan.operations}
    note = next(i for i in first.plan.issues if i.key == "E09999")
    assert note.reason == (f"starts {start.isoformat()}, account created "
                           f"{(start - timedelta(days=7)).isoformat()}")
    assert run(cfg, ledger, today + timedelta(days=12)).plan.empty
    day13 = run(cfg, ledger, today + timedelta(days=13))
    assert ("user.create", "E09999") in {(op.kind.value, op.key) for op in day13.plan.operations}
    assert sb.tenant.find_user("E09999", "user_id") is not None
    assert isinstance(start, date)
