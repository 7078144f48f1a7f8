"""``orgsync apply --only KEY…``: the part of a plan that syncs just some people or departments.

:func:`select` keeps the operations on the keys asked for and everything they depend
on (their department chain, their manager's account when it must be created first,
a unique value another record must let go of first), and nothing else. A dependency
that would remove or disable someone not asked for (a freeze or a delete: a leaver
whose email a new hire takes over) is never pulled in: the operations that need it
wait for a full apply, and the selection says so.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from orgsync.operations import SPECS
from orgsync.plan import Operation, Plan, topological


@dataclass(frozen=True, slots=True)
class Selection:
    """The plan to apply, and what was asked for but cannot go in it."""

    plan: Plan
    #: How many operations the full plan has.
    planned: int = 0
    #: Keys asked for that the full plan does not change (nothing to do for them).
    unchanged: tuple[str, ...] = ()
    #: Operations on keys asked for that wait for another's removal (op id → why).
    waiting: tuple[tuple[str, str], ...] = ()


def select(plan: Plan, keys: Collection[str]) -> Selection:
    """The operations of ``plan`` on ``keys`` with their dependencies (see the module).

    The result keeps the plan's order; held records and notes stay as they were, so
    the partial plan reports them like the full one.
    """
    wanted = set(keys)
    by_id = {op.op_id: op for op in plan.operations}
    blocked: dict[str, str] = {}  # op id -> the removal of someone else it needs

    def removes_another(op: Operation) -> bool:
        spec = SPECS[op.kind]
        return op.key not in wanted and (spec.destructive or spec.departure is not None)

    def closure(root: Operation) -> set[str] | None:
        """``root`` and what it depends on, or None when that needs someone's removal."""
        seen: set[str] = set()
        stack = [root.op_id]
        while stack:
            oid = stack.pop()
            if oid in seen or oid not in by_id:
                continue
            op = by_id[oid]
            if removes_another(op):
                blocked[root.op_id] = f"{op.kind.value} of {op.key}"
                return None
            seen.add(oid)
            stack.extend(op.depends_on)
        return seen

    chosen: set[str] = set()
    for op in plan.operations:
        if op.key in wanted:
            # The closure is transitive: an operation that needs one that waits waits too.
            needed = closure(op)
            if needed is not None:
                chosen |= needed
    touched = {op.key for op in plan.operations}
    kept = topological(op for op in plan.operations if op.op_id in chosen)
    return Selection(
        plan=replace(plan, operations=kept), planned=len(plan.operations),
        unchanged=tuple(sorted(wanted - touched)),
        waiting=tuple(sorted((oid, why) for oid, why in blocked.items()
                             if by_id[oid].key in wanted)))


def describe(selection: Selection, asked: Collection[str]) -> list[str]:
    """Lines that say what an ``--only`` run applies of the full plan, and what waits."""
    lines = [f"Only {', '.join(asked)} and what they depend on: "
             f"{len(selection.plan.operations)} of the {selection.planned} planned operations."]
    lines += [f"{key}: nothing to do." for key in selection.unchanged]
    lines += [f"{oid} waits for the {why}: run a full apply." for oid, why in selection.waiting]
    return lines
