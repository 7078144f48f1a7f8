"""User groups from HR, end to end over a real socket: config rules → plan → apply → Feishu.

Every test reads the sandbox's groups back (by user_id) and checks the ledger's group mirror.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import event, text

from orgsync.config import Config
from orgsync.errors import PlanHeld
from orgsync.explain import explain, render_text
from orgsync.feishu import FeishuClient
from orgsync.group_mirror import member_digest
from orgsync.group_plan import IN_STEP, in_step
from orgsync.ledger import Ledger
from orgsync.model import Department, Employee, EmployeeType, Snapshot
from orgsync.plan import Plan
from orgsync.plan_view import Filters, View
from orgsync.runner import make_plan
from orgsync.sandbox import SandboxServer
from orgsync.synth import write_csv
from orgsync.tables import MirrorGroupMemberRow, MirrorGroupRow
from tests.sandbox_run import SCALE, config, run, with_client

GROUPS: dict[str, Any] = {
    "rd": {"name": "研发", "members": {"department": "D1"}},
    "d1direct": {"name": "研发直属", "members": {"department": "D1", "direct": True}},
    "bjinterns": {"name": "北京实习生", "id": "bjinterns",
                  "members": {"all": [{"city": "北京"}, {"employee_type": "intern"}]}},
    "leads": {"name": "Leads", "members": {"is_manager": True}},
    "notsh": {"name": "Not Shanghai", "members": {"not": {"city": "上海"}}},
}


def _org(count: int = 150, *, city: str = "北京", drop: int = 0) -> Snapshot:
    depts = [Department(key="D1", name="研发"), Department(key="D11", name="平台", parent_key="D1"),
             Department(key="D2", name="销售")]
    people = [Employee(key="E001", name="Boss", department_keys=("D1",),
                       mobile="+8613800000001", city=city)]
    for n in range(2 + drop, count + 1):
        dept = ("D11",) if n % 3 else ("D2",)
        people.append(Employee(key=f"E{n:03d}", name=f"员工{n}", department_keys=dept,
                               mobile=f"+86138{n:08d}",
                               manager_key="E001", city="上海" if n % 5 == 0 else city,
                               employee_type=EmployeeType.INTERN if n % 7 == 0
                               else EmployeeType.REGULAR))
    return Snapshot.of(depts, people)


def _synced(sb: SandboxServer, tmp_path: Path) -> tuple[Config, Ledger]:
    """The config and ledger of ``_org()`` synced once with ``GROUPS``."""
    write_csv(_org(), tmp_path)
    cfg = config(sb, tmp_path, tmp_path / "l.db", groups={"define": GROUPS})
    ledger = Ledger(cfg.ledger.url)
    run(cfg, ledger)
    return cfg, ledger


def _groups(sb: SandboxServer) -> dict[str, tuple[str, set[str]]]:
    """group_id → (name, user_ids) in the sandbox."""
    tenant = sb.tenant
    return {g["group_id"]: (g["name"], {tenant.users[o].user_id for o in g["members"]})
            for g in tenant.dump_groups()}


def _expected(snap: Snapshot) -> dict[str, set[str]]:
    staff = snap.employees
    sub = {k for k, e in staff.items() if set(e.department_keys) & {"D1", "D11"}}
    return {
        "rd": sub,
        "d1direct": {k for k, e in staff.items() if "D1" in e.department_keys},
        "bjinterns": {k for k, e in staff.items()
                      if e.city == "北京" and e.employee_type is EmployeeType.INTERN},
        "leads": {"E001"},
        "notsh": {k for k, e in staff.items() if e.city != "上海"},
    }


def _batch_calls(sb: SandboxServer, kind: str) -> int:
    return sum(1 for r in sb.requests() if r["path"].endswith(f"/member/{kind}"))


def _assert_digests(ledger: Ledger) -> None:
    """Every group's stored digest is the digest of its members as applied."""
    groups = ledger.load_groups()
    assert groups
    assert {k: g.digest for k, g in groups.items()} == \
        {k: member_digest(g.members) for k, g in groups.items()}


@pytest.fixture
def fast(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def test_first_sync_creates_groups_with_batched_members_then_nothing(
        fast: SandboxServer, tmp_path: Path) -> None:
    snap = _org()
    write_csv(snap, tmp_path)
    cfg = config(fast, tmp_path, tmp_path / "l.db", groups={"define": GROUPS})
    ledger = Ledger(cfg.ledger.url)
    outcome = run(cfg, ledger)
    assert outcome.exit_code == 0
    want = _expected(snap)
    assert _groups(fast) == {k: (GROUPS[k]["name"], v) for k, v in want.items()}
    # one create per group plus ⌈members / 100⌉ batch_add calls
    assert sum(1 for r in fast.requests()
               if r["method"] == "POST" and r["path"].endswith("/contact/v3/group")) == 5
    assert _batch_calls(fast, "batch_add") == sum(math.ceil(len(v) / 100) for v in want.values())
    assert {k: g.members for k, g in ledger.load_groups().items()} == want
    _assert_digests(ledger)
    shown = View(outcome.plan, Filters(kinds=frozenset({"group.*"})))
    assert {op.kind.value for op in shown.shown()} == {"group.create", "group.add_members"}
    first_add = next(op for op in outcome.plan.operations if op.key == "leads#1")
    assert first_add.reason == "adds 1 of 1 (0 now): Boss"
    fast.sandbox.clear_requests()
    again = run(cfg, ledger)
    assert again.plan.empty
    assert [r for r in fast.requests() if "/group" in r["path"]] == []


def test_rename_and_moves_update_members_under_the_guard(
        fast: SandboxServer, tmp_path: Path) -> None:
    cfg, ledger = _synced(fast, tmp_path)
    # six people leave (4 % of 'rd'), 'rd' is renamed
    snap = _org(drop=6)
    write_csv(snap, tmp_path)
    renamed = {**GROUPS, "rd": {**GROUPS["rd"], "name": "研发中心"}}
    cfg = config(fast, tmp_path, tmp_path / "l.db", groups={"define": renamed})
    outcome = run(cfg, ledger)
    assert outcome.exit_code == 0
    assert outcome.plan.summary()["group.update"] == 1
    got = _groups(fast)
    assert got["rd"] == ("研发中心", _expected(snap)["rd"])
    _assert_digests(ledger)
    assert run(cfg, ledger).plan.empty


def test_removing_over_the_share_of_a_big_group_holds_the_plan(
        fast: SandboxServer, tmp_path: Path) -> None:
    cfg, ledger = _synced(fast, tmp_path)
    before = _groups(fast)
    # everyone in 北京 moves to 深圳: 'notsh' keeps them, 'bjinterns' (under 50) empties
    write_csv(_org(city="深圳"), tmp_path)
    narrowed = {**GROUPS, "notsh": {"name": "Not Shanghai", "members": {"city": "北京"}}}
    cfg = config(fast, tmp_path, tmp_path / "l.db", groups={"define": narrowed})
    with pytest.raises(PlanHeld) as held:
        run(cfg, ledger)
    assert held.value.reasons == [
        f"{len(before['notsh'][1])} members removed from group Not Shanghai are 100% of the "
        f"{len(before['notsh'][1])} managed, over groups.max_removal_fraction=20%"]
    assert _groups(fast) == before


def test_held_people_keep_their_groups_and_are_never_added(
        fast: SandboxServer, tmp_path: Path) -> None:
    cfg, ledger = _synced(fast, tmp_path)
    # E007 (an intern in 北京) gets a bad mobile: held; a new hire E200 with one too
    snap = _org()
    people = [e for e in snap.employees.values() if e.key != "E007"]
    bad = Employee(key="E007", name="员工7", department_keys=("D11",), mobile="12345",
                   city="上海")
    newbie = Employee(key="E200", name="新人", department_keys=("D11",), mobile="99", city="北京",
                      employee_type=EmployeeType.INTERN)
    write_csv(Snapshot.of(snap.departments.values(), [*people, bad, newbie]), tmp_path)
    outcome = run(cfg, ledger)
    assert outcome.exit_code == 0
    got = _groups(fast)
    assert "E007" in got["bjinterns"][1]
    assert "E007" in got["notsh"][1]  # their city changed, but the record is held
    assert all("E200" not in members for _, members in got.values())


def test_a_dropped_group_is_emptied_then_deleted(fast: SandboxServer, tmp_path: Path) -> None:
    cfg, ledger = _synced(fast, tmp_path)
    fewer = {k: v for k, v in GROUPS.items() if k != "rd"}
    cfg = config(fast, tmp_path, tmp_path / "l.db", groups={"define": fewer})
    outcome = run(cfg, ledger)
    assert outcome.exit_code == 0
    assert outcome.plan.summary()["group.delete"] == 1
    assert "rd" not in _groups(fast)
    assert "rd" not in ledger.load_groups()


def test_an_existing_group_is_adopted_by_name_and_its_other_members_stay(
        fast: SandboxServer, tmp_path: Path) -> None:
    snap = _org(20)
    write_csv(snap, tmp_path)
    # Feishu already has 'Leads' (another id) with an unmanaged member and E002
    fast.load({"users": [{"user_id": "X1", "name": "Outsider", "mobile": "+8613900000001"}],
               "groups": [{"group_id": "legacy1", "name": "Leads", "members": ["X1"]}]})
    cfg = config(fast, tmp_path, tmp_path / "l.db", safety={"takeover_requires_approval": False},
                 groups={"define": {"leads": GROUPS["leads"]}})
    ledger = Ledger(cfg.ledger.url)
    outcome = run(cfg, ledger)
    assert outcome.exit_code == 0
    assert outcome.plan.summary()["group.adopt"] == 1
    assert "group.create" not in outcome.plan.summary()
    assert _groups(fast) == {"legacy1": ("Leads", {"X1", "E001"})}
    assert ledger.load_groups()["leads"].feishu_id == "legacy1"


def test_killed_group_sync_resumes_without_duplicate_groups_or_lost_members(
        fast: SandboxServer, tmp_path: Path) -> None:
    """SIGKILL of the console script mid-sync, then apply again: every group once, every
    member there, and a third run has nothing to do."""
    snap = _org(450)
    write_csv(snap, tmp_path)
    cfg = config(fast, tmp_path, tmp_path / "l.db")
    run(cfg, Ledger(cfg.ledger.url))  # the people first, no groups yet
    conf = tmp_path / "orgsync.yaml"
    conf.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": fast.base_url, "app_id": fast.config.app_id,
                   "app_secret": "${TEST_SECRET}", "rate_scale": SCALE},
        "source": {"type": "csv", "departments": "departments.csv",
                   "employees": "employees.csv"},
        "ledger": {"url": "sqlite:///l.db"}, "groups": {"define": GROUPS}}), encoding="utf-8")
    fast.sandbox.clear_requests()
    fast.configure(latency_ms=400)
    proc = subprocess.Popen([str(Path(sys.executable).with_name("orgsync")), "apply", "--yes",
                             "-c", str(conf)], cwd=tmp_path,
                            env={**os.environ, "TEST_SECRET": fast.config.app_secret},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _group_writes(fast) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _group_writes(fast)
    fast.configure(latency_ms=0)
    want = _expected(snap)
    assert 5 <= killed_at < 5 + sum(math.ceil(len(v) / 100) for v in want.values())
    cfg = config(fast, tmp_path, tmp_path / "l.db", groups={"define": GROUPS})
    ledger = Ledger(cfg.ledger.url)
    assert run(cfg, ledger).exit_code == 0
    assert _groups(fast) == {k: (GROUPS[k]["name"], v) for k, v in want.items()}
    assert {k: g.members for k, g in ledger.load_groups().items()} == want
    _assert_digests(ledger)
    assert run(cfg, ledger).plan.empty


def _group_writes(sb: SandboxServer) -> int:
    return sum(1 for r in sb.requests() if r["method"] == "POST" and "/contact/v3/group" in
               r["path"] and r["status"] == 200)


def test_explain_shows_a_persons_groups_and_the_rule(fast: SandboxServer,
                                                     tmp_path: Path) -> None:
    cfg, ledger = _synced(fast, tmp_path)
    report = asyncio.run(explain(cfg, ledger, "E007"))
    assert [(g["group"], g["applied"], g["by_rule"]) for g in report["groups"]] == [
        ("rd", True, True), ("bjinterns", True, True), ("notsh", True, True)]
    out = io.StringIO()
    render_text(report, Console(file=out, width=200, color_system=None))
    assert "Group 北京实习生 (bjinterns): in it, by the rule {all: [{city: 北京}, " \
           "{employee_type: intern}]}" in out.getvalue()


def test_the_tenants_group_limit_is_checked_before_any_write(fast: SandboxServer,
                                                             tmp_path: Path) -> None:
    write_csv(_org(20), tmp_path)
    fast.load({"groups": [{"group_id": f"other{n}", "name": f"其他{n}"} for n in range(499)]})
    two = {"leads": GROUPS["leads"], "rd": GROUPS["rd"]}
    cfg = config(fast, tmp_path, tmp_path / "l.db", groups={"define": two})
    outcome = run(cfg, Ledger(cfg.ledger.url))
    assert outcome.exit_code == 0
    assert [str(i) for i in outcome.plan.issues if i.entity == "group"] == [
        "group rd: members: Feishu holds 500 groups, its limit is 500 per tenant (42016): not "
        "created; remove groups in Feishu or from groups.define (held back)"]
    assert [k for k in _groups(fast) if not k.startswith("other")] == ["leads"]
    assert not any(r["code"] == 42016 for r in fast.requests())


def test_a_changed_employee_id_keeps_the_persons_groups(fast: SandboxServer,
                                                        tmp_path: Path) -> None:
    cfg, ledger = _synced(fast, tmp_path)
    snap = _org()
    moved = replace(snap.employees["E010"], key="E910")
    people = [e for e in snap.employees.values() if e.key != "E010"]
    write_csv(Snapshot.of(snap.departments.values(), [*people, moved]), tmp_path)
    outcome = run(cfg, ledger)
    assert outcome.exit_code == 0
    assert outcome.plan.summary() == {"user.rekey": 1}
    assert [k for k, g in ledger.load_groups().items() if "E910" in g.members] == ["rd"]
    assert not any("E010" in g.members for g in ledger.load_groups().values())
    _assert_digests(ledger)
    assert run(cfg, ledger).plan.empty


def test_a_resync_repairs_members_removed_behind_its_back_and_leaves_hand_added_ones(
        fast: SandboxServer, tmp_path: Path) -> None:
    cfg, ledger = _synced(fast, tmp_path)
    want = _expected(_org())
    assert "E004" in want["rd"]
    assert "E003" not in want["rd"]

    async def drift(client: FeishuClient) -> None:  # an admin, by hand in Feishu
        await client.remove_group_members("rd", ["E004"])
        await client.add_group_members("rd", ["E003"])
    with_client(cfg, drift)
    assert run(cfg, ledger).plan.empty  # an incremental run reads no group from Feishu
    outcome = run(cfg, ledger, full=True)
    assert outcome.exit_code == 0
    assert [(op.kind.value, op.mirror and op.mirror["members"]) for op in outcome.plan.operations
            if op.kind.value.startswith("group.")] == [("group.add_members", ["E004"])]
    # E004 is back; E003 (managed, but not in the rule) stays: orgsync did not add them
    assert _groups(fast)["rd"] == ("研发", want["rd"] | {"E003"})
    assert ledger.load_groups()["rd"].members == want["rd"]
    assert run(cfg, ledger, full=True).plan.summary().get("group.add_members") is None


def test_a_moved_department_changes_the_groups_of_people_the_plan_does_not_touch(
        fast: SandboxServer, tmp_path: Path) -> None:
    # A plan checks a changed group against the people it changes first; here no person
    # changes, the digest tells that guess wrong and the group is read whole.
    cfg, ledger = _synced(fast, tmp_path)
    snap = _org()
    depts = [*(d for d in snap.departments.values() if d.key != "D2"),
             Department(key="D2", name="销售", parent_key="D1")]
    write_csv(Snapshot.of(depts, snap.employees.values()), tmp_path)
    outcome = run(cfg, ledger)
    assert outcome.exit_code == 0
    assert outcome.plan.summary() == {"department.move": 1, "group.add_members": 1}
    assert _groups(fast)["rd"] == ("研发", set(snap.employees))
    _assert_digests(ledger)
    assert run(cfg, ledger).plan.empty


def test_groups_changed_only_in_the_people_a_plan_changes_read_no_member_list(
        fast: SandboxServer, tmp_path: Path) -> None:
    # Their applied members are the ledger's digest's, confirmed from the changed people's
    # memberships alone: no group's whole member list is read for the plan.
    cfg, ledger = _synced(fast, tmp_path)
    snap = _org()
    changed = {"E002": replace(snap.employees["E002"], department_keys=("D2",)),  # leaves rd
               "E003": replace(snap.employees["E003"], department_keys=("D11",)),  # joins rd
               "E004": replace(snap.employees["E004"], city="上海")}  # leaves notsh
    later = Snapshot.of(snap.departments.values(),
                        [changed.get(k, e) for k, e in snap.employees.items()])
    write_csv(later, tmp_path)
    reads: list[str] = []

    def read(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM mirror_group_members" in statement and "group_key =" in statement:
            reads.append(statement)
    event.listen(ledger.engine, "before_cursor_execute", read)
    try:
        plan = with_client(cfg, lambda client: make_plan(cfg, ledger, client)).plan
    finally:
        event.remove(ledger.engine, "before_cursor_execute", read)
    assert reads == []
    assert [(op.kind.value, op.mirror and (op.mirror["group"], op.mirror["members"]))
            for op in plan.operations if op.kind.value.startswith("group.")] == [
        ("group.add_members", ("rd", ["E003"])), ("group.remove_members", ("notsh", ["E004"])),
        ("group.remove_members", ("rd", ["E002"]))]
    assert run(cfg, ledger).exit_code == 0
    assert {k: members for k, (_, members) in _groups(fast).items()} == _expected(later)
    _assert_digests(ledger)


def test_the_ledger_gives_the_memberships_of_the_people_asked_for(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    members = {"big": {f"E{n:04d}" for n in range(1200)}, "small": {"E0001", "E0999"},
               "none": set()}
    with ledger.engine.begin() as c:
        c.execute(MirrorGroupRow.__table__.insert(),  # type: ignore[attr-defined]
                  [{"key": k, "feishu_id": k, "name": k, "digest": member_digest(v),
                    "updated_at": ledger.now()} for k, v in members.items()])
        c.execute(MirrorGroupMemberRow.__table__.insert(),  # type: ignore[attr-defined]
                  [{"group_key": k, "user_key": u} for k, v in members.items() for u in v])
    asked = [f"E{n:04d}" for n in range(1, 1200, 2)] + ["E9999"]  # over one IN (…) chunk
    assert ledger.group_memberships(asked) == {
        "big": {f"E{n:04d}" for n in range(1, 1200, 2)}, "small": {"E0001", "E0999"}}
    assert ledger.group_memberships([]) == {}


def _group_edits(plan: Plan) -> list[tuple[str, str, list[str]]]:
    return sorted((op.kind.value, str(op.mirror["group"]), list(op.mirror["members"]))
                  for op in plan.operations if op.kind.value.startswith("group.")
                  and op.mirror and "members" in op.mirror)


def _planned(cfg: Config, ledger: Ledger) -> tuple[Plan, list[str]]:
    """A plan made with every group's stored digest wrong, and the groups whose whole
    member list it read (a plan that checks digests reads each group it changes)."""
    digests = {k: g.digest for k, g in ledger.load_groups(members=False).items()}
    with ledger.engine.begin() as c:
        c.execute(text("UPDATE mirror_groups SET digest = 'wrong'"))
    read: list[str] = []

    def whole(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM mirror_group_members WHERE group_key =" in statement:
            read.append(str(params[0] if isinstance(params, tuple | list) else params["k"]))
    event.listen(ledger.engine, "before_cursor_execute", whole)
    try:
        return with_client(cfg, lambda client: make_plan(cfg, ledger, client)).plan, read
    finally:
        event.remove(ledger.engine, "before_cursor_execute", whole)
        with ledger.engine.begin() as c:
            for key, digest in digests.items():
                c.execute(text("UPDATE mirror_groups SET digest = :d WHERE key = :k"),
                          {"d": digest, "k": key})


def _wanted(snap: Snapshot) -> dict[str, set[str]]:
    want = _expected(snap)
    want["leads"] = {e.manager_key for e in snap.employees.values() if e.manager_key}
    return want


def test_groups_in_step_are_planned_from_the_people_who_changed_as_a_whole_evaluation_plans(
        fast: SandboxServer, tmp_path: Path) -> None:
    """After an apply that did everything, a plan evaluates each group on the people whose
    verdict can have moved (it neither checks a digest nor reads a member list), and its
    operations are the whole evaluation's — a record changed, a joiner, a leaver, someone's
    first report and, a run later, their last one gone."""
    cfg, ledger = _synced(fast, tmp_path)
    snap = _org()
    assert set(in_step(ledger, snap.departments).groups) == set(GROUPS)
    e = dict(snap.employees)
    e.update(E002=replace(e["E002"], city="上海"),  # leaves notsh
             E003=replace(e["E003"], department_keys=("D11",)),  # joins rd
             E014=replace(e["E014"], employee_type=EmployeeType.REGULAR),  # leaves bjinterns
             E010=replace(e["E010"], manager_key="E004"),  # E004 becomes a lead
             E200=Employee(key="E200", name="新人", department_keys=("D1",),
                           mobile="+8613800000200", manager_key="E001"))
    del e["E005"]  # a leaver
    rounds = [Snapshot.of(snap.departments.values(), e.values())]
    rounds.append(Snapshot.of(snap.departments.values(),
                              [*(p for k, p in e.items() if k != "E010"),
                               replace(e["E010"], manager_key="E001")]))  # E004's last report
    before = snap
    for later in rounds:
        write_csv(later, tmp_path)
        quick, read = _planned(cfg, ledger)
        assert read == []
        ledger.set_meta(IN_STEP, "")
        whole, read = _planned(cfg, ledger)
        assert read  # every group it changes, its digest being wrong
        old, new = _wanted(before), _wanted(later)
        assert _group_edits(quick) == _group_edits(whole) == sorted(
            [("group.add_members", g, sorted(new[g] - old[g])) for g in GROUPS
             if new[g] - old[g]] + [("group.remove_members", g, sorted(old[g] - new[g]))
                                    for g in GROUPS if old[g] - new[g]])
        assert run(cfg, ledger).exit_code == 0
        assert {k: members for k, (_, members) in _groups(fast).items()} == new
        _assert_digests(ledger)
        before = later
    assert _group_edits(_planned(cfg, ledger)[0]) == []


def test_a_failed_group_write_leaves_every_group_to_the_whole_evaluation(
        fast: SandboxServer, tmp_path: Path) -> None:
    """A member add that failed is planned again, though the person's own change was applied
    and they look unchanged now: an apply that did not do everything leaves no group in
    step."""
    cfg, ledger = _synced(fast, tmp_path)
    snap = _org()
    later = Snapshot.of(snap.departments.values(),
                        [replace(p, department_keys=("D11",)) if p.key == "E003" else p
                         for p in snap.employees.values()])
    write_csv(later, tmp_path)

    async def gone(client: FeishuClient) -> None:  # deleted in Feishu behind orgsync's back
        await client.remove_group_members("rd", sorted(_groups(fast)["rd"][1]))
        await client.delete_group("rd")
    with_client(cfg, gone)
    outcome = run(cfg, ledger)
    assert outcome.result is not None
    assert [(r.op.kind.value, r.status) for r in outcome.result.results
            if r.op.kind.value != "user.move"] == [("group.add_members", "failed")]
    assert ledger.get_meta(IN_STEP) == ""
    again, _ = _planned(cfg, ledger)
    assert _group_edits(again) == [("group.add_members", "rd", ["E003"])]


def test_a_rule_changed_in_the_config_is_evaluated_for_everyone(fast: SandboxServer,
                                                                 tmp_path: Path) -> None:
    _, ledger = _synced(fast, tmp_path)
    snap = _org()
    groups = {**GROUPS, "notsh": {"name": "Not Shanghai",
                                  "members": {"not": {"employee_type": "intern"}}}}
    changed = config(fast, tmp_path, tmp_path / "l.db", groups={"define": groups})
    assert run(changed, ledger).exit_code == 0
    assert _groups(fast)["notsh"][1] == {k for k, p in snap.employees.items()
                                         if p.employee_type is not EmployeeType.INTERN}
    assert set(in_step(ledger, snap.departments).groups) == set(GROUPS)
    assert run(changed, ledger).plan.empty


def test_a_leaver_whose_freeze_is_held_keeps_their_groups(fast: SandboxServer,
                                                           tmp_path: Path) -> None:
    """A row without a usable id may be anyone gone from the export: their freeze is held
    back, and so are their groups — in a whole evaluation as in one from the changed people."""
    cfg, ledger = _synced(fast, tmp_path)
    snap = _org()
    gone = snap.employees["E004"]  # in rd and notsh
    write_csv(Snapshot.of(snap.departments.values(),
                          [p for p in snap.employees.values() if p.key != "E004"]), tmp_path)
    with (tmp_path / "employees.csv").open("a", encoding="utf-8") as f:
        f.write(",,无工号,,,,D11,E001,,regular,,北京,active\n")
    for record in (ledger.get_meta(IN_STEP), ""):
        ledger.set_meta(IN_STEP, record or "")
        plan = with_client(cfg, lambda client: make_plan(cfg, ledger, client)).plan
        assert not [op for op in plan.operations if op.key == gone.key or (
            op.mirror and gone.key in (op.mirror.get("members") or ()))]
        assert any("leaver(s) left as they are" in n for n in plan.notes)
    assert run(cfg, ledger).exit_code == 0
    assert all(gone.key in ledger.load_groups()[g].members for g in ("rd", "notsh"))


def test_someone_held_through_a_rule_change_is_evaluated_once_released(
        fast: SandboxServer, tmp_path: Path) -> None:
    """A person held back keeps their groups while the rule changes; once their row is
    fixed their record is the one applied again, and the next plan still evaluates them."""
    _, ledger = _synced(fast, tmp_path)
    snap = _org()
    intern = snap.employees["E007"]  # a 北京 intern: in notsh
    assert intern.employee_type is EmployeeType.INTERN
    write_csv(Snapshot.of(snap.departments.values(),
                          [replace(p, mobile="not a mobile") if p.key == intern.key else p
                           for p in snap.employees.values()]), tmp_path)
    groups = {**GROUPS, "notsh": {"name": "Not Shanghai",
                                  "members": {"not": {"employee_type": "intern"}}}}
    changed = config(fast, tmp_path, tmp_path / "l.db", groups={"define": groups})
    assert run(changed, ledger).exit_code == 0
    assert intern.key in ledger.load_groups()["notsh"].members  # held: kept
    assert in_step(ledger, snap.departments).held == {intern.key}
    write_csv(snap, tmp_path)  # fixed: the record applied before, no operation of its own
    plan = with_client(changed, lambda client: make_plan(changed, ledger, client)).plan
    assert _group_edits(plan) == [("group.remove_members", "notsh", [intern.key])]
