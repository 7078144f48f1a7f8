"""The demo's leave step: someone's approved leave appears in Feishu, then, cancelled, goes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from orgsync.config import Config
from orgsync.errors import EXIT_OK
from orgsync.feishu import FeishuClient
from orgsync.leave_sync import LeaveOutcome, run_leave
from orgsync.leave_view import plan_lines
from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.sandbox import SandboxServer


def leave_steps(console: Console, sb: SandboxServer, config: Config, ledger: Ledger,
                org: Snapshot, folder: Path) -> int:
    """Mark one person's leave, then cancel it; returns the worse exit code."""
    key = sorted(org.active_employees())[0]
    person = org.employees[key]
    first = (datetime.now(UTC) + timedelta(days=3)).date()
    file = folder / "leaves.csv"
    worst = EXIT_OK
    for title, status in ((f"Leave: {person.name}'s annual leave is approved", "approved"),
                          (f"Leave: {person.name} cancels it", "cancelled")):
        console.rule(f"[bold]{title}")
        file.write_text("leave_id,employee_id,start,end,kind,status\n"
                        f"A1,{key},{first},{first + timedelta(days=1)},年假,{status}\n",
                        encoding="utf-8")
        outcome = asyncio.run(_apply(config, ledger))
        for line in plan_lines(outcome.plan):
            console.print(line, markup=False, highlight=False)
        shown = [e for e in sb.tenant.timeoff_events.values() if e["user_id"] == key]
        marks = ", ".join(f"{e['title']} ({e['start_time']} – {e['end_time']})" for e in shown)
        console.print(f"{person.name}'s calendar and profile: "
                      f"{'请假 — ' + marks if shown else 'no leave mark'}", markup=False)
        worst = max(worst, outcome.exit_code)
    return worst


async def _apply(config: Config, ledger: Ledger) -> LeaveOutcome:
    async with FeishuClient(config.feishu) as client:
        return await run_leave(config, ledger, client, apply=True)
