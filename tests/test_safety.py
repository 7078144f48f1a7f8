"""Safety over a real socket: source guards, held plans and approval, scope, adoption."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from orgsync.errors import EXIT_HELD, EXIT_SOURCE, PlanHeld, SourceError
from orgsync.feishu import FeishuClient
from orgsync.ledger import Ledger
from orgsync.model import Employee, Snapshot
from orgsync.runner import run_once
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.sandbox_run import SCALE, config, read_back, run

SMALL = {"employees": 60, "departments": 12, "levels": 4}


def writes(sb: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sb.requests()
            if r["method"] != "GET" and "tenant_access_token" not in r["path"]
            and not r["path"].endswith("batch_get_id")]


def without(org: Snapshot, keys: set[str]) -> Snapshot:
    return Snapshot(dict(org.departments),
                    {k: e for k, e in org.employees.items() if k not in keys})


def leaves(org: Snapshot, n: int) -> set[str]:
    """``n`` employees nobody reports to and who lead nothing (safe to remove)."""
    bosses = {e.manager_key for e in org.employees.values()} | {
        d.leader_key for d in org.departments.values()}
    return set(sorted(k for k in org.employees if k not in bosses)[:n])


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


@pytest.fixture(name="org")
def _org() -> Snapshot:
    return generate_org(**SMALL)


class TestSourceGuard:
    def test_failing_source_aborts_before_any_write(self, sb: SandboxServer, tmp_path: Path,
                                                    org: Snapshot) -> None:
        """A source that cannot be read exits 4, records a failed run, and writes nothing."""
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        before = len(writes(sb))
        (tmp_path / "s" / "employees.csv").unlink()
        with pytest.raises(SourceError) as err:
            run(cfg, ledger)
        assert err.value.exit_code == EXIT_SOURCE
        assert "employees.csv" in str(err.value)
        assert len(writes(sb)) == before
        assert ledger.runs(limit=1)[0].status == "failed"

    def test_empty_source_is_refused(self, sb: SandboxServer, tmp_path: Path,
                                     org: Snapshot) -> None:
        """An export with headers only never turns into 'everyone left'."""
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        before = len(writes(sb))
        write_csv(Snapshot(), tmp_path / "s")
        with pytest.raises(SourceError, match="empty org"):
            run(cfg, ledger)
        assert len(writes(sb)) == before

    def test_sixty_percent_shrink_is_refused(self, sb: SandboxServer, tmp_path: Path,
                                             org: Snapshot) -> None:
        """A source 60 % smaller than the last good read aborts before the diff."""
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        before = len(writes(sb))
        keep = set(sorted(org.employees)[:24])
        write_csv(Snapshot(dict(org.departments),
                           {k: e for k, e in org.employees.items() if k in keep}), tmp_path / "s")
        with pytest.raises(SourceError, match="60% fewer than the last good read"):
            run(cfg, ledger)
        assert len(writes(sb)) == before


class TestThresholds:
    def test_plan_over_user_threshold_is_held_then_approved(self, sb: SandboxServer,
                                                            tmp_path: Path, org: Snapshot) -> None:
        """Over max_user_removals: held with its id (exit 5), nothing written; approve applies it."""
        write_csv(org, tmp_path / "s")
        safety = {"safety": {"max_user_removals": 3}}
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db", **safety)
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        gone = leaves(org, 4)
        write_csv(without(org, gone), tmp_path / "s")
        before = len(writes(sb))
        with pytest.raises(PlanHeld) as held:
            run(cfg, ledger)
        assert held.value.exit_code == EXIT_HELD
        assert held.value.reasons == [
            "4 user removals (deletes + freezes) exceed safety.max_user_removals=3"]
        assert len(writes(sb)) == before
        assert [h.plan_id for h in ledger.held_plans()] == [held.value.plan_id]
        with pytest.raises(PlanHeld):
            asyncio.run(run_once(cfg, ledger, apply=False))  # dry-run says so too
        assert ledger.approve_plan(held.value.plan_id)
        out = run(cfg, ledger)
        assert out.plan.plan_id == held.value.plan_id
        frozen = [r for r in writes(sb)[before:] if r["body"] == {"is_frozen": True}]
        assert sorted(r["path"].rsplit("/", 1)[1] for r in frozen) == sorted(gone)
        assert ledger.plan_status(held.value.plan_id) == "applied"

    def test_approval_does_not_cover_a_changed_plan(self, sb: SandboxServer, tmp_path: Path,
                                                    org: Snapshot) -> None:
        """Approving plan X, then a source change: the new plan is checked afresh and held."""
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db", safety={"max_user_removals": 3})
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        write_csv(without(org, leaves(org, 4)), tmp_path / "s")
        with pytest.raises(PlanHeld) as first:
            run(cfg, ledger)
        ledger.approve_plan(first.value.plan_id)
        write_csv(without(org, leaves(org, 5)), tmp_path / "s")
        with pytest.raises(PlanHeld) as second:
            run(cfg, ledger)
        assert second.value.plan_id != first.value.plan_id

    def test_department_delete_fraction_holds(self, sb: SandboxServer, tmp_path: Path) -> None:
        """Deleting most departments (over the fraction) is held even under the count."""
        org = generate_org(employees=30, departments=10, levels=3)
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db", sync={"leaver_action": "delete"},
                     safety={"min_managed": 5, "max_department_delete_fraction": 0.2,
                             "max_user_removals": 1000, "max_user_removal_fraction": 1.0})
        ledger = Ledger(cfg.ledger.url)
        run(cfg, ledger)
        tops = {k for k, d in org.departments.items() if d.parent_key is None}
        top = sorted(tops)[0]
        sub = {k for k, d in org.departments.items() if _under(k, top, org)}
        smaller = Snapshot({k: d for k, d in org.departments.items() if k not in sub},
                           {k: e for k, e in org.employees.items()
                            if not set(e.department_keys) & sub})
        assert len(sub) / len(org.departments) > 0.2
        write_csv(smaller, tmp_path / "s")
        with pytest.raises(PlanHeld, match="department deletes"):
            run(cfg, ledger, accept_shrink=True)


def _under(key: str, top: str, org: Snapshot) -> bool:
    k: str | None = key
    while k is not None:
        if k == top:
            return True
        k = org.departments[k].parent_key
    return False


class TestScope:
    def test_unmanaged_and_protected_users_are_untouched(self, sb: SandboxServer,
                                                         tmp_path: Path, org: Snapshot) -> None:
        """A user orgsync did not create is never deleted; a protected one is never changed."""
        write_csv(org, tmp_path / "s")
        prot = sorted(leaves(org, 1))[0]
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db",
                     safety={"protected_users": [prot], "takeover_requires_approval": False})
        ledger = Ledger(cfg.ledger.url)

        async def outsider() -> None:
            async with FeishuClient(cfg.feishu) as c:
                await c.create_user({"user_id": "boss", "name": "创始人", "mobile": "+8613999999999",
                                     "department_ids": ["0"], "employee_type": 1})
        asyncio.run(outsider())
        run(cfg, ledger)
        changed = {k: e for k, e in org.employees.items() if k != prot}
        changed[prot] = Employee(**{**_fields(org.employees[prot]), "job_title": "改了"})
        write_csv(Snapshot(dict(org.departments), changed), tmp_path / "s")
        out = run(cfg, ledger)
        assert out.plan.empty
        assert f"user {prot} is protected; left as it is" in out.plan.notes
        live = {u["user_id"] for u in sb.tenant.state()["users"]}
        assert "boss" in live

    def test_existing_user_is_adopted_and_ambiguous_match_held(self, sb: SandboxServer,
                                                               tmp_path: Path,
                                                               org: Snapshot) -> None:
        """Email and mobile on one account: adopted (PATCH, no create). On two: held as a conflict."""
        keys = sorted(leaves(org, 2))
        one, two = (org.employees[k] for k in keys)
        write_csv(org, tmp_path / "s")
        cfg = config(sb, tmp_path / "s", tmp_path / "l.db",
                     safety={"takeover_requires_approval": False},
                     takeover={"rekey_users": False})

        async def preexisting() -> None:
            async with FeishuClient(cfg.feishu) as c:
                await c.create_user({"user_id": "legacy1", "name": one.name, "email": one.email,
                                     "mobile": one.mobile, "department_ids": ["0"],
                                     "employee_type": 1})
                await c.create_user({"user_id": "legacy2", "name": "甲", "email": two.email,
                                     "mobile": "+8613999999001", "department_ids": ["0"],
                                     "employee_type": 1})
                await c.create_user({"user_id": "legacy3", "name": "乙", "mobile": two.mobile,
                                     "department_ids": ["0"], "employee_type": 1})
        asyncio.run(preexisting())
        ledger = Ledger(cfg.ledger.url)
        out = run(cfg, ledger)
        kinds = {(op.kind.value, op.key) for op in out.plan.operations}
        assert ("user.adopt", one.key) in kinds
        assert not any(k == two.key for _, k in kinds)
        conflict = [i for i in out.plan.issues if i.key == two.key]
        assert conflict
        assert "match two different Feishu users" in conflict[0].reason
        assert ledger.load_state().users[one.key].feishu_id == "legacy1"
        posted = {r["body"]["user_id"] for r in writes(sb) if r["method"] == "POST"
                  and r["path"] == "/open-apis/contact/v3/users"}
        assert one.key not in posted
        assert two.key not in posted


def _fields(e: Employee) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__dataclass_fields__}


def test_tenant_admins_are_never_adopted_or_touched(sb: SandboxServer, tmp_path: Path,
                                                    org: Snapshot) -> None:
    """A tenant admin matching a new person is not adopted; a managed user who became an
    admin (learned by a full resync) is not frozen or deleted when they leave the source."""
    first, second = sorted(leaves(org, 2))
    a, b = org.employees[first], org.employees[second]
    write_csv(org, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", sync={"leaver_action": "delete"},
                 safety={"takeover_requires_approval": False})

    async def admin_account() -> None:
        async with FeishuClient(cfg.feishu) as c:
            await c.create_user({"user_id": "it-admin", "name": a.name, "email": a.email,
                                 "mobile": a.mobile, "department_ids": ["0"],
                                 "employee_type": 1})
    asyncio.run(admin_account())
    admin = sb.tenant.find_user("it-admin", "user_id")
    assert admin is not None
    admin.is_tenant_manager = True
    ledger = Ledger(cfg.ledger.url)
    out = run(cfg, ledger)
    conflict = [i for i in out.plan.issues if i.key == a.key]
    assert [i.reason for i in conflict] == [
        "matches Feishu user it-admin, a tenant admin; tenant admins are never adopted"]
    assert not any(op.key == a.key for op in out.plan.operations)

    promoted = sb.tenant.find_user(b.key, "user_id")
    assert promoted is not None
    promoted.is_tenant_manager = True
    asyncio.run(run_once(cfg, ledger, apply=True, full=True))
    write_csv(without(org, {b.key}), tmp_path / "s")
    before = len(writes(sb))
    gone = run(cfg, ledger)
    assert not any(op.key == b.key for op in gone.plan.operations)
    assert f"user {b.key} is protected; left as it is" in gone.plan.notes
    assert not any(r["path"].endswith(f"/users/{b.key}") for r in writes(sb)[before:])


def test_failed_account_lookup_holds_only_the_joiners(sb: SandboxServer, tmp_path: Path,
                                                      org: Snapshot) -> None:
    """When Feishu cannot be asked about existing accounts (429s past the retries), joiners are
    held for the next run instead of risking duplicates; the rest of the run goes on."""
    some = Snapshot(dict(org.departments), dict(list(org.employees.items())[:-2]))
    write_csv(some, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", feishu={
        "base_url": sb.base_url, "app_id": sb.config.app_id,
        "app_secret": sb.config.app_secret, "rate_scale": SCALE, "max_retries": 1})
    ledger = Ledger(cfg.ledger.url)
    run(cfg, ledger)
    write_csv(org, tmp_path / "s")
    joiners = sorted(set(org.employees) - set(some.employees))
    httpx.post(f"{sb.base_url}/_sandbox/ratelimit_burst", json={"count": 2},
               headers={"Authorization": f"Bearer {sb.config.app_secret}"}).raise_for_status()
    first = run(cfg, ledger)
    held = {i.key: i.reason for i in first.plan.issues if i.key in joiners}
    assert sorted(held) == joiners
    assert all("could not check Feishu for an existing account (Feishu 99991400)" in r
               for r in held.values())
    assert not any(op.key in joiners for op in first.plan.operations)
    second = run(cfg, ledger)
    assert {op.key for op in second.plan.operations if op.kind.value == "user.create"} == \
        set(joiners)
    assert second.exit_code == 0


def test_links_to_a_joiner_held_by_a_failed_lookup_wait_for_the_joiner(
        sb: SandboxServer, tmp_path: Path, org: Snapshot) -> None:
    """A joiner held because Feishu could not be asked about existing accounts is not linked
    to (as manager or leader) until it exists: the run finishes clean and the next run links."""
    joiner = list(org.employees)[-1]
    managers = {e.manager_key for e in org.employees.values()}
    report_key = next(k for k in reversed(org.employees) if k != joiner and k not in managers)
    dept_key = next(k for k, d in org.departments.items() if d.leader_key not in (None, joiner))
    some = without(org, {joiner})
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", feishu={
        "base_url": sb.base_url, "app_id": sb.config.app_id,
        "app_secret": sb.config.app_secret, "rate_scale": SCALE, "max_retries": 1})
    ledger = Ledger(cfg.ledger.url)
    write_csv(some, tmp_path / "s")
    assert run(cfg, ledger).exit_code == 0
    employees = dict(org.employees)
    employees[report_key] = replace(employees[report_key], manager_key=joiner)
    departments = dict(org.departments)
    departments[dept_key] = replace(departments[dept_key], leader_key=joiner)
    write_csv(Snapshot(departments, employees), tmp_path / "s")
    httpx.post(f"{sb.base_url}/_sandbox/ratelimit_burst", json={"count": 2},
               headers={"Authorization": f"Bearer {sb.config.app_secret}"}).raise_for_status()
    first = run(cfg, ledger)
    assert [i.key for i in first.plan.issues if i.severity == "error"] == [joiner]
    assert not any(op.key in (joiner, report_key, dept_key) for op in first.plan.operations)
    assert first.exit_code == 0
    second = run(cfg, ledger)
    assert {(op.kind.value, op.key) for op in second.plan.operations} >= {
        ("user.create", joiner), ("user.set_manager", report_key),
        ("department.set_leader", dept_key)}
    assert second.exit_code == 0
    feishu = read_back(cfg)
    assert feishu.users[report_key].record.manager_key == joiner
    assert feishu.departments[dept_key].record.leader_key == joiner
