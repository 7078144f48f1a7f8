"""Runs a Plan's DAG against Feishu, journaling every operation.

Each operation is done as its kind's :class:`~orgsync.operations.OpSpec` says.

Contracts:

* an operation starts only when all its dependencies are done;
* it is journaled (``started``, with its ``client_token``) before the call and
  finished after it; a success updates the mirror in the same transaction;
* a failed operation is recorded with its Feishu code; everything that depends
  on it, directly or not, is skipped; independent work continues;
* pacing is the client's job (per-endpoint limits). Operations wait in *lanes*
  (:attr:`orgsync.operations.OpSpec.lane`) so that a slow 1-QPS class (moves,
  freezes) never starves the others;
* a run killed at any point is resumed by the next run: a create whose outcome
  was never learned is replayed with the same ``client_token`` (Feishu returns
  the first result) or, if Feishu already has the id, adopted and patched;
* a run that lost the writer lock (the journal refuses its next entry with
  :class:`Fenced`, see :mod:`orgsync.writer`) starts no further call: the calls in
  flight finish and are journaled, then :meth:`Executor.run` raises ``Fenced``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from orgsync.errors import FeishuError, Fenced
from orgsync.ledger import Ledger
from orgsync.operations import SPECS, ContactAPI, OpSpec
from orgsync.plan import Operation, Plan

log = structlog.get_logger("orgsync.executor")


@dataclass(slots=True)
class OpResult:
    """What happened to one operation."""

    op: Operation
    status: str  # done | failed | skipped
    code: int | None = None
    message: str | None = None


@dataclass(slots=True)
class ApplyResult:
    """Outcome of applying a plan."""

    results: list[OpResult] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"ApplyResult({self.summary()})"  # short, like Plan's

    def count(self, status: str) -> int:
        """How many operations ended with ``status``."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[OpResult]:
        """Failed operations, in completion order."""
        return [r for r in self.results if r.status == "failed"]

    def summary(self) -> dict[str, int]:
        """Counts by status."""
        return {s: self.count(s) for s in ("done", "failed", "skipped")}


Progress = Callable[[OpResult], None]
#: The notifications a successful operation makes due (event keys, see orgsync.notify).
Arrivals = Callable[[Operation], Sequence[str]]


class Executor:
    """Applies plans; one instance per run."""

    def __init__(self, client: ContactAPI, ledger: Ledger, *, run_id: str,
                 concurrency: int = 16, progress: Progress | None = None,
                 arrivals: Arrivals | None = None) -> None:
        self.client = client
        self.arrivals = arrivals
        self.ledger = ledger
        self.run_id = run_id
        self.lane_sizes = {s.lane.name: s.lane.size or max(1, concurrency) for s in SPECS.values()}
        self.progress = progress

    async def run(self, plan: Plan) -> ApplyResult:
        """Apply every operation of ``plan`` in dependency order."""
        result = ApplyResult()
        ops = {op.op_id: op for op in plan.operations}
        waiting = {i: set(op.depends_on) for i, op in ops.items()}
        dependants: dict[str, list[str]] = defaultdict(list)
        for i, op in ops.items():
            for d in op.depends_on:
                dependants[d].append(i)
        queues: dict[str, asyncio.Queue[Operation | None]] = {
            lane: asyncio.Queue() for lane in self.lane_sizes}
        remaining = len(ops)
        all_done = asyncio.Event()
        fenced: list[Fenced] = []
        if remaining == 0:
            return result

        def finish(r: OpResult) -> None:
            nonlocal remaining
            result.results.append(r)
            remaining -= 1
            if self.progress:
                self.progress(r)
            if r.status == "done":
                for c in dependants.get(r.op.op_id, ()):
                    if c not in waiting:  # already skipped: another dependency failed
                        continue
                    waiting[c].discard(r.op.op_id)
                    if not waiting[c]:
                        queues[_lane_of(ops[c])].put_nowait(ops[c])
            else:
                for c in dependants.get(r.op.op_id, ()):
                    if c in waiting:
                        del waiting[c]
                        reason = f"skipped: depends on {r.op.op_id} ({r.status})"
                        self.ledger.journal_skip(self.run_id, plan.plan_id, ops[c], reason)
                        finish(OpResult(ops[c], "skipped", None, reason))
            if remaining == 0:
                all_done.set()

        async def worker(lane: str) -> None:
            q = queues[lane]
            while True:
                op = await q.get()
                if op is None or fenced:
                    return
                if op.op_id not in waiting:
                    continue
                del waiting[op.op_id]
                try:
                    r = await self._apply_one(plan.plan_id, op)
                except Fenced as exc:
                    fenced.append(exc)
                    all_done.set()
                    return
                finish(r)

        for i, deps in list(waiting.items()):
            if not deps:
                queues[_lane_of(ops[i])].put_nowait(ops[i])
        workers = [asyncio.create_task(worker(lane))
                   for lane, n in self.lane_sizes.items() for _ in range(n)]
        done_waiter = asyncio.create_task(all_done.wait())
        try:
            # A worker can only end early through a bug; surface it instead of
            # waiting forever for operations nobody will run.
            finished, _ = await asyncio.wait({done_waiter, *workers},
                                             return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                if task is not done_waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            done_waiter.cancel()
            for lane, n in self.lane_sizes.items():
                for _ in range(n):
                    queues[lane].put_nowait(None)
            if not fenced:  # fenced: the calls in flight finish and are journaled
                for w in workers:
                    if not w.done():
                        w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if fenced:
            raise fenced[0]
        return result

    async def _apply_one(self, plan_id: str, op: Operation) -> OpResult:
        """Journal, call, recover, journal: one operation. Raises :class:`Fenced` when
        the journal refuses it (the run lost the writer lock)."""
        spec = SPECS[op.kind]
        try:
            entry, token = self.ledger.journal_start(
                self.run_id, plan_id, op, tokenize=op.token_for if spec.tokenized else None)
        except Fenced:
            log.error("run.fenced", op=op.op_id)
            raise
        try:
            open_id, note = await self._call(spec, op, entry, token)
        except FeishuError as exc:
            self.ledger.journal_finish(entry, op, "failed", code=exc.code, message=exc.msg)
            log.warning("op.failed", op=op.op_id, code=exc.code, msg=exc.msg)
            return OpResult(op, "failed", exc.code, exc.msg)
        except Exception as exc:
            # Not Feishu's answer but our own bug or an unexpected transport error:
            # the outcome is unknown, so the journal says so and the run goes on;
            # the next run replans this operation.
            message = f"{type(exc).__name__}: {exc}"[:500]
            self.ledger.journal_finish(entry, op, "failed", code=-1, message=message)
            log.exception("op.crashed", op=op.op_id)
            return OpResult(op, "failed", -1, message)
        # Messages owed for this write (a new hire's welcome) are recorded with it,
        # in one transaction: a crash before they are sent still leaves them owed.
        events = self.arrivals(op) if self.arrivals is not None else ()
        self.ledger.journal_finish(entry, op, "done", open_id=open_id, message=note,
                                   events=events)
        if note:
            self.ledger.settle_unfinished(op.kind, op.key, "done", note)
        return OpResult(op, "done", None, note)

    async def _call(self, spec: OpSpec, op: Operation, entry: int, token: str | None
                    ) -> tuple[str | None, str | None]:
        """Perform ``op``; returns (open id, note). Settles the outcome of a write whose
        earlier attempt was never learned."""
        try:
            return await spec.call(self.client, op, token), None
        except FeishuError as exc:
            if spec.adopt is not None and exc.code in spec.exists and \
                    self.ledger.has_unfinished(op.kind, op.key, exclude=entry):
                # An earlier run may have created it, then died before journaling the
                # result. If our id exists, adopt it and patch it to the planned state
                # (the source may have changed since).
                return (await spec.adopt(self.client, op, exc),
                        "adopted after an interrupted create")
            if spec.settle is not None and exc.code in spec.gone:
                return None, await spec.settle(self.client, op, exc)
            raise


def _lane_of(op: Operation) -> str:
    return SPECS[op.kind].lane.name
