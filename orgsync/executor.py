"""Runs a Plan's DAG against Feishu, journaling every operation.

Contracts:

* an operation starts only when all its dependencies are done;
* it is journaled (``started``, with its ``client_token``) before the call and
  finished after it; a success updates the mirror in the same transaction;
* a failed operation is recorded with its Feishu code; everything that depends
  on it, directly or not, is skipped; independent work continues;
* pacing is the client's job (per-endpoint limits). Operations wait in *lanes*
  so that a slow 1-QPS class (moves, freezes) never starves the others;
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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from orgsync.errors import FeishuError, Fenced
from orgsync.ledger import Ledger
from orgsync.plan import Operation, OpKind, Plan

log = structlog.get_logger("orgsync.executor")

#: Uniqueness conflicts a create can meet when an earlier, interrupted attempt of
#: the same create went through: id, name/order among siblings; user_id, mobile,
#: email, employee_no. Feishu's order of checks is undocumented, so any of them.
_EXISTS = {OpKind.DEPT_CREATE: {43007, 43022, 43005},
           OpKind.USER_CREATE: {41011, 41001, 41002, 44051}}
#: Codes that mean "already gone" on a delete (by our reading of feishu-api.md §6).
_GONE = {40015, 99992380, 99992357, 99992360, 99992351, 42006}

_LANES: dict[OpKind, str] = {
    OpKind.USER_MOVE: "membership",
    OpKind.USER_FREEZE: "membership",
    OpKind.USER_UNFREEZE: "membership",
    OpKind.USER_RESURRECT: "resurrect",
    OpKind.WELCOME_SEND: "message",
}


class ContactAPI(Protocol):
    """The part of :class:`orgsync.feishu.FeishuClient` the executor uses."""

    async def create_department(self, body: Mapping[str, Any], *,
                                client_token: str | None = None) -> dict[str, Any]: ...
    async def get_department(self, department_id: str) -> dict[str, Any]: ...
    async def patch_department(self, department_id: str,
                               body: Mapping[str, Any]) -> dict[str, Any]: ...
    async def delete_department(self, department_id: str) -> None: ...
    async def create_user(self, body: Mapping[str, Any], *,
                          client_token: str | None = None) -> dict[str, Any]: ...
    async def get_user(self, user_id: str) -> dict[str, Any]: ...
    async def patch_user(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    async def delete_user(self, user_id: str,
                          handover: Mapping[str, Any] | None = None) -> None: ...
    async def resurrect_user(self, user_id: str,
                             departments: Sequence[Mapping[str, Any]]) -> None: ...
    async def update_user_id(self, user_id: str, new_user_id: str) -> None: ...


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
        self.lane_sizes = {"default": max(1, concurrency), "membership": 2, "resurrect": 1,
                           "message": 4}
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
                        queues[_LANES.get(ops[c].kind, "default")].put_nowait(ops[c])
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
                    log.error("run.fenced", op=op.op_id)
                    fenced.append(exc)
                    all_done.set()
                    return
                finish(r)

        for i, deps in list(waiting.items()):
            if not deps:
                queues[_LANES.get(ops[i].kind, "default")].put_nowait(ops[i])
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
        entry, token = self.ledger.journal_start(
            self.run_id, plan_id, op, tokenize=op.token_for if op.kind in _EXISTS else None)
        try:
            open_id, override, note = await self._call(op, entry, token)
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
                                   mirror_override=override, events=events)
        if note:
            self.ledger.settle_unfinished(op.kind, op.key, "done", note)
        return OpResult(op, "done", None, note)

    async def _call(self, op: Operation, entry: int, token: str | None
                    ) -> tuple[str | None, Mapping[str, Any] | None, str | None]:
        """Perform ``op``; returns (open id, mirror override, note)."""
        c = self.client
        k = op.kind
        try:
            if k is OpKind.DEPT_CREATE:
                dept = await c.create_department(op.payload, client_token=token)
                return dept.get("open_department_id"), None, None
            if k in (OpKind.DEPT_UPDATE, OpKind.DEPT_MOVE, OpKind.DEPT_SET_LEADER):
                await c.patch_department(op.feishu_id, op.payload)
                return None, None, None
            if k is OpKind.DEPT_DELETE:
                await c.delete_department(op.feishu_id)
                return None, None, None
            if k is OpKind.USER_CREATE:
                user = await c.create_user(op.payload, client_token=token)
                return user.get("open_id"), None, None
            if k in (OpKind.USER_UPDATE, OpKind.USER_MOVE, OpKind.USER_SET_MANAGER,
                     OpKind.USER_FREEZE, OpKind.USER_UNFREEZE):
                await c.patch_user(op.feishu_id, op.payload)
                return None, None, None
            if k is OpKind.USER_DELETE:
                await c.delete_user(op.feishu_id, op.payload or None)
                return None, None, None
            if k is OpKind.USER_ADOPT:
                user = await c.patch_user(op.feishu_id, op.payload)
                return user.get("open_id"), None, None
            if k is OpKind.USER_RESURRECT:
                await c.resurrect_user(op.feishu_id, op.payload["departments"])
                return None, None, None
            if k is OpKind.USER_REKEY:
                if op.payload:  # else an adopted account: its user_id is not the key
                    await c.update_user_id(op.feishu_id, op.payload["new_user_id"])
                return None, None, None
        except FeishuError as exc:
            return await self._recover(op, exc, entry)
        raise NotImplementedError(f"executor cannot apply {k.value} yet")

    async def _recover(self, op: Operation, exc: FeishuError, entry: int
                       ) -> tuple[str | None, Mapping[str, Any] | None, str | None]:
        """Settle the outcome of a write whose earlier attempt was never learned."""
        if op.kind in _EXISTS and exc.code in _EXISTS[op.kind] and \
                self.ledger.has_unfinished(op.kind, op.key, exclude=entry):
            # An earlier run may have created it, then died before journaling the
            # result. If our id exists, adopt it and patch it to the planned state
            # (the source may have changed since).
            if op.kind is OpKind.DEPT_CREATE:
                if not await self._exists(self.client.get_department, op.feishu_id):
                    raise exc
                body = {k: v for k, v in op.payload.items() if k != "department_id"}
                dept = await self.client.patch_department(op.feishu_id, body)
                return dept.get("open_department_id"), None, "adopted after an interrupted create"
            if not await self._exists(self.client.get_user, op.feishu_id):
                raise exc
            body = {k: v for k, v in op.payload.items() if k != "user_id"}
            user = await self.client.patch_user(op.feishu_id, body)
            return user.get("open_id"), None, "adopted after an interrupted create"
        if op.kind in (OpKind.DEPT_DELETE, OpKind.USER_DELETE) and exc.code in _GONE:
            return None, None, f"already gone in Feishu ({exc.code})"
        if op.kind is OpKind.USER_REKEY and exc.code in _GONE | _EXISTS[OpKind.USER_CREATE] \
                and await self._exists(self.client.get_user, op.payload["new_user_id"]) \
                and not await self._exists(self.client.get_user, op.feishu_id):
            # The old id is gone and the new one is live: an attempt whose answer was lost
            # (a retry of this call, or a run killed before journaling) changed it.
            return None, None, "id already changed (an earlier attempt's answer was lost)"
        raise exc

    @staticmethod
    async def _exists(get: Callable[[str], Awaitable[dict[str, Any]]], feishu_id: str) -> bool:
        """True when ``get`` finds a live entity with our custom id."""
        try:
            found = await get(feishu_id)
        except FeishuError:
            return False
        status = found.get("status") or {}
        return not (status.get("is_resigned") or status.get("is_deleted"))
