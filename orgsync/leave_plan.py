"""Leave planning (pure): approved leave records + the people orgsync manages + the marks it
keeps → the time-off events to delete and to create.

Rules (issue 23):

* an approved leave of a managed, active person that ends after ``now`` and starts within
  ``lookahead_days`` is one mark, in the person's timezone (:meth:`LeaveConfig.zone_of`);
* overlapping approved leaves of one person are **merged** into one mark keyed by their
  ``+``-joined ids (all-day when any of them is; a note says so) — Feishu does not say
  whether overlapping events are allowed, and one mark per stretch of leave is what a
  colleague needs to see;
* a kept mark whose leave changed (dates, kind, title, zone) is deleted and created again;
  cancelled, vanished or out-of-window → deleted; a mark whose leave has ended is left alone;
* a person who is no longer active (frozen or deleted as a leaver) loses their future marks,
  and those deletes come first;
* a held leave record (bad row) keeps its mark as it is;
* deleting more than ``max(max_delete_floor, max_delete_fraction × future marks)`` in one
  run holds the plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from connectors.leaves import LeaveData, LeaveIssue, LeaveRecord
from orgsync.leave_config import LeaveConfig
from orgsync.plan import Operation, OpKind


@dataclass(frozen=True, slots=True)
class Person:
    """A person orgsync manages, as the mirror has them."""

    employee_id: str
    user_id: str   # the Feishu user_id
    name: str
    city: str | None
    active: bool   # False once frozen or deleted as a leaver


@dataclass(frozen=True, slots=True)
class StoredMark:
    """A row of the leave ledger (:class:`orgsync.tables.LeaveMarkRow`)."""

    key: str
    employee_id: str
    user_id: str
    event_id: str | None
    status: str
    fingerprint: str
    start_time: str
    end_time: str
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Mark:
    """One wanted time-off event."""

    key: str
    employee_id: str
    name: str
    payload: Mapping[str, str]
    ends_at: datetime
    label: str
    kind: str = ""
    shown: tuple[str, str] = ("", "")
    days: int = 0
    """The calendar days the leave touches in the person's timezone (the end day included)."""

    @property
    def fingerprint(self) -> str:
        """What the event says: a change means delete + create."""
        text = json.dumps(dict(self.payload), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class LeavePlan:
    """Deletes (leavers' first) then creates; ``held`` says why the plan must not run."""

    deletes: list[Operation] = field(default_factory=list)
    creates: list[Operation] = field(default_factory=list)
    marks: dict[str, Mark] = field(default_factory=dict)
    issues: list[LeaveIssue] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    future: int = 0  # marks kept for leave that has not ended

    @property
    def operations(self) -> list[Operation]:
        """In the order they run."""
        return [*self.deletes, *self.creates]

    def counts(self) -> dict[str, int]:
        """``{"leave.create": n, "leave.delete": m}`` (zero counts left out)."""
        out = {OpKind.LEAVE_DELETE.value: len(self.deletes),
               OpKind.LEAVE_CREATE.value: len(self.creates)}
        return {k: v for k, v in out.items() if v}


def plan_leave(cfg: LeaveConfig, data: LeaveData, people: Mapping[str, Person],
               stored: Mapping[str, StoredMark], now: datetime) -> LeavePlan:
    """The leave plan at ``now`` (aware)."""
    plan = LeavePlan(issues=list(data.issues))
    horizon = now + timedelta(days=cfg.lookahead_days)
    by_person: dict[str, list[LeaveRecord]] = {}
    for record in data.records.values():
        person = people.get(record.employee_id)
        if person is None:
            plan.issues.append(LeaveIssue(record.leave_id, f"unknown person "
                                          f"{record.employee_id} (not managed by orgsync)",
                                          record.where))
            data.held.add(record.leave_id)
        elif record.approved and person.active:
            by_person.setdefault(record.employee_id, []).append(record)
    for employee_id, records in by_person.items():
        person = people[employee_id]
        zone = cfg.zone_of(employee_id, person.city)
        for group in _overlapping(records, ZoneInfo(zone)):
            mark = _mark(cfg, person, zone, group)
            if len(group) > 1:
                plan.issues.append(LeaveIssue(
                    mark.key, f"overlapping leaves of {employee_id} merged into one mark "
                    f"({mark.label})", group[0].where, held=False))
            start = _instants(group[0], ZoneInfo(zone))[0]
            if mark.ends_at > now and min(start, mark.ends_at) <= horizon:
                plan.marks[mark.key] = mark
    held_ids = data.held
    leaver_deletes: list[Operation] = []
    other_deletes: list[Operation] = []
    for key, kept in sorted(stored.items()):
        row = kept
        if row.ends_at <= now:  # past leave: left alone
            continue
        plan.future += 1
        person = people.get(row.employee_id)
        wanted = plan.marks.get(key)
        if any(part in held_ids for part in key.split("+")) and wanted is None:
            continue
        if row.event_id is None:  # an interrupted create: nothing to delete by id
            continue
        if person is not None and not person.active:
            leaver_deletes.append(delete_op(row, "their person left: future leave removed"))
        elif row.status == "deleting":
            other_deletes.append(delete_op(row, "finishing an interrupted delete"))
        elif wanted is None:
            other_deletes.append(delete_op(row, "the leave was cancelled, removed or moved out "
                                              "of the look-ahead window"))
        elif wanted.fingerprint != row.fingerprint:
            other_deletes.append(delete_op(row, "the leave changed: deleted, then created again"))
    plan.deletes = leaver_deletes + other_deletes
    deleting = {op.key for op in plan.deletes}
    for key, mark in sorted(plan.marks.items()):
        found = stored.get(key)
        if found is not None and found.status == "active" and key not in deleting \
                and found.fingerprint == mark.fingerprint:
            continue
        reason = "approved leave" if found is None else (
            "created again: an earlier create was interrupted before its answer was recorded"
            " (a duplicate mark is possible)" if found.event_id is None else "the leave changed")
        plan.creates.append(Operation(
            op_id=f"leave.create:{key}", kind=OpKind.LEAVE_CREATE, key=key,
            feishu_id=str(mark.payload["user_id"]), payload=dict(mark.payload),
            reason=reason, label=mark.label))
    limit = max(cfg.max_delete_floor, int(cfg.max_delete_fraction * plan.future))
    if len(plan.deletes) > limit:
        plan.held.append(
            f"{len(plan.deletes)} leave marks would be deleted, more than the limit of {limit} "
            f"({cfg.max_delete_fraction:.0%} of {plan.future} future marks, at least "
            f"{cfg.max_delete_floor}; leave.max_delete_fraction / max_delete_floor)")
    return plan


def delete_op(row: StoredMark, reason: str) -> Operation:
    """The ``leave.delete`` of a kept mark."""
    return Operation(op_id=f"leave.delete:{row.key}", kind=OpKind.LEAVE_DELETE, key=row.key,
                     feishu_id=str(row.event_id), payload={}, reason=reason,
                     label=f"{row.employee_id} {row.start_time} – {row.end_time}")


def _instants(record: LeaveRecord, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The leave as [start, end) instants; an all-day leave spans whole days in ``zone``."""
    if isinstance(record.start, datetime) and isinstance(record.end, datetime):
        return record.start, record.end
    first, last = _day(record.start), _day(record.end)
    return (datetime.combine(first, time(), zone),
            datetime.combine(last + timedelta(days=1), time(), zone))


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _overlapping(records: list[LeaveRecord], zone: ZoneInfo) -> list[list[LeaveRecord]]:
    """Groups of records whose spans overlap (touching spans stay apart), by start."""
    ordered = sorted(records, key=lambda r: (_instants(r, zone), r.leave_id))
    groups: list[list[LeaveRecord]] = []
    end: datetime | None = None
    for record in ordered:
        start, stop = _instants(record, zone)
        if groups and end is not None and start < end:
            groups[-1].append(record)
            end = max(end, stop)
        else:
            groups.append([record])
            end = stop
    return groups


def _mark(cfg: LeaveConfig, person: Person, zone: str, group: list[LeaveRecord]) -> Mark:
    tz = ZoneInfo(zone)
    spans = [_instants(r, tz) for r in group]
    start, stop = min(s for s, _ in spans), max(e for _, e in spans)
    kind = "/".join(dict.fromkeys(r.kind for r in group if r.kind))
    if any(r.all_day for r in group):
        first = start.astimezone(tz).date()
        last = (stop - timedelta(microseconds=1)).astimezone(tz).date()
        # All-day end_time is the last day, included: the create page labels an example
        # with start = end "1-Day" (feishu-api-more.md §8.1; inclusiveness UNCONFIRMED).
        start_time, end_time = first.isoformat(), last.isoformat()
        shown = (start_time, end_time)
        ends_at = datetime.combine(last + timedelta(days=1), time(), tz)
    else:
        start_time, end_time = str(int(start.timestamp())), str(int(stop.timestamp()))
        shown = (start.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                 stop.astimezone(tz).strftime("%Y-%m-%d %H:%M"))
        ends_at = stop
    variables = {"kind": kind or "请假", "start": shown[0], "end": shown[1],
                 "name": person.name, "employee_id": person.employee_id}
    payload = {"user_id": person.user_id, "timezone": zone, "start_time": start_time,
               "end_time": end_time, "title": cfg.title.format(**variables),
               "description": cfg.description.format(**variables)}
    key = "+".join(sorted(r.leave_id for r in group))
    days = ((stop - timedelta(microseconds=1)).astimezone(tz).date()
            - start.astimezone(tz).date()).days + 1
    return Mark(key, person.employee_id, person.name, payload, ends_at,
                f"{person.name} ({person.employee_id}) {shown[0]} – {shown[1]} {kind}".rstrip(),
                kind=kind or "请假", shown=shown, days=days)
