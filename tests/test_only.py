"""Selecting part of a plan for ``apply --only`` (pure logic, no Feishu)."""

from __future__ import annotations

from orgsync.only import describe, select
from orgsync.plan import Operation, OpKind, Plan, op_id


def op(kind: OpKind, key: str, *deps: str) -> Operation:
    return Operation(op_id(kind, key), kind, key, key, {}, depends_on=tuple(deps))


PLAN = Plan(operations=(
    op(OpKind.DEPT_CREATE, "D9"),
    op(OpKind.USER_CREATE, "BOSS", "department.create:D9"),
    op(OpKind.USER_CREATE, "NEW", "department.create:D9"),
    op(OpKind.USER_SET_MANAGER, "NEW", "user.create:NEW", "user.create:BOSS"),
    op(OpKind.USER_SET_MANAGER, "BOSS", "user.create:BOSS"),
    op(OpKind.USER_UPDATE, "OTHER"),
    op(OpKind.USER_FREEZE, "GONE"),
    op(OpKind.USER_CREATE, "HEIR", "user.freeze:GONE"),
    op(OpKind.DEPT_SET_LEADER, "D9", "user.create:BOSS"),
))


def test_a_person_comes_with_their_department_and_their_new_managers_account() -> None:
    """NEW: their department, their manager's account, their own ops; not the manager's
    own manager link, not the department's leader, not anyone else's change."""
    chosen = select(PLAN, {"NEW"})
    assert [o.op_id for o in chosen.plan.operations] == [
        "department.create:D9", "user.create:BOSS", "user.create:NEW", "user.set_manager:NEW"]
    assert (chosen.planned, chosen.unchanged, chosen.waiting) == (9, (), ())
    assert chosen.plan.plan_id != PLAN.plan_id


def test_nobody_else_is_frozen_for_a_person_asked_for() -> None:
    """HEIR needs GONE's freeze first (a unique value): HEIR waits, GONE is not frozen;
    asked for together, both go."""
    chosen = select(PLAN, {"HEIR", "NOBODY"})
    assert chosen.plan.operations == ()
    assert chosen.waiting == (("user.create:HEIR", "user.freeze of GONE"),)
    assert chosen.unchanged == ("NOBODY",)
    assert describe(chosen, ["HEIR", "NOBODY"]) == [
        "Only HEIR, NOBODY and what they depend on: 0 of the 9 planned operations.",
        "NOBODY: nothing to do.",
        "user.create:HEIR waits for the user.freeze of GONE: run a full apply."]
    both = select(PLAN, {"HEIR", "GONE"})
    assert [o.op_id for o in both.plan.operations] == ["user.freeze:GONE", "user.create:HEIR"]


def test_a_department_comes_with_its_leaders_account() -> None:
    chosen = select(PLAN, {"D9"})
    assert [o.op_id for o in chosen.plan.operations] == [
        "department.create:D9", "user.create:BOSS", "department.set_leader:D9"]
