"""A staged rollout: ``sync.stage`` limits the writes to a part of the org.

::

    sync:
      stage:
        departments: [D07]      # these departments and their subtrees (by key)
        people: [E0001, E0002]  # these people (by key)
        first: 200              # the first N people by key (of the source and the managed)

The whole org is read, matched and planned as always; only the operations inside
the stage are applied. Inside are the operations on a staged department (in one of
the subtrees) or a staged person (listed, among the first N, or whose primary
department is staged), plus what they need to exist: the create, adoption or rekey
of the departments above them. A new person whose manager is outside the stage is
created without the link (a later run links them once the manager exists); any other
operation inside that waits for one outside (a manager link to someone outside, say)
waits with it. The others appear in the plan
as ``deferred (outside the stage)`` and are never applied; ``check`` reports drift
inside the stage only. Widen the stage (or remove it) to take the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from orgsync.operations import SPECS
from orgsync.options import Section
from orgsync.plan import Operation, OpKind, Plan
from orgsync.source import SourceData
from orgsync.state import DirectoryState

DEFERRED = "deferred (outside the stage)"
#: What makes a department exist for what is under it: pulled into the stage with it.
_STRUCTURE = frozenset({OpKind.DEPT_CREATE, OpKind.DEPT_ADOPT, OpKind.DEPT_REKEY})


@dataclass(frozen=True, slots=True)
class StageConfig:
    """``sync.stage`` (none of its keys: no stage, everything is applied)."""

    departments: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    first: int | None = None

    @property
    def active(self) -> bool:
        """Whether a stage is set."""
        return bool(self.departments or self.people or self.first is not None)


def parse_stage(s: Section) -> StageConfig:
    """The ``sync.stage`` section; a ConfigError names a bad key."""
    first = s.raw("first")
    if first is not None:
        first = s.number("first", 0, minimum=1)
    stage = StageConfig(s.strings("departments"), s.strings("people"), first)
    s.done()
    return stage


def staged(plan: Plan, stage: StageConfig, data: SourceData, state: DirectoryState) -> Plan:
    """``plan`` with only the operations inside ``stage`` (see the module docstring);
    the others are in :attr:`Plan.deferred`."""
    if not stage.active:
        return plan
    parents = {k: d.record.parent_key for k, d in state.departments.items()}
    parents.update({k: d.parent_key for k, d in data.snapshot.departments.items()})

    def chain(key: str | None) -> list[str]:
        out: list[str] = []
        while key is not None and key not in out:
            out.append(key)
            key = parents.get(key)
        return out

    roots = set(stage.departments)
    departments = {k for k in parents if not roots.isdisjoint(chain(k))}
    primary = {k: u.record.department_keys[0] if u.record.department_keys else None
               for k, u in state.users.items()}
    primary.update({k: e.department_keys[0] if e.department_keys else None
                    for k, e in data.snapshot.employees.items()})
    people = set(stage.people) | {k for k, d in primary.items() if d in departments}
    if stage.first is not None:
        people.update(sorted(primary)[:stage.first])
    by_id = {op.op_id: op for op in plan.operations}
    inside = {op.op_id for op in plan.operations
              if op.key in (departments if op.entity == "department" else people)}
    # What a staged operation needs to exist comes along; what else it waits for holds it.
    todo = list(inside)
    while todo:
        for dep in by_id[todo.pop()].depends_on:
            need = by_id.get(dep)
            if need is not None and dep not in inside and need.kind in _STRUCTURE:
                inside.add(dep)
                todo.append(dep)
    changed = True
    while changed:
        changed = False
        for i in sorted(inside):
            op = by_id[i]
            missing = [by_id[d] for d in op.depends_on if d in by_id and d not in inside]
            if not missing:
                continue
            swapped = _unlinked(op, missing)
            if swapped is not None:
                by_id[i] = swapped
            else:
                inside.discard(i)
            changed = True
    kept = tuple(by_id[op.op_id] for op in plan.operations if op.op_id in inside)
    deferred = tuple(_deferred(op) for op in plan.operations if op.op_id not in inside)
    return dataclasses.replace(plan, operations=kept, deferred=deferred)


def _unlinked(op: Operation, missing: list[Operation]) -> Operation | None:
    """``op`` without its link to the one person outside the stage it waits for (a new
    person's create naming a manager who is not created in this stage): created now,
    linked by a later run once the manager exists. None when it must wait instead."""
    spec = SPECS[op.kind]
    people = {m.key for m in missing}
    if spec.unlinked is None or len(people) != 1 \
            or not all(SPECS[m.kind].arrives for m in missing):
        return None
    return spec.unlinked(op, people.pop())


def _deferred(op: Operation) -> Operation:
    return dataclasses.replace(op, reason=f"{DEFERRED}: {op.reason}")
