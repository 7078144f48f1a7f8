"""Leave sync: read the leave file, plan (:mod:`orgsync.leave_plan`), apply, journal.

The leave ledger is the ``leave_marks`` table (:class:`orgsync.tables.LeaveMarkRow`), in the
same database as the mirror: Feishu has no list or get for time-off events, so the event id
kept there is the only way to delete one.

**Journal and crashes.** A create is journaled (``creating``, no id) before the call and
finished (``active`` + the event id) after it; a delete is journaled (``deleting``) before
and its row removed after. Feishu's create takes no idempotency token and cannot be asked
whether an event exists, so a crash between Feishu's answer and the journal leaves a
``creating`` row without an id: the next run creates the mark again. At worst a person shows
a **duplicate** mark (the first event, whose id was lost, stays until someone removes it in
the calendar) — never a **lost** one: a missing 请假 mark gets people booked into meetings
while on leave; a doubled one shows the same days twice. The run warns about every such
row. A crash around a delete is exact: ``deleting`` is retried, and an id Feishu no
longer knows counts as deleted.

**Safety.** A leave file that cannot be read is a failed read: the run stops before planning,
nothing is deleted. An empty file while marks for future leave exist is refused the same
way (an export that lost its rows looks exactly like that). Deleting more than the
configured share of future marks holds the plan (``--approve`` applies it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from sqlmodel import Session, select

from connectors.hris.leaves import HrisLeaves
from connectors.leaves import LeaveData, LeaveIssue, read_leaves
from orgsync.config import Config
from orgsync.errors import FeishuError, OrgsyncError, PlanHeld, SourceError
from orgsync.feishu.retry import may_have_applied
from orgsync.leave_plan import LeavePlan, Person, StoredMark, delete_op, plan_leave
from orgsync.ledger import Ledger
from orgsync.notify import LEAVE_KINDS, MessageAPI, NotifyResult, deliver, leave_note
from orgsync.operations import SPECS, LeaveAPI
from orgsync.plan import Operation, Plan
from orgsync.runner import RunOutcome
from orgsync.state import Lifecycle
from orgsync.tables import LeaveMarkRow

log = structlog.get_logger("orgsync.leave")

#: Feishu's answer when the person has resigned or is not in the tenant (§8).
RESIGNED = 195100


@dataclass
class LeaveOutcome:
    """What a leave run planned and did."""

    run_id: str
    plan: LeavePlan
    applied: bool = False
    done: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: NotifyResult | None = None

    @property
    def exit_code(self) -> int:
        """0 when all went through, 6 when a write failed, 5 when the plan is held."""
        if self.plan.held and not self.applied:
            return 5
        return 6 if self.failed else 0


def read_leave_data(config: Config, now: datetime | None = None) -> LeaveData:
    """The leave records (SourceError when they cannot be read or leave sync is off).

    An HR API is asked for the days from yesterday to a day past the look-ahead window:
    a day of margin either side, as "today" differs between timezones."""
    source = config.leave.source
    if source is None:
        raise SourceError("leave sync is off: add a leave.source section to the config "
                          "(see config/example.yaml)")
    if source.type == "hris":
        moment = now or datetime.now(UTC)
        return HrisLeaves.from_config(source.options, base_dir=source.base_dir,
                                      file=str(source.file)).read(
            (moment - timedelta(days=1)).date(),
            (moment + timedelta(days=config.leave.lookahead_days + 1)).date())
    return read_leaves(source)


def managed_people(ledger: Ledger) -> dict[str, Person]:
    """Everyone the mirror holds, by employee id, active or not."""
    state = ledger.load_state()
    return {key: Person(key, u.feishu_id, u.record.name, u.record.city,
                        u.lifecycle is Lifecycle.ACTIVE)
            for key, u in state.users.items()}


def stored_marks(ledger: Ledger) -> dict[str, StoredMark]:
    """The leave ledger."""
    with Session(ledger.engine) as s:
        return {r.key: StoredMark(r.key, r.employee_id, r.user_id, r.event_id, r.status,
                                  r.fingerprint, r.start_time, r.end_time, _aware(r.ends_at))
                for r in s.exec(select(LeaveMarkRow))}


def make_leave_plan(config: Config, ledger: Ledger, now: datetime) -> LeavePlan:
    """Read and plan; SourceError for a failed or implausibly empty leave file."""
    data = read_leave_data(config, now)
    stored = stored_marks(ledger)
    if not data.records and not data.held and any(
            m.ends_at > now for m in stored.values()):
        source = config.leave.source
        where = "hris leaves" if source is not None and source.type == "hris" else \
            (source.file if source else "")
        raise SourceError(f"{where}: the leave source has no records while marks for "
                          "future leave exist; "
                          "refusing to delete them all (fix the export, or remove the marks "
                          "by hand if all leave was really cancelled)")
    return plan_leave(config.leave, data, managed_people(ledger), stored, now)


class LeaveClient(LeaveAPI, MessageAPI, Protocol):
    """The client of a leave run: time-off events, and IM for the managers' leave notes."""


async def run_leave(config: Config, ledger: Ledger, client: LeaveClient, *, apply: bool,
                    approve: bool = False, now: datetime | None = None,
                    concurrency: int | None = None) -> LeaveOutcome:
    """One leave run: plan, and with ``apply`` carry it out (unless held and not approved)."""
    at = now or datetime.now(UTC)
    run_id = ledger.start_run("leave-apply" if apply else "leave-plan")
    try:
        plan = make_leave_plan(config, ledger, at)
        outcome = LeaveOutcome(run_id, plan)
        if apply and (not plan.held or approve):
            outcome.applied = True
            _forget_lost_creates(ledger, plan, outcome)
            await _apply(ledger, client, plan, outcome, at,
                         concurrency or config.sync.concurrency,
                         note_days=config.notify.leave_note_days if config.notify.enabled
                         else 0)
            if config.notify.enabled and config.notify.leave_note_days:
                outcome.notes = await deliver(config.notify, ledger, client, at,
                                              kinds=LEAVE_KINDS)
    except BaseException as exc:
        ledger.finish_run(run_id, "failed", error=str(exc) if isinstance(exc, OrgsyncError)
                          else type(exc).__name__)
        raise
    status = "held" if plan.held and not outcome.applied else \
        ("partial" if outcome.failed else "ok")
    ledger.finish_run(run_id, status, summary={**plan.counts(), "failed": len(outcome.failed)})
    return outcome


def _forget_lost_creates(ledger: Ledger, plan: LeavePlan, outcome: LeaveOutcome) -> None:
    """Rows of interrupted creates no longer wanted: nothing can delete them (no id)."""
    with Session(ledger.engine) as s:
        for row in s.exec(select(LeaveMarkRow).where(LeaveMarkRow.status == "creating")):
            if row.key in plan.marks:
                outcome.warnings.append(
                    f"leave {row.key}: an earlier create was interrupted before its answer "
                    "was recorded; created again — the person may show this mark twice")
                continue
            outcome.warnings.append(
                f"leave {row.key}: an earlier create was interrupted before its answer was "
                "recorded; if it reached Feishu, remove that event in the person's calendar")
            s.delete(row)
        s.commit()


async def _apply(ledger: Ledger, client: LeaveAPI, plan: LeavePlan, outcome: LeaveOutcome,
                 now: datetime, concurrency: int, *, note_days: int = 0) -> None:
    """Deletes (leavers' first) before creates, each stage with ``concurrency`` workers; a
    created mark of ``note_days`` days or more (0: none) owes its manager a leave note."""
    async def worker(queue: list[Operation]) -> None:
        while queue:
            await _one(ledger, client, plan, queue.pop(), outcome, now, note_days)

    for stage in (plan.deletes, plan.creates):
        queue = list(reversed(stage))
        await asyncio.gather(*(worker(queue) for _ in range(min(concurrency, len(stage)))))


async def _one(ledger: Ledger, client: LeaveAPI, plan: LeavePlan, op: Operation,
               outcome: LeaveOutcome, now: datetime, note_days: int) -> None:
    spec = SPECS[op.kind]
    create = op.kind.value == "leave.create"
    journal = _journal(ledger, plan, op, now, note_days)
    ledger.check_fence()
    journal("creating" if create else "deleting", None)
    try:
        event_id = await spec.call(client, op, None)
    except FeishuError as exc:
        if not create and spec.settle is not None and exc.code in spec.gone:
            outcome.warnings.append(f"{op.label}: {await spec.settle(client, op, exc)}")
            journal("deleted", None)
        elif create and exc.code == RESIGNED:
            outcome.warnings.append(f"{op.label}: not marked — the person has resigned in "
                                    f"Feishu ({exc.code})")
            journal("deleted", None)
        else:
            if create and not may_have_applied(exc):
                journal("deleted", None)
            outcome.failed.append(f"{op.label}: {exc.code} {exc.msg}")
        return
    journal("active" if create else "deleted", event_id)
    outcome.done[op.kind.value] = outcome.done.get(op.kind.value, 0) + 1


def _journal(ledger: Ledger, plan: LeavePlan, op: Operation, now: datetime,
             note_days: int = 0) -> Callable[[str, str | None], None]:
    """Writes one op's row: ``creating``/``deleting`` before, ``active`` or gone after; an
    ``active`` mark of ``note_days`` days or more owes its leave note in the same
    transaction (so a crash cannot leave a created mark without its note owed)."""
    mark = plan.marks.get(op.key)

    def write(status: str, event_id: str | None) -> None:
        with Session(ledger.engine) as s:
            row = s.get(LeaveMarkRow, op.key)
            if status == "deleted":
                if row is not None and (op.kind.value == "leave.delete" or row.event_id is None):
                    s.delete(row)
            elif op.kind.value == "leave.delete":
                if row is not None:
                    row.status, row.updated_at = status, now
                    s.add(row)
            else:
                assert mark is not None
                payload: Mapping[str, str] = mark.payload
                row = row or LeaveMarkRow(key=op.key, employee_id=mark.employee_id,
                                          user_id=payload["user_id"], fingerprint="",
                                          start_time="", end_time="", timezone="",
                                          ends_at=mark.ends_at, run_id="", updated_at=now)
                row.user_id, row.timezone = payload["user_id"], payload["timezone"]
                row.start_time, row.end_time = payload["start_time"], payload["end_time"]
                row.fingerprint, row.ends_at, row.updated_at = mark.fingerprint, mark.ends_at, now
                row.status, row.event_id = status, event_id
                s.add(row)
                if status == "active" and note_days and mark.days >= note_days:
                    ledger.owe_once(s, *leave_note(mark.key, mark.employee_id, mark.kind,
                                                   *mark.shown, mark.days))
            s.commit()

    return write


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def issue_lines(issues: list[LeaveIssue]) -> list[str]:
    """The validation report, one line per issue."""
    return [str(i) for i in issues]


async def leave_run(config: Config, ledger: Ledger) -> RunOutcome:
    """A daemon's scheduled leave run (the caller holds the writer lock).

    Shaped like a directory run for the daemon: a held plan raises :class:`PlanHeld` (the
    leave plan is not stored; ``orgsync leave apply --approve`` applies it) and failed writes
    raise :class:`OrgsyncError` naming them, after the run record is written.
    """
    from orgsync.feishu import FeishuClient

    async with FeishuClient(config.feishu) as client:
        outcome = await run_leave(config, ledger, client, apply=True)
    for line in outcome.warnings:
        log.warning("leave.warning", detail=line)
    if outcome.plan.held and not outcome.applied:
        raise PlanHeld("; ".join(outcome.plan.held) + " — run 'orgsync leave apply --approve'",
                       plan_id=outcome.run_id, reasons=outcome.plan.held)
    if outcome.failed:
        raise OrgsyncError(f"{len(outcome.failed)} leave writes failed: "
                           + "; ".join(outcome.failed[:5]))
    return RunOutcome(outcome.run_id, Plan(tuple(outcome.plan.operations)))


async def clear_leavers(config: Config, ledger: Ledger, client: LeaveAPI, plan: Plan,
                        now: datetime) -> LeaveOutcome | None:
    """Before a directory plan freezes or deletes people: delete their marks for leave that
    has not ended, so a leaver's calendar is cleared while their account can still be
    written. A failure is logged, never blocks the departure (the next leave run, which
    sees them inactive, deletes what is left). None when nobody leaving has a mark."""
    leaving = {op.key for op in plan.operations if SPECS[op.kind].departure is not None}
    rows = [m for m in stored_marks(ledger).values() if m.employee_id in leaving
            and m.event_id is not None and m.ends_at > now] if leaving else []
    if not rows:
        return None
    run_id = ledger.start_run("leave-apply")
    deletes = [delete_op(m, "their person leaves: future leave removed first") for m in rows]
    outcome = LeaveOutcome(run_id, LeavePlan(deletes=deletes), applied=True)
    await _apply(ledger, client, outcome.plan, outcome, now, config.sync.concurrency)
    for line in [*outcome.warnings, *outcome.failed]:
        log.warning("leave.leaver", detail=line)
    ledger.finish_run(run_id, "partial" if outcome.failed else "ok",
                      summary={**outcome.plan.counts(), "failed": len(outcome.failed)})
    return outcome
