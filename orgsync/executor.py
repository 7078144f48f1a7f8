"""Runs a Plan's DAG against Feishu, journaling every operation.

:func:`orgsync.walk.walk` walks the DAG; this module does the work of one
operation, as its kind's :class:`~orgsync.operations.OpSpec` says.

Contracts:

* an operation starts only when all its dependencies are done;
* it is journaled (``started``, with its ``client_token``) before the call and
  finished after it; a success updates the mirror in the same transaction;
* a failed operation is recorded with its Feishu code and, for the codes
  :mod:`orgsync.feishu.codes` knows (out of the contact range, tenant settings,
  resurrect busy …), what it means and the remedy; everything that depends on it,
  directly or not, is skipped (but a create naming a manager whose own arrival failed
  runs without that link: :attr:`~orgsync.operations.OpSpec.unlinked`); independent
  work continues; a record Feishu People
  owns (:mod:`orgsync.locked`) is remembered so later plans leave it alone;
* a user create/patch answered 44054–44059 *was* done, only the work city / job
  title enum failed (feishu-api-more.md §1.4): it is recorded ``done`` with a
  warning naming the field, its dependants go ahead, it is never retried, and the
  mirror does not claim the field, so the next run writes it again;
* pacing is the client's job (per-endpoint limits). Operations wait in *lanes*
  (:attr:`orgsync.operations.OpSpec.lane`) so that a slow 1-QPS class (moves,
  freezes) never starves the others;
* a run killed at any point is resumed by the next run: a create whose outcome
  was never learned is replayed with the same ``client_token`` (Feishu returns
  the first result) or, if Feishu already has the id, adopted and patched;
* a run that lost the writer lock (the journal refuses its next entry with
  :class:`Fenced`, see :mod:`orgsync.writer`) starts no further call: the calls in
  flight finish and are journaled, then :meth:`Executor.run` raises ``Fenced``;
* so does a run whose call found Feishu unusable (no answer after that call's retries,
  or credentials refused: :class:`~orgsync.errors.FeishuUnusable`): one call's retry
  budget is spent, not every operation's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import structlog

from orgsync.errors import FeishuError, FeishuUnusable, Fenced
from orgsync.feishu.codes import CODES, Kind, explain
from orgsync.ledger import Ledger
from orgsync.locked import is_lock, remember_locked
from orgsync.operations import SPECS, ContactAPI, MirrorChange, OpSpec
from orgsync.plan import Operation, Plan
from orgsync.walk import walk

log = structlog.get_logger("orgsync.executor")


@dataclass(slots=True)
class OpResult:
    """What happened to one operation."""

    op: Operation
    status: str  # done | failed | skipped
    code: int | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        """True when it was done: its dependants may start."""
        return self.status == "done"


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
        plan_id = plan.plan_id

        async def do_one(op: Operation) -> OpResult:
            return self._report(await self._apply_one(plan_id, op))

        def skip(op: Operation, cause: OpResult) -> OpResult:
            reason = f"skipped: depends on {cause.op.op_id} ({cause.status})"
            self.ledger.journal_skip(self.run_id, plan_id, op, reason)
            return self._report(OpResult(op, "skipped", None, reason))

        return ApplyResult(await walk(plan.operations, self.lane_sizes, _lane_of, do_one, skip,
                                      halt=(Fenced, FeishuUnusable), instead=_unlinked))

    def _report(self, r: OpResult) -> OpResult:
        if self.progress:
            self.progress(r)
        return r

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
        except FeishuUnusable as exc:
            # Feishu is gone (or refuses us): every further call would spend its retries
            # the same way. This one's outcome is unknown; the next run settles it.
            self.ledger.journal_finish(entry, op, "failed", code=exc.code, message=str(exc)[:500])
            log.error("run.feishu_unusable", op=op.op_id, check=exc.check, code=exc.code)
            raise
        except _PartialSuccess as partial:
            op, open_id, note = partial.op, partial.open_id, partial.note
            log.warning("op.partial", op=op.op_id, code=partial.code, note=note)
        except FeishuError as exc:
            message = explain(exc)
            self.ledger.journal_finish(entry, op, "failed", code=exc.code, message=message)
            if is_lock(exc):  # reported this once; later plans leave it alone
                remember_locked(self.ledger, op)
            log.warning("op.failed", op=op.op_id, code=exc.code, msg=message)
            return OpResult(op, "failed", exc.code, message)
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
            if exc.code in _PARTIAL_FIELDS and op.entity == "user":
                raise await _partial(self.client, op, exc) from None
            if spec.adopt is not None and exc.code in spec.exists and \
                    self.ledger.has_unfinished(op.kind, op.key, exclude=entry):
                # An earlier run may have created it, then died before journaling the
                # result. If our id exists, adopt it and patch it to the planned state
                # (the source may have changed since).
                return (await spec.adopt(self.client, op, exc),
                        "adopted after an interrupted create")
            if spec.settle is not None and exc.code in spec.gone:
                return None, await spec.settle(self.client, op, exc)
            if spec.instead is not None and exc.code in spec.refused:
                return await spec.instead(self.client, op, exc)
            raise


def _lane_of(op: Operation) -> str:
    return SPECS[op.kind].lane.name


def _unlinked(op: Operation, cause: OpResult) -> Operation | None:
    """``op`` without its link to the user whose arrival ``cause`` did not happen."""
    unlinked = SPECS[op.kind].unlinked
    if unlinked is None or not SPECS[cause.op.kind].arrives:
        return None
    return unlinked(op, cause.op.key)


#: 44054–44059 (``U/create``, ``U/patch``): the canonical fields whose enum value failed.
_PARTIAL_FIELDS: dict[int, tuple[str, ...]] = {
    code: (("city",), ("job_title",), ("city", "job_title"))[(code - 44054) % 3]
    for code, known in CODES.items() if known.kind is Kind.PARTIAL}


class _PartialSuccess(Exception):
    """A write Feishu did, all but the fields named in ``note``."""

    def __init__(self, op: Operation, open_id: str | None, code: int, note: str) -> None:
        super().__init__(note)
        self.op, self.open_id, self.code, self.note = op, open_id, code, note


async def _partial(client: ContactAPI, op: Operation, exc: FeishuError) -> _PartialSuccess:
    """The done write behind a 44054–44059: the operation as the mirror takes it (without
    the fields that failed) and, for a create, the open id read back — whether ``data.user``
    comes with these codes is UNCONFIRMED, so it is not relied on."""
    failed = _PARTIAL_FIELDS[exc.code]
    open_id: str | None = None
    if SPECS[op.kind].mirror is MirrorChange.INSERT:
        open_id = (await client.get_user(op.feishu_id)).get("open_id")
    mirror = {k: (None if k in failed else v) for k, v in (op.mirror or {}).items()}
    note = f"done, but {' and '.join(failed)} not set ({exc.code}): {explain(exc)}"
    return _PartialSuccess(replace(op, mirror=mirror), open_id, exc.code, note)
