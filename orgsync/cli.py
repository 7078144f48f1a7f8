"""The ``orgsync`` command line. Thin: every command is a call into :mod:`orgsync.runner`.

Exit codes (see :mod:`orgsync.errors`): 0 ok / no changes, 1 error, 2 changes
(``plan --detailed-exitcode``), 3 config error, 4 source refused, 5 plan held,
6 apply finished with failed operations.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orgsync import __version__, logs
from orgsync.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, OrgsyncError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Keep a Feishu (Lark) directory in step with your HR system.")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

ConfigOpt = Annotated[Path, typer.Option(
    "--config", "-c", envvar="ORGSYNC_CONFIG", help="Config file (YAML).",
    show_default=True)]
T = TypeVar("T")


def _guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn an OrgsyncError into its message and exit code."""
    try:
        return fn()
    except OrgsyncError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None


def _load(path: Path) -> Any:
    from orgsync.config import load_config

    cfg = load_config(path)
    logs.configure(fmt=cfg.logging.format, level=cfg.logging.level, mask=cfg.logging.mask_pii)
    return cfg


class _Bar:
    """A progress bar over a plan's operations (silent when stdout is not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None

    def start(self, total: int) -> None:
        if total and self.console.is_terminal:
            self.progress = Progress(TextColumn("applying"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("apply", total=total)

    def advance(self, _result: object) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def version_callback(value: bool) -> None:
    """``--version``."""
    if value:
        out.print(f"orgsync {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=version_callback,
                                          is_eager=True, help="Show the version.")] = False,
) -> None:
    """orgsync: plan and apply HR → Feishu directory changes."""


@app.command()
def plan(
    config: ConfigOpt = Path("orgsync.yaml"),
    fmt: Annotated[str, typer.Option("--format", "-f",
                                     help="text, json or markdown")] = "text",
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error.")] = False,
) -> None:
    """Show what would change in Feishu (dry-run; writes nothing to Feishu)."""
    from orgsync import render
    from orgsync.ledger import Ledger
    from orgsync.runner import run_once

    def go() -> int:
        cfg = _load(config)
        ledger = Ledger(cfg.ledger.url)
        try:
            outcome = asyncio.run(run_once(cfg, ledger, apply=False))
        finally:
            ledger.close()
        p = outcome.plan
        if fmt == "json":
            out.print(render.render_json(p), markup=False, soft_wrap=True)
        elif fmt in ("markdown", "md"):
            out.print(render.render_markdown(p), markup=False, soft_wrap=True)
        else:
            render.render_text(p, out)
        return EXIT_CHANGES if detailed_exitcode and not p.empty else EXIT_OK

    raise typer.Exit(_guard(go))


@app.command()
def apply(
    config: ConfigOpt = Path("orgsync.yaml"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
) -> None:
    """Plan, show the plan, then apply it to Feishu (asks first unless --yes)."""
    from orgsync import render
    from orgsync.ledger import Ledger
    from orgsync.plan import Plan
    from orgsync.runner import run_once

    bar = _Bar(out)

    def confirm(p: Plan) -> bool:
        if not yes:
            if not sys.stdin.isatty():
                err.print("[red]refusing to apply without --yes in a non-interactive session[/]")
                return False
            if not typer.confirm(f"Apply {len(p.operations)} operations to Feishu?"):
                return False
        bar.start(len(p.operations))
        return True

    def go() -> int:
        cfg = _load(config)
        ledger = Ledger(cfg.ledger.url)
        try:
            outcome = asyncio.run(run_once(cfg, ledger, apply=True,
                                           show=lambda p: render.render_text(p, out),
                                           confirm=confirm, progress=bar.advance))
        finally:
            bar.stop()
            ledger.close()
        if outcome.cancelled:
            out.print("Nothing applied.")
            return EXIT_ERROR
        if outcome.result is not None:
            render.render_result(outcome.result, out)
        return outcome.exit_code

    raise typer.Exit(_guard(go))


@app.command()
def check(config: ConfigOpt = Path("orgsync.yaml")) -> None:
    """Compare Feishu (read live) with the source: exit 0 when they match, 1 on drift."""
    from orgsync import render
    from orgsync.ledger import Ledger
    from orgsync.runner import run_once

    def go() -> int:
        cfg = _load(config)
        ledger = Ledger(cfg.ledger.url)
        try:
            outcome = asyncio.run(run_once(cfg, ledger, apply=False, full=True))
        finally:
            ledger.close()
        render.render_text(outcome.plan, out)
        return EXIT_OK if outcome.plan.empty else EXIT_ERROR

    raise typer.Exit(_guard(go))


@app.command()
def status(config: ConfigOpt = Path("orgsync.yaml")) -> None:
    """What orgsync manages and how the last run went."""
    from orgsync.ledger import Ledger

    def go() -> int:
        cfg = _load(config)
        ledger = Ledger(cfg.ledger.url)
        try:
            state = ledger.load_state()
            runs = ledger.runs(limit=1)
        finally:
            ledger.close()
        live = state.live_users()
        out.print(f"Managed: {len(state.departments)} departments, {len(live)} users "
                  f"({len(state.users) - len(live)} deleted)")
        if runs:
            r = runs[0]
            out.print(f"Last run: {r.id} {r.mode} {r.status} at {r.started_at:%Y-%m-%d %H:%M:%S}"
                      f" plan={r.plan_id or '—'}")
            if r.error:
                out.print(f"  error: {r.error}")
        else:
            out.print("No runs yet.")
        return EXIT_OK

    raise typer.Exit(_guard(go))


@app.command()
def history(
    config: ConfigOpt = Path("orgsync.yaml"),
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
) -> None:
    """Recent runs, newest first."""
    from orgsync.ledger import Ledger

    def go() -> int:
        cfg = _load(config)
        ledger = Ledger(cfg.ledger.url)
        try:
            runs = ledger.runs(limit=limit)
        finally:
            ledger.close()
        table = Table("run", "mode", "status", "plan", "started", "summary")
        for r in runs:
            summary = ", ".join(f"{k}={v}" for k, v in json.loads(r.summary).items())
            table.add_row(r.id, r.mode, r.status, r.plan_id or "—",
                          f"{r.started_at:%Y-%m-%d %H:%M:%S}", summary)
        out.print(table)
        return EXIT_OK

    raise typer.Exit(_guard(go))


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8790,
    app_id: Annotated[str, typer.Option("--app-id", envvar="ORGSYNC_APP_ID")] = "cli_demo",
    app_secret: Annotated[str, typer.Option("--app-secret", envvar="ORGSYNC_APP_SECRET")
                          ] = "demo-secret",  # noqa: S107 - the local sandbox's demo secret
    rate_scale: Annotated[float, typer.Option(help="Documented rate limits × this.")] = 1.0,
    latency_ms: Annotated[float, typer.Option(help="Latency added to every API call.")] = 0.0,
    seed_file: Annotated[Path | None, typer.Option(help="JSON state to start from.")] = None,
) -> None:
    """Run the local Feishu sandbox (same API, rules and limits) for trying a config."""
    from orgsync.sandbox import SandboxConfig
    from orgsync.sandbox.server import serve

    logs.configure(level="info")
    cfg = SandboxConfig(app_id=app_id, app_secret=app_secret, rate_scale=rate_scale,
                        latency_ms=latency_ms)
    _guard(lambda: serve(cfg, host, port, seed_file=seed_file))


@app.command()
def demo(
    fast: Annotated[bool, typer.Option(help="Run the sandbox's rate limits 10× faster.")] = False,
) -> None:
    """Sync a sample company into an in-process sandbox, then next week's changes."""
    from orgsync.demo import run_demo

    logs.configure(level=os.environ.get("ORGSYNC_LOG_LEVEL", "warning"))
    raise typer.Exit(_guard(lambda: run_demo(out, rate_scale=10.0 if fast else 1.0)))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
