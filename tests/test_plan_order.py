"""The order of a plan's operations (:func:`orgsync.plan.topological`), pure logic."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orgsync.plan import KIND_ORDER, Operation, OpKind, op_id, topological

_KINDS = (OpKind.DEPT_CREATE, OpKind.DEPT_SET_LEADER, OpKind.USER_CREATE,
          OpKind.USER_SET_MANAGER)


def _op(kind: OpKind, key: str, deps: tuple[str, ...] = ()) -> Operation:
    return Operation(op_id(kind, key), kind, key, "", {}, (), "", deps)


def _smallest_first(ops: list[Operation]) -> list[str]:
    """The defining order, the slow way: repeatedly the first operation in (kind, key)
    order whose dependencies (those in the plan, not itself) are all placed."""
    ids = {op.op_id for op in ops}
    left = sorted(ops, key=lambda op: (KIND_ORDER[op.kind], op.key))
    placed: list[str] = []
    while left:
        ready = next(op for op in left
                     if all(d in placed or d not in ids or d == op.op_id for d in op.depends_on))
        placed.append(ready.op_id)
        left.remove(ready)
    return placed


@st.composite
def _plans(draw: st.DrawFn) -> list[Operation]:
    """Acyclic plans: an operation depends only on ones drawn before it (in a random
    order of keys and kinds), with shared dependency tuples, repeats, unknown ids."""
    n = draw(st.integers(1, 40))
    made: list[Operation] = []
    shared: list[tuple[str, ...]] = []
    for i in range(n):
        kind = draw(st.sampled_from(_KINDS))
        key = f"K{draw(st.integers(0, 60)):03d}"
        earlier = [op.op_id for op in made]
        reuse: bool = draw(st.booleans())
        deps: tuple[str, ...]
        if shared and reuse:
            deps = draw(st.sampled_from(shared))
        else:
            deps = tuple(draw(st.lists(st.sampled_from(earlier), max_size=4))) if earlier else ()
            if draw(st.booleans()):
                deps = (*deps, f"missing:{i}")
            shared.append(deps)
        op = _op(kind, key, deps)
        if any(op.op_id == m.op_id for m in made):
            continue  # one operation per id: a later one would replace a depended-on one
        made.append(op)
    return made


@settings(max_examples=300, deadline=None)
@given(_plans())
def test_the_first_ready_operation_in_kind_and_key_order_comes_next(ops: list[Operation]) -> None:
    ordered = topological(ops)
    assert [op.op_id for op in ordered] == _smallest_first(ops)
    ids = {op.op_id for op in ops}
    for op in ordered:
        assert op.depends_on == tuple(sorted({d for d in op.depends_on if d in ids}))
        assert op.op_id not in op.depends_on


def test_dependencies_are_trimmed_sorted_and_shared() -> None:
    """Unknown ids and repeats go; operations that named one tuple still share one."""
    dept = _op(OpKind.DEPT_CREATE, "D1")
    deps = ("nowhere", dept.op_id, dept.op_id)
    a, b = _op(OpKind.USER_CREATE, "E2", deps), _op(OpKind.USER_CREATE, "E1", deps)
    ordered = topological([b, a, dept])
    assert [op.key for op in ordered] == ["D1", "E1", "E2"]
    assert ordered[1].depends_on == (dept.op_id,)
    assert ordered[1].depends_on is ordered[2].depends_on


def test_a_cycle_is_refused_with_its_operations() -> None:
    a = _op(OpKind.USER_CREATE, "E1", (op_id(OpKind.USER_CREATE, "E2"),))
    b = _op(OpKind.USER_CREATE, "E2", (op_id(OpKind.USER_CREATE, "E1"),))
    free = _op(OpKind.DEPT_CREATE, "D1")
    with pytest.raises(ValueError, match="dependency cycle among operations") as err:
        topological([a, b, free])
    assert str(err.value) == f"dependency cycle among operations: {sorted([a.op_id, b.op_id])}"


def test_large_random_plans_keep_the_order() -> None:
    """A few hundred operations with shared tuples, against the slow definition."""
    rng = random.Random(7)
    made: list[Operation] = []
    for i in range(400):
        kind = rng.choice(_KINDS)
        earlier = [op.op_id for op in made]
        deps = tuple(rng.sample(earlier, min(len(earlier), rng.randint(0, 3))))
        op = _op(kind, f"K{i:04d}" if rng.random() < 0.9 else f"A{i:04d}", deps)
        made.append(op)
    assert [op.op_id for op in topological(made)] == _smallest_first(made)
