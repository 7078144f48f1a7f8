"""Departments the source removed or renamed: frozen leavers moved out so the department goes
at once, and path-keyed departments renamed in place (pure diff and inference logic; the
sandbox runs are in tests/test_department_moves_sandbox.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orgsync.diff import DiffPolicy, diff
from orgsync.identity import feishu_department_id
from orgsync.model import Snapshot, Status
from orgsync.plan import Plan
from orgsync.renames import infer_renames, overlap
from orgsync.source import SourceData
from orgsync.state import DirectoryState, Lifecycle
from tests.test_diff import dept, emp, kinds, state_of

NOW = datetime(2026, 12, 1, tzinfo=UTC)
FREEZE = DiffPolicy(leaver_action="freeze", now=NOW, grace_days=14)

#: 总部 ⊃ 研发 ⊃ 平台; E9 left and was frozen two days ago, in 平台.
TREE = Snapshot.of([dept("HQ", "总部"), dept("RD", "研发", "HQ"), dept("PF", "平台", "RD"),
                    dept("OUT", "离职人员", "HQ")],
                   [emp("E1", ("HQ",)), emp("E2", ("RD",)), emp("E9", ("PF",))])


def frozen(snap: Snapshot, *keys: str) -> DirectoryState:
    """``snap`` applied, with ``keys`` frozen as leavers two days before :data:`NOW`."""
    state = state_of(snap)
    for k in keys:
        state.users[k] = replace(state.users[k], lifecycle=Lifecycle.FROZEN,
                                 frozen_at=NOW - timedelta(days=2))
    return state


def without(snap: Snapshot, *gone: str, people: tuple[str, ...] = ("E9",)) -> Snapshot:
    return Snapshot({k: d for k, d in snap.departments.items() if k not in gone},
                    {k: e for k, e in snap.employees.items() if k not in people})


class TestFrozenLeaversMoveOut:
    def test_moved_to_the_nearest_kept_ancestor_and_the_departments_go(self) -> None:
        """平台 and 研发 go; E9 (frozen) moves to 总部 first, paced as a user.move."""
        plan = diff(SourceData(without(TREE, "PF", "RD", people=("E9", "E2"))),
                    frozen(TREE, "E9", "E2"), FREEZE)
        assert kinds(plan) == [("user.move", "E2"), ("user.move", "E9"),
                               ("department.delete", "PF"), ("department.delete", "RD")]
        move = plan.operations[1]
        assert move.payload == {"department_ids": ["HQ"]}
        assert move.mirror == {"department_keys": ["HQ"]}
        assert move.reason == "frozen leaver moved out of PF, which is no longer in source"
        assert "user.move:E9" in plan.operations[2].depends_on
        assert plan.notes == ()

    def test_moved_to_the_leavers_department_when_set(self) -> None:
        """lifecycle.leavers_department wins over the ancestor."""
        plan = diff(SourceData(without(TREE, "PF")), frozen(TREE, "E9"),
                    replace(FREEZE, leavers_department="OUT"))
        assert kinds(plan) == [("user.move", "E9"), ("department.delete", "PF")]
        assert plan.operations[0].payload == {"department_ids": ["OUT"]}

    def test_unknown_leavers_department_falls_back_with_a_note(self) -> None:
        plan = diff(SourceData(without(TREE, "PF")), frozen(TREE, "E9"),
                    replace(FREEZE, leavers_department="NOPE"))
        assert plan.operations[0].payload == {"department_ids": ["RD"]}
        assert plan.notes == ("lifecycle.leavers_department NOPE is not a department in the "
                              "source; frozen leavers go to the nearest department kept instead",)

    def test_only_frozen_leavers_move_and_a_department_holding_anyone_else_stays(self) -> None:
        """Three departments removed from 研发: QA's frozen leaver moves and QA goes; in PF
        someone terminated today is frozen (not moved) and PF stays; in OPS a frozen
        leaver whom a held-back row accounts for is not moved and OPS stays."""
        old = Snapshot.of([*TREE.departments.values(), dept("QA", "测试", "RD"),
                           dept("OPS", "运维", "RD")],
                          [*TREE.employees.values(), emp("E7", ("OPS",)), emp("E8", ("QA",))])
        state = frozen(old, "E7", "E8")
        new = Snapshot.of([d for k, d in old.departments.items() if k not in {"PF", "QA", "OPS"}],
                          [e for k, e in old.employees.items() if k not in {"E7", "E8", "E9"}])
        plan = diff(SourceData(new, held_employees={"E7"}), state, FREEZE)
        assert sorted(kinds(plan)) == [("department.delete", "QA"), ("user.freeze", "E9"),
                                       ("user.move", "E8")]
        assert plan.notes == ("department OPS not deleted: member E7 stays in it",
                              "department PF not deleted: member E9 stays in it")

    def test_nothing_moves_while_held_rows_may_be_any_leaver(self) -> None:
        source = SourceData(without(TREE, "PF"))
        assert kinds(diff(source, frozen(TREE, "E9"), FREEZE)) == [
            ("user.move", "E9"), ("department.delete", "PF")]
        plan = diff(source, frozen(TREE, "E9"),
                    replace(FREEZE, hold_leavers=("employees.csv:7: no id",)))
        assert kinds(plan) == []

    def test_no_kept_ancestor_needs_the_leavers_department(self) -> None:
        """A top-level department has no ancestor to move into: without
        leavers_department it stays until the grace period ends, as before."""
        old = Snapshot.of([dept("X", "甲"), dept("Y", "乙")], [emp("E1", ("Y",)), emp("E9", ("X",))])
        source = SourceData(Snapshot.of([dept("Y", "乙")], [emp("E1", ("Y",))]))
        plan = diff(source, frozen(old, "E9"), FREEZE)
        assert kinds(plan) == []
        assert plan.notes == ("department X not deleted: member E9 stays in it",)
        plan = diff(source, frozen(old, "E9"), replace(FREEZE, leavers_department="Y"))
        assert kinds(plan) == [("user.move", "E9"), ("department.delete", "X")]

    def test_grace_period_over_deletes_instead_of_moving(self) -> None:
        source = SourceData(without(TREE, "PF"))
        assert kinds(diff(source, frozen(TREE, "E9"), FREEZE))[0] == ("user.move", "E9")
        plan = diff(source, frozen(TREE, "E9"), replace(FREEZE, now=NOW + timedelta(days=30)))
        assert kinds(plan) == [("user.delete", "E9"), ("department.delete", "PF")]


# ------------------------------------------------------------------------------ renames

def path_org(renamed_to: str | None = None, *, extra: int = 0) -> Snapshot:
    """A path-keyed org: 研发中心 (4 direct members) ⊃ 平台部 (3) ⊃ 基础架构组 (2), and 销售部;
    with ``renamed_to``, 研发中心 renamed (so every key below it changes)."""
    top = renamed_to or "研发中心"
    keys = {"top": top, "pf": f"{top}/平台部", "infra": f"{top}/平台部/基础架构组"}
    depts = [dept(top, top), dept(keys["pf"], "平台部", top),
             dept(keys["infra"], "基础架构组", keys["pf"]), dept("销售部", "销售部")]
    people = [emp(f"E{i}", (keys["top"],)) for i in range(1, 5)]
    people += [emp(f"E{i}", (keys["pf"],)) for i in range(5, 8)]
    people += [emp(f"E{i}", (keys["infra"], "销售部")) for i in range(8, 10)]
    people += [emp("E20", ("销售部",))]
    people += [emp(f"E{30 + i}", (top,)) for i in range(extra)]
    return Snapshot.of(depts, people)


def renamed_plan(new: Snapshot, old: Snapshot, min_overlap: float = 0.8) -> Plan:
    data = SourceData(new)
    found = infer_renames(data, state_of(old), min_overlap)
    return diff(data, found.state, DiffPolicy(department_rekeys=found.rekeys))


class TestRenames:
    def test_overlap(self) -> None:
        assert overlap({"a", "b", "c", "d"}, {"a", "b", "c", "d", "e"}) == 0.8
        assert overlap(set(), set()) == 0.0

    def test_renamed_top_level_department_is_a_patch_and_its_subtree_follows(self) -> None:
        """研发中心 → 研发与技术中心: one update, the ledger follows the three keys; no
        create, delete or move."""
        plan = renamed_plan(path_org("研发与技术中心"), path_org())
        assert kinds(plan) == [
            ("department.rekey", "研发与技术中心"),
            ("department.update", "研发与技术中心"),
            ("department.rekey", "研发与技术中心/平台部"),
            ("department.rekey", "研发与技术中心/平台部/基础架构组")]
        update = plan.operations[1]
        assert update.reason == "renamed from 研发中心"
        assert update.payload == {"name": "研发与技术中心"}
        assert update.feishu_id == state_of(path_org()).departments["研发中心"].feishu_id
        assert update.depends_on == ("department.rekey:研发与技术中心",)
        rekey = plan.operations[2]
        assert (rekey.payload, rekey.mirror) == ({}, {"previous_key": "研发中心/平台部",
                                                      "parent_key": "研发与技术中心"})
        assert rekey.reason == "its path changed with its parent's"

    def test_below_the_threshold_is_create_and_delete(self) -> None:
        """A department that gained more than a fifth new members is not taken as renamed."""
        new = path_org("研发与技术中心", extra=2)  # 4 of 6 in common: 0.67
        plan = renamed_plan(new, path_org())
        assert ("department.create", "研发与技术中心") in kinds(plan)
        assert ("department.delete", "研发中心") in kinds(plan)
        assert not any(k == "department.rekey" for k, _ in kinds(plan))
        assert renamed_plan(new, path_org(), min_overlap=0.6) != plan  # the share is the knob

    def test_two_candidates_are_no_match(self) -> None:
        """Two new siblings with the same members: no guess, create + delete."""
        old = Snapshot.of([dept("甲", "甲")], [emp("E1", ("甲",))])
        one = Snapshot.of([dept("乙", "乙")], [emp("E1", ("乙",))])
        assert infer_renames(SourceData(one), state_of(old), 0.8).rekeys == {"乙": "甲"}
        two = Snapshot.of([dept("乙", "乙"), dept("丙", "丙")], [emp("E1", ("乙", "丙"))])
        assert infer_renames(SourceData(two), state_of(old), 0.8).rekeys == {}

    def test_departments_with_codes_are_never_inferred(self) -> None:
        """A department keyed by a code that vanished with its members in a new code is the
        source's word: create + delete. The same change keyed by paths is a rename."""
        old = Snapshot.of([dept("D1", "研发中心")], [emp("E1", ("D1",))])
        new = Snapshot.of([dept("D2", "研发与技术中心")], [emp("E1", ("D2",))])
        assert infer_renames(SourceData(new), state_of(old), 0.8).rekeys == {}
        old = Snapshot.of([dept("研发中心", "研发中心")], [emp("E1", ("研发中心",))])
        new = Snapshot.of([dept("研发与技术中心", "研发与技术中心")], [emp("E1", ("研发与技术中心",))])
        assert infer_renames(SourceData(new), state_of(old), 0.8).rekeys == {
            "研发与技术中心": "研发中心"}

    def test_members_state_follows_so_nobody_moves(self) -> None:
        found = infer_renames(SourceData(path_org("研发与技术中心")), state_of(path_org()), 0.8)
        assert found.state.users["E8"].record.department_keys == (
            "研发与技术中心/平台部/基础架构组", "销售部")
        assert found.rekeys["研发与技术中心/平台部"] == "研发中心/平台部"

    def test_terminated_members_do_not_count(self) -> None:
        new = path_org("研发与技术中心")
        people = {k: replace(e, status=Status.TERMINATED) if k in {"E1", "E2"} else e
                  for k, e in new.employees.items()}
        found = infer_renames(SourceData(Snapshot(dict(new.departments), people)),
                              state_of(path_org()), 0.8)
        assert "研发与技术中心" not in found.rekeys  # 2 of 4: 0.5
        assert "研发与技术中心" in infer_renames(SourceData(new), state_of(path_org()), 0.8).rekeys

    def test_a_new_department_at_a_renamed_ones_old_path_gets_another_id(self) -> None:
        """The renamed 研发中心 kept the Feishu id its path gave it; a new 研发中心 must not
        take it (the create would meet the renamed department: an id duplicate)."""
        data = SourceData(path_org("研发与技术中心"))
        applied = state_of(path_org())
        for k, m in applied.departments.items():  # the ids creates gave them
            applied.departments[k] = replace(m, feishu_id=feishu_department_id(k))
        renamed = infer_renames(data, applied, 0.8).state
        taken = renamed.departments["研发与技术中心"].feishu_id
        again = Snapshot({**data.snapshot.departments, "研发中心": dept("研发中心", "研发中心")},
                         dict(data.snapshot.employees))
        plan = diff(SourceData(again), renamed)
        create = next(op for op in plan.operations if op.kind.value == "department.create")
        assert create.key == "研发中心"
        assert create.feishu_id != taken
        assert create.payload["department_id"] == create.feishu_id
