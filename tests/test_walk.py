"""The DAG walk (orgsync.walk): order, skips, lanes and halting, with plain nodes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from orgsync.walk import walk


@dataclass(frozen=True)
class N:
    op_id: str
    depends_on: tuple[str, ...] = ()
    lane: str = "a"


@dataclass(frozen=True)
class R:
    node: str
    ok: bool
    cause: str = ""


class Halt(Exception):
    pass


def _skip(node: N, cause: R) -> R:
    return R(node.op_id, False, cause.node)


def test_dependants_wait_for_success_and_a_failure_skips_them_transitively() -> None:
    dag = [N("a"), N("b", ("a",)), N("bad"), N("c", ("bad",)), N("d", ("c", "b"))]
    started: list[str] = []

    async def do_one(node: N) -> R:
        started.append(node.op_id)
        return R(node.op_id, node.op_id != "bad")

    results = asyncio.run(walk(dag, {"a": 2}, lambda n: n.lane, do_one, _skip, halt=Halt))
    assert started.index("a") < started.index("b")
    assert sorted(started) == ["a", "b", "bad"]
    assert {r.node: (r.ok, r.cause) for r in results} == {
        "a": (True, ""), "b": (True, ""), "bad": (False, ""), "c": (False, "bad"),
        "d": (False, "c")}


def test_a_node_given_instead_runs_after_its_other_dependencies() -> None:
    """``instead`` replaces a node whose dependency failed: the replacement drops that
    dependency, still waits for the others, and its own dependants go ahead."""
    dag = [N("bad"), N("slow"), N("c", ("bad", "slow")), N("d", ("c",)), N("e", ("bad",))]
    started: list[str] = []

    async def do_one(node: N) -> R:
        started.append(node.op_id)
        return R(node.op_id, node.op_id != "bad", ",".join(node.depends_on))

    def instead(node: N, cause: R) -> N | None:
        return N(node.op_id, tuple(d for d in node.depends_on if d != cause.node)) \
            if node.op_id == "c" else None

    results = asyncio.run(walk(dag, {"a": 1}, lambda n: n.lane, do_one, _skip, halt=Halt,
                               instead=instead))
    assert started.index("slow") < started.index("c") < started.index("d")
    assert {r.node: (r.ok, r.cause) for r in results} == {
        "bad": (False, ""), "slow": (True, ""), "c": (True, "slow"), "d": (True, "c"),
        "e": (False, "bad")}


def test_a_lane_runs_at_most_its_size_and_never_holds_up_another() -> None:
    dag = [N("s1", lane="slow"), N("s2", lane="slow"), N("f1", lane="fast"),
           N("f2", ("f1",), lane="fast")]
    release = asyncio.Event()
    busy: dict[str, int] = {"slow": 0, "fast": 0}
    peak: dict[str, int] = {"slow": 0, "fast": 0}

    async def do_one(node: N) -> R:
        busy[node.lane] += 1
        peak[node.lane] = max(peak[node.lane], busy[node.lane])
        if node.op_id == "s1":
            await release.wait()  # the slow lane is stuck until the fast one is done
        if node.op_id == "f2":
            release.set()
        busy[node.lane] -= 1
        return R(node.op_id, True)

    results = asyncio.run(walk(dag, {"slow": 1, "fast": 1}, lambda n: n.lane, do_one, _skip,
                               halt=Halt))
    assert [r.node for r in results][:2] == ["f1", "f2"]
    assert peak == {"slow": 1, "fast": 1}


def test_halt_starts_nothing_more_lets_calls_in_flight_finish_then_raises() -> None:
    dag = [N("slow"), N("halts"), N("later", ("slow",)), N("queued")]
    finished: list[str] = []
    in_flight, halting = asyncio.Event(), asyncio.Event()

    async def do_one(node: N) -> R:
        if node.op_id == "slow":
            in_flight.set()
            await halting.wait()  # still in flight when the walk halts
        elif node.op_id == "halts":
            await in_flight.wait()
            halting.set()
            raise Halt
        finished.append(node.op_id)
        return R(node.op_id, True)

    with pytest.raises(Halt):
        asyncio.run(walk(dag, {"a": 2}, lambda n: n.lane, do_one, _skip, halt=Halt))
    assert finished == ["slow"]
