"""What runs did and why, as ``orgsync history`` and ``orgsync status`` show them.

One record per run (:func:`run_record`): its id, mode, outcome, plan, times, summary,
the error the ledger stored (why it failed, was refused, held or cancelled) and, for
a plan that needed approval, who approved it and when. Text and JSON are built
from the same records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orgsync.tables import HeldPlanRow, RunRow

#: A run's stored status → what it means (the outcome shown).
OUTCOMES: Mapping[str, str] = {
    "running": "running",
    "ok": "ok",
    "partial": "failed writes",  # applied to the end, some operations failed
    "held": "held",  # a safety threshold: waits for 'orgsync approve'
    "refused": "refused",  # the source guard, or an approval of a plan that changed
    "cancelled": "cancelled",  # not confirmed
    "interrupted": "interrupted",  # Ctrl-C
    "crashed": "interrupted",  # the process ended mid-run (found by the next run)
    "failed": "failed",
}


def run_record(run: RunRow, decision: HeldPlanRow | None = None) -> dict[str, Any]:
    """``run`` as a JSON-ready record; ``decision``: its plan's held-plan row, if any.

    ``approved_by`` / ``approved_at`` are set on a run that applied an approved plan.
    """
    approval = decision if (
        decision is not None and decision.approved_at is not None
        and decision.status in ("approved", "applied") and run.status in _APPLYING
        and _utc(decision.approved_at) <= _utc(run.finished_at or decision.approved_at)) else None
    return {
        "run_id": run.id,
        "mode": run.mode,
        "status": run.status,
        "outcome": OUTCOMES.get(run.status, run.status),
        "plan_id": run.plan_id,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "summary": json.loads(run.summary or "{}"),
        "error": run.error,
        "approved_by": approval.approved_by if approval else None,
        "approved_at": _iso(approval.approved_at) if approval else None,
    }


#: Statuses of runs that went on to apply their plan.
_APPLYING = frozenset({"ok", "partial", "crashed", "interrupted", "failed"})


def held_record(row: HeldPlanRow) -> dict[str, Any]:
    """A plan waiting for approval, JSON-ready."""
    return {"plan_id": row.plan_id, "since": _iso(row.created_at),
            "reasons": json.loads(row.reasons), "summary": json.loads(row.summary)}


def summary_text(summary: Mapping[str, Any]) -> str:
    """``kind=count, …`` of a run's summary."""
    return ", ".join(f"{k}={v}" for k, v in summary.items())


def why_text(record: Mapping[str, Any]) -> str:
    """The line that says why a run ended as it did, and who approved it ('' if nothing)."""
    parts = []
    if record["approved_by"] or record["approved_at"]:
        parts.append(f"approved by {record['approved_by'] or 'unknown'} at "
                     f"{_short(record['approved_at'])}")
    if record["error"]:
        parts.append(str(record["error"]))
    return "; ".join(parts)


def _utc(at: datetime) -> datetime:
    """``at`` as an aware UTC time (SQLite returns naive ones)."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _iso(at: datetime | None) -> str | None:
    return _utc(at).isoformat(timespec="seconds") if at is not None else None


def _short(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] if iso else "—"
