"""Showing leave: the records and their issues (``preview-source``), and a leave plan."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.leaves import LeaveData, LeaveRecord
from orgsync.config import Config
from orgsync.leave_plan import LeavePlan, Person, plan_leave
from orgsync.model import Status
from orgsync.source import SourceData


def preview_leave(config: Config, source: SourceData, data: LeaveData,
                  now: datetime | None = None) -> LeavePlan:
    """Validate the leave records against the source's people (no ledger, no Feishu): the
    plan of a first run, whose issues name unknown people, bad rows and merged overlaps."""
    people = {k: Person(k, k, e.name, e.city, e.status is Status.ACTIVE)
              for k, e in source.snapshot.employees.items()}
    return plan_leave(config.leave, data, people, {}, now or datetime.now(UTC))


def _bounds(record: LeaveRecord) -> tuple[str, str]:
    return record.start.isoformat(), record.end.isoformat()


def leave_json(data: LeaveData, plan: LeavePlan) -> dict[str, Any]:
    """The records, the marks a first run would make, and every issue."""
    return {
        "records": [{"leave_id": r.leave_id, "employee_id": r.employee_id,
                     "start": _bounds(r)[0], "end": _bounds(r)[1], "all_day": r.all_day,
                     "kind": r.kind, "status": "approved" if r.approved else "cancelled",
                     "where": r.where} for r in sorted(data.records.values(),
                                                       key=lambda r: r.leave_id)],
        "marks": [{"key": m.key, **dict(m.payload)} for _, m in sorted(plan.marks.items())],
        "issues": [{"key": i.key, "reason": i.reason, "where": i.where, "held": i.held}
                   for i in plan.issues],
        "held": sorted(data.held),
    }


def render_leave(data: LeaveData, plan: LeavePlan, console: Console, *, limit: int = 50) -> None:
    """The leave records, then their issues (held, or merged)."""
    records = sorted(data.records.values(), key=lambda r: r.leave_id)
    console.print(f"\n[bold]Leave[/]: {len(records)} records, {len(data.held)} held, "
                  f"{len(plan.marks)} marks in the look-ahead window")
    table = Table("leave", "employee", "start", "end", "kind", "status")
    for r in records[:limit or None]:
        start, end = _bounds(r)
        table.add_row(*(escape(c) for c in (r.leave_id, r.employee_id, start, end, r.kind,
                                            "approved" if r.approved else "cancelled")))
    console.print(table)
    if limit and len(records) > limit:
        console.print(f"… and {len(records) - limit} more (--limit 0 shows all)")
    for issue in plan.issues:
        style, word = ("red", "error") if issue.held else ("yellow", "note")
        console.print(f"[{style}]{word}[/] {escape(str(issue))}", highlight=False)


def plan_lines(plan: LeavePlan) -> list[str]:
    """A leave plan as text: one line per operation, then issues and why it is held."""
    lines = [f"Leave plan: {', '.join(f'{k}={v}' for k, v in plan.counts().items()) or 'no changes'}"]
    for op in plan.operations:
        sign = "+" if op.kind.value == "leave.create" else "-"
        lines.append(f"  {sign} {op.kind.value} {op.key}  {op.label}  ({op.reason})")
    lines += [f"  {issue}" for issue in plan.issues]
    lines += [f"Held: {why}" for why in plan.held]
    return lines
