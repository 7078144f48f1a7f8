"""``orgsync demo``: a sample company synced into an in-process sandbox, then next week's changes.

Embedded defaults only: the sample org comes from :mod:`orgsync.synth` (fixed
seeds), the sandbox runs on a free loopback port with a random secret, and the
ledger lives in a temporary directory. Same code path as ``orgsync apply``.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from orgsync import render
from orgsync.config import Config, config_from_dict
from orgsync.errors import EXIT_OK
from orgsync.feishu import FeishuClient
from orgsync.leave_demo import leave_steps
from orgsync.ledger import Ledger
from orgsync.runner import RunOutcome, run_once
from orgsync.sandbox import SandboxConfig, SandboxServer
from orgsync.synth import (
    DEMO_CUSTOM_ATTRS,
    DESK_PHONE,
    generate_org,
    next_week,
    with_profile,
    write_csv,
)


def demo_config(base_url: str, app_id: str, app_secret: str, source_dir: Path, ledger_url: str,
                rate_scale: float = 1.0) -> Config:
    """The config the demo runs with (a CSV source against a sandbox; leave from
    ``leaves.csv`` next to it)."""
    data: dict[str, Any] = {
        "version": 1,
        "feishu": {"base_url": base_url, "app_id": app_id, "app_secret": app_secret,
                   "rate_scale": rate_scale},
        "source": {"type": "csv", "departments": str(source_dir / "departments.csv"),
                   "employees": str(source_dir / "employees.csv")},
        "ledger": {"url": ledger_url},
        "logging": {"level": "warning"},
        "sync": {"create_job_levels": True, "create_job_families": True},
        "leave": {"source": {"type": "csv", "file": str(source_dir / "leaves.csv")}},
    }
    return config_from_dict(data, file="<demo>", base_dir=source_dir)


async def count_feishu(config: Config) -> tuple[int, int, int, int]:
    """Departments, users, frozen users and users with a custom field set that Feishu
    holds, read back through the API."""
    async with FeishuClient(config.feishu) as client:
        depts = [d async for d in client.iter_children("0", fetch_child=True)]
        users: dict[str, bool] = {}
        custom: set[str] = set()
        for d in [{"department_id": "0"}, *depts]:
            async for u in client.iter_users_by_department(str(d["department_id"])):
                users[str(u.get("user_id"))] = bool((u.get("status") or {}).get("is_frozen"))
                if any((a.get("value") or {}).get("text") for a in u.get("custom_attrs") or ()):
                    custom.add(str(u.get("user_id")))
    return len(depts), len(users), sum(users.values()), len(custom)


def _week(console: Console, title: str, config: Config, ledger: Ledger,
          now: datetime | None = None) -> RunOutcome:
    console.rule(f"[bold]{title}")
    bar = render.ProgressBar(console)

    def show(p: Any) -> None:
        render.render_text(p, console, limit=None if len(p.operations) <= 60 else 24)
        bar.start(len(p.operations))

    try:
        outcome = asyncio.run(run_once(config, ledger, apply=True, show=show,
                                       progress=bar.advance, now=now))
    finally:
        bar.stop()
    if outcome.result is not None:
        render.render_result(outcome.result, console)
    depts, users, frozen, custom = asyncio.run(count_feishu(config))
    held = f" ({frozen} frozen leavers in their grace period)" if frozen else ""
    console.print(f"Feishu now holds [bold]{depts}[/] departments and [bold]{users}[/] "
                  f"users{held}.")
    console.print(f"{custom} of them with a {DESK_PHONE} (a custom profile field).")
    return outcome


def run_demo(console: Console, *, rate_scale: float = 1.0, workdir: Path | None = None) -> int:
    """Run the two-week demo; returns the exit code (0 when every write succeeded)."""
    work = workdir or Path(tempfile.mkdtemp(prefix="orgsync-demo-"))
    # Every profile field: job levels and families (created in the empty sandbox tenant,
    # sync.create_job_levels), work stations, genders, dotted-line managers, and a custom
    # field (custom.工位电话) the demo tenant defines (the sandbox's custom_attrs knob).
    week1 = with_profile(generate_org(), desk_phone=True)
    week2 = with_profile(next_week(week1), desk_phone=True)
    write_csv(week1, work / "week1")
    write_csv(week2, work / "week2")
    secret = secrets.token_urlsafe(24)
    sb_config = SandboxConfig(app_id="cli_demo", app_secret=secret, rate_scale=rate_scale,
                              custom_attrs=list(DEMO_CUSTOM_ATTRS))
    ledger_url = f"sqlite:///{work / 'ledger.db'}"
    worst = EXIT_OK
    with SandboxServer(sb_config) as sb:
        console.print(f"Sandbox Feishu at {sb.base_url} (documented rate limits × {rate_scale:g}); "
                      f"files in {work}")
        ledger = Ledger(ledger_url)
        try:
            later = datetime.now(UTC) + timedelta(days=21)
            for title, folder, now in (
                    ("Week 1: initial sync of the sample company", "week1", None),
                    ("Week 2: joiners, leavers (frozen), moves and renames", "week2", None),
                    ("Week 2 again: nothing left to do", "week2", None),
                    ("Three weeks later: grace period over, leavers deleted with handover",
                     "week2", later)):
                cfg = demo_config(sb.base_url, "cli_demo", secret, work / folder, ledger_url,
                                  rate_scale)
                worst = max(worst, _week(console, title, cfg, ledger, now).exit_code)
                if now is None and title.startswith("Week 2 again"):
                    worst = max(worst, leave_steps(console, sb, cfg, ledger, week2,
                                                   work / folder))
        finally:
            ledger.close()
    console.rule()
    console.print("Try it yourself: [bold]orgsync sandbox[/] in one terminal, then "
                  "[bold]orgsync plan -c config/demo.yaml[/] in another.")
    return worst
