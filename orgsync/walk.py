"""A walk of a dependency DAG by lanes of workers; it knows nothing of what a node does.

Contracts of :func:`walk`:

* a node starts only once every node it depends on succeeded (each dependency
  must be a node of the DAG);
* a node whose dependency did not succeed is not started: ``skip`` makes its
  result, and its own dependants are skipped in turn; independent nodes go on —
  unless ``instead(node, cause)`` gives a node to run in its place (the same id,
  fewer dependencies): that one waits for those of its dependencies still pending;
* a node waits in its lane's queue; a lane of size ``n`` runs at most ``n`` nodes
  at once, so a slow lane never starves the others;
* an exception of a type in ``halt`` from ``do_one`` halts the walk: no further node
  starts, the nodes in flight finish (their results are kept and their
  dependants released or skipped as usual), then the exception is raised. Any other
  exception from ``do_one`` or ``skip`` cancels the nodes in flight and is raised.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, Protocol, TypeVar


class Node(Protocol):
    """A node of the DAG: its id and the ids of the nodes it depends on."""

    @property
    def op_id(self) -> str: ...

    @property
    def depends_on(self) -> Sequence[str]: ...


class Outcome(Protocol):
    """What became of a node: whether its dependants may start."""

    @property
    def ok(self) -> bool: ...


Halt = type[BaseException] | tuple[type[BaseException], ...]
"""The exception type(s) that halt a walk (as ``except`` takes them)."""

N = TypeVar("N", bound=Node)
R = TypeVar("R", bound=Outcome)


async def walk(dag: Sequence[N], lanes: Mapping[str, int], lane_of: Callable[[N], str],
               do_one: Callable[[N], Awaitable[R]], skip: Callable[[N, R], R], *,
               halt: Halt, instead: Callable[[N, R], N | None] | None = None) -> list[R]:
    """Run ``do_one`` on every node of ``dag`` in dependency order; results in completion order.

    ``lanes``: workers per lane name; ``lane_of``: the lane a node waits in.
    ``skip(node, cause)``: the result of a node not started because the result
    ``cause`` of one of its dependencies was not ok. ``instead(node, cause)``: the
    node to run in its place then, or ``None`` to skip it.
    """
    if not dag:
        return []
    return await _Walk(dag, lanes, lane_of, do_one, skip, halt, instead).run()


class _Walk(Generic[N, R]):
    """The state of one walk."""

    def __init__(self, dag: Sequence[N], lanes: Mapping[str, int], lane_of: Callable[[N], str],
                 do_one: Callable[[N], Awaitable[R]], skip: Callable[[N, R], R],
                 halt: Halt, instead: Callable[[N, R], N | None] | None) -> None:
        self.lanes, self.lane_of, self.do_one, self.skip, self.halt, self.instead = \
            lanes, lane_of, do_one, skip, halt, instead
        self.nodes = {n.op_id: n for n in dag}
        # Each node's pending dependencies as a tuple, its own ``depends_on`` until one of
        # them finishes: a set per node cost 24 MB of a 10⁵-operation apply.
        self.waiting: dict[str, tuple[str, ...]] = {
            i: tuple(n.depends_on) for i, n in self.nodes.items()}
        self.dependants: dict[str, list[str]] = defaultdict(list)
        for i, n in self.nodes.items():
            for d in n.depends_on:
                self.dependants[d].append(i)
        self.queues: dict[str, asyncio.Queue[N | None]] = {lane: asyncio.Queue() for lane in lanes}
        self.remaining = len(self.nodes)
        self.all_done = asyncio.Event()
        self.halted: list[BaseException] = []
        self.results: list[R] = []

    def _ready(self, node: N) -> None:
        self.queues[self.lane_of(node)].put_nowait(node)

    def _finish(self, node: N, r: R) -> None:
        self.results.append(r)
        self.remaining -= 1
        for c in self.dependants.get(node.op_id, ()):
            if c not in self.waiting:  # already skipped: another dependency failed
                continue
            alt = None if r.ok or self.instead is None else self.instead(self.nodes[c], r)
            if alt is not None:
                self.nodes[c] = alt
                kept = set(alt.depends_on)
                self.waiting[c] = tuple(d for d in self.waiting[c] if d in kept)
            if r.ok or alt is not None:
                pending = tuple(d for d in self.waiting[c] if d != node.op_id)
                self.waiting[c] = pending
                if not pending:
                    self._ready(self.nodes[c])
            else:
                del self.waiting[c]
                self._finish(self.nodes[c], self.skip(self.nodes[c], r))
        if self.remaining == 0:
            self.all_done.set()

    async def _worker(self, lane: str) -> None:
        q = self.queues[lane]
        while True:
            node = await q.get()
            if node is None or self.halted:
                return
            if node.op_id not in self.waiting:
                continue
            del self.waiting[node.op_id]
            try:
                r = await self.do_one(node)
            except self.halt as exc:
                self.halted.append(exc)
                self.all_done.set()
                return
            self._finish(node, r)

    async def run(self) -> list[R]:
        for i, deps in list(self.waiting.items()):
            if not deps:
                self._ready(self.nodes[i])
        workers = [asyncio.create_task(self._worker(lane))
                   for lane, n in self.lanes.items() for _ in range(n)]
        done_waiter = asyncio.create_task(self.all_done.wait())
        try:
            # A worker can only end early through a bug; surface it instead of
            # waiting forever for nodes nobody will run.
            finished, _ = await asyncio.wait({done_waiter, *workers},
                                             return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                if task is not done_waiter and (exc := task.exception()) is not None:
                    raise exc
        finally:
            done_waiter.cancel()
            for lane, n in self.lanes.items():
                for _ in range(n):
                    self.queues[lane].put_nowait(None)
            if not self.halted:  # halted: the nodes in flight finish
                for w in workers:
                    if not w.done():
                        w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if self.halted:
            raise self.halted[0]
        return self.results
