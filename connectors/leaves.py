"""The leave file (``leave.source: {type: csv}``): approved and cancelled leave records.

``leaves.csv``: ``leave_id,employee_id,start,end`` (required), ``kind,status`` (optional).
``start``/``end`` are both dates (``2026-12-24``: all-day, the end day included) or both
date-times with an offset (``2026-12-24T14:00+08:00``: hourly leave); ``kind`` is free text
(年假, 病假 …); ``status`` is ``approved`` (default; also 已批准/通过) or ``cancelled``
(also 已撤销/已取消). Headers can be renamed with ``leave.source.columns``; encodings and
delimiters as for the other CSV files (:mod:`connectors.csvfile`, whose reader this is).

A file that cannot be read, or lacks a required column, raises
:class:`~orgsync.errors.SourceError` (the run then deletes nothing). A bad row is a
:class:`LeaveIssue` and its leave is held: its mark in Feishu, if any, is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from connectors.csvfile import CsvConnector
from orgsync.leave_config import LEAVE_COLUMNS, LeaveSourceConfig

APPROVED = frozenset({"approved", "已批准", "批准", "通过", "已通过", "同意"})
CANCELLED = frozenset({"cancelled", "canceled", "已撤销", "撤销", "已取消", "取消"})


@dataclass(frozen=True, slots=True)
class LeaveRecord:
    """One leave as HR wrote it: all-day (``date`` bounds, end included) or hourly
    (offset-aware ``datetime`` bounds)."""

    leave_id: str
    employee_id: str
    start: date | datetime
    end: date | datetime
    kind: str = ""
    approved: bool = True
    where: str = ""

    @property
    def all_day(self) -> bool:
        """Dates, not date-times."""
        return not isinstance(self.start, datetime)


@dataclass(frozen=True, slots=True)
class LeaveIssue:
    """A problem with one leave record (``held``: the leave is left as it is in Feishu)."""

    key: str | None
    reason: str
    where: str
    held: bool = True

    def __str__(self) -> str:
        what = "held" if self.held else "note"
        return f"{self.where}: leave {self.key or '?'}: {self.reason} ({what})"


@dataclass
class LeaveData:
    """The records read, the issues found and the ids held."""

    records: dict[str, LeaveRecord] = field(default_factory=dict)
    issues: list[LeaveIssue] = field(default_factory=list)
    held: set[str] = field(default_factory=set)


def read_leaves(source: LeaveSourceConfig) -> LeaveData:
    """Read the leave CSV (SourceError when the file as a whole is unusable)."""
    reader = CsvConnector(departments=None, employees=source.file,
                          columns={"leaves": dict(source.columns)},
                          delimiter=source.delimiter, encoding=source.encoding)
    table = reader._table(source.file, "leaves", LEAVE_COLUMNS)
    pick = table.picker()

    def rows() -> Iterator[tuple[str, list[str | None], bool]]:
        for line, row in table.rows:
            cells = [*row, *[""] * (table.width + 1 - len(row))]
            yield (f"{table.name}:{line}", [c.strip() or None for c in pick(cells)],
                   len(row) > table.width)
    return collect_leaves(rows())


def collect_leaves(rows: Iterable[tuple[str, Sequence[str | None], bool]]) -> LeaveData:
    """Validate raw leave rows, each ``(where, [leave_id, employee_id, start, end, kind,
    status], too_wide)``, into records, issues and held ids; shared by every leave source."""
    data = LeaveData()
    seen: dict[str, str] = {}
    for where, cells, too_wide in rows:
        leave_id, employee_id, start, end, kind, status = cells
        if leave_id is None:
            data.issues.append(LeaveIssue(None, "leave_id is empty", where))
            continue
        if leave_id in seen:
            data.issues.append(LeaveIssue(leave_id, f"leave_id is also on {seen[leave_id]}",
                                          where))
            data.held.add(leave_id)
            data.records.pop(leave_id, None)
            continue
        seen[leave_id] = where
        try:
            record = _record(leave_id, employee_id, start, end, kind, status, where)
        except ValueError as exc:
            data.issues.append(LeaveIssue(leave_id, str(exc), where))
            data.held.add(leave_id)
            continue
        if too_wide:
            data.issues.append(LeaveIssue(leave_id, "has more cells than the header", where))
            data.held.add(leave_id)
            continue
        data.records[leave_id] = record
    return data


def _record(leave_id: str, employee_id: str | None, start: str | None, end: str | None,
            kind: str | None, status: str | None, where: str) -> LeaveRecord:
    if employee_id is None:
        raise ValueError("employee_id is empty")
    if start is None or end is None:
        raise ValueError("start and end are required")
    first, last = parse_bound(start, "start"), parse_bound(end, "end")
    if isinstance(first, datetime) != isinstance(last, datetime):
        raise ValueError(f"start {start!r} and end {end!r} mix a date and a date-time: write "
                         "both as dates (all-day) or both as date-times with an offset")
    if last < first:  # same type, checked above
        raise ValueError(f"end {end} is before start {start}")
    if isinstance(first, datetime) and last == first:
        raise ValueError(f"hourly leave ending when it starts ({start})")
    lowered = (status or "approved").strip().lower()
    if lowered not in APPROVED | CANCELLED:
        raise ValueError(f"status {status!r} is neither approved nor cancelled")
    return LeaveRecord(leave_id, employee_id, first, last, kind or "", lowered in APPROVED,
                       where)


def parse_bound(text: str, name: str) -> date | datetime:
    """``2026-12-24`` → a date; ``2026-12-24T14:00+08:00`` → an aware date-time."""
    if len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name} {text!r} is not a date (YYYY-MM-DD)") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is neither a date (YYYY-MM-DD) nor a date-time "
                         "with an offset (2026-12-24T14:00+08:00)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} {text!r} has no UTC offset: add one, e.g. +08:00")
    return moment
