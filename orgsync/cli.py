"""The ``orgsync`` command line. Thin: every command is a call into :mod:`orgsync.runner`.

Exit codes (see :mod:`orgsync.errors`): 0 ok / no changes, 1 error, 2 changes
(``plan --detailed-exitcode``), 3 config error, 4 source refused, 5 plan held,
6 apply finished with failed operations, 7 another run holds the ledger's writer lock,
8 the ledger is unusable (disk full, damaged), 9 Feishu cannot be reached or refuses the
app's credentials (a command that needs Feishu stops at its first call).

Commands that write (``apply``, ``approve``, ``resync``) hold that lock for the
whole run (:mod:`orgsync.writer`); ``plan`` and ``check`` write nothing and take none.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shlex
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orgsync import __version__, gcpause, logs
from orgsync.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, OrgsyncError
from orgsync.urls import mask_url, mask_urls

if TYPE_CHECKING:
    from orgsync import render
    from orgsync.plan_view import Filters

# Plain (click) help: the rich panels label every flag ``<bool>`` (``--yes <bool>``), as if
# it took a value, and draw boxes that do not survive a pipe or a copy.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Keep a Feishu (Lark) directory in step with your HR system.")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
# Off a terminal (a pipe, a file, CI) lines are not hard-wrapped at 80 columns: a wrapped
# path, URL or summary line cannot be copied or grepped.
out.soft_wrap = not out.is_terminal
err.soft_wrap = not err.is_terminal

ConfigOpt = Annotated[Path, typer.Option(
    "--config", "-c", envvar="ORGSYNC_CONFIG", help="Config file (YAML).",
    show_default=True)]
AcceptShrink = Annotated[bool, typer.Option(
    "--accept-shrink", help="Accept a source that shrank beyond safety.max_source_shrink.")]
SummaryOpt = Annotated[bool, typer.Option(
    "--summary", help="Only the summary: counts by kind, held records, warnings, thresholds.")]
KindOpt = Annotated[list[str] | None, typer.Option(
    "--kind", help="List only operations of this kind (user.move); repeatable.")]
DepartmentOpt = Annotated[str | None, typer.Option(
    "--department", help="List only operations in this department (key or path) and below.")]
KeyOpt = Annotated[list[str] | None, typer.Option(
    "--key", help="List only operations on this department or employee key; repeatable.")]
T = TypeVar("T")

#: Run outcomes a command leaves for :func:`main`'s ``os._exit`` to drop with the process:
#: dropping one when the command returns frees its source and mirror record by record,
#: 0.05 s of a 100k-person plan for nothing (``orgsync.bench`` times it end to end).
_LEFT_TO_EXIT: list[object] = []


def _guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn an OrgsyncError into its message and exit code."""
    try:
        return fn()
    except OrgsyncError as exc:
        # Unwrapped (a path or URL broken across lines cannot be copied or grepped) and
        # not read as markup (a message may quote '[销售]部').
        err.print(Text.assemble(("error:", "bold red"), " ", mask_urls(str(exc))), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None


@contextmanager
def _opened(path: Path) -> Iterator[tuple[Any, Any]]:
    """The loaded config (logging configured) and its ledger, closed on the way out."""
    from orgsync.ledger import Ledger

    cfg = _load(path)
    ledger = Ledger(cfg.ledger.url)
    try:
        yield cfg, ledger
    finally:
        ledger.close()


def _load(path: Path) -> Any:
    from orgsync.config import load_config

    cfg = load_config(path)
    logs.configure(fmt=cfg.logging.format, level=cfg.logging.level, mask=cfg.logging.mask_pii)
    return cfg


def _reported(outcome: Any) -> int:
    """Print what an applying run did (or that it was declined); its exit code."""
    from orgsync import render

    if outcome.cancelled:
        out.print("Nothing applied.")
        return EXIT_ERROR
    if outcome.result is not None:
        render.render_result(outcome.result, out)
    return int(outcome.exit_code)


def _filters(summary: bool, kinds: list[str] | None, department: str | None,
             keys: list[str] | None) -> Filters:
    """The display filters of ``plan`` / ``apply``, checked before anything runs."""
    from orgsync.plan_view import Filters

    found = Filters(kinds=frozenset(kinds or ()), department=department,
                    keys=frozenset(k for v in keys or () for k in v.replace(",", " ").split()),
                    summary=summary)
    found.check()
    return found


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _shower(filters: Filters, *, yes: bool) -> Callable[[Any], None]:
    """How ``apply`` / ``resync`` show the plan. On a terminal: the summary, then (unless
    ``yes``) an offer to page through the operations; never the whole plan on the screen.
    Off a terminal (a pipe, a log): all of it, as ``orgsync plan`` prints it."""
    from orgsync import render
    from orgsync.plan_view import View

    def show(p: Any) -> None:
        out.file.flush()
        if not _interactive():
            render.render(p, "text", sys.stdout, filters)
            return
        view = View(p, filters)
        render.summary_text(view, sys.stdout, color=out.color_system is not None)
        sys.stdout.flush()
        if not (yes or p.empty or filters.summary) and typer.confirm(
                f"Page through the operations ({os.environ.get('PAGER') or 'less'})?",
                default=False):
            _page(lambda f: render.details_text(view, f))

    return show


def _page(write: Callable[[Any], None]) -> None:
    """Write through ``$PAGER`` (``less`` when unset); straight out when there is none."""
    import shlex
    import subprocess

    command = shlex.split(os.environ.get("PAGER") or "less")
    env = {"LESS": "FRX", **os.environ}
    try:  # the user's own pager, as git and man run it
        pager = subprocess.Popen(command, stdin=subprocess.PIPE,  # noqa: S603
                                 text=True, encoding="utf-8", env=env)
    except OSError:
        write(sys.stdout)
        return
    assert pager.stdin is not None
    with suppress(BrokenPipeError):  # the reader quit the pager early
        write(pager.stdin)
    with suppress(BrokenPipeError):
        pager.stdin.close()
    pager.wait()


@contextmanager
def _interruptible(bar: render.ProgressBar) -> Iterator[None]:
    """Ctrl-C in an applying run: the calls in flight stay journaled (the next run settles
    them); say how far it got and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        bar.stop()
        err.print(f"[yellow]{bar.interrupted()}[/]")
        raise typer.Exit(130) from None


def _confirmer(bar: render.ProgressBar, *, yes: bool) -> Callable[[Any], bool]:
    """Ask before applying (unless ``yes``; never without a terminal), then start ``bar``."""

    def confirm(p: Any) -> bool:
        if not yes:
            if not sys.stdin.isatty():
                err.print("[red]refusing to apply without --yes in a non-interactive session[/]")
                return False
            if not typer.confirm(f"Apply {len(p.operations)} operations to Feishu?"):
                return False
        bar.start(p)
        return True

    return confirm


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
                                     help="text, json, markdown or html")] = "text",
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error.")] = False,
    accept_shrink: AcceptShrink = False,
    summary: SummaryOpt = False,
    kind: KindOpt = None,
    department: DepartmentOpt = None,
    key: KeyOpt = None,
) -> None:
    """Show what would change in Feishu (dry-run; writes nothing to Feishu).

    The summary comes first (counts, held records, warnings, how close the plan is to
    each safety threshold), then the operations by kind and department. The safety
    thresholds are checked here too: a plan over one is stored as held (exit 5) and
    can be released with 'orgsync approve PLAN_ID'.
    """
    # Paused: these imports build ~10⁵ objects and no garbage, and the collector
    # rescanning them costs 40 ms of a plan (orgsync.bench times it end to end).
    with gcpause.paused_gc():
        from orgsync import render
        from orgsync.plan import Plan
        from orgsync.runner import run_once

    def show(p: Plan) -> None:
        out.file.flush()
        render.render(p, name, sys.stdout, filters,
                      color=name == "text" and out.is_terminal and out.color_system is not None)
        sys.stdout.flush()

    def go() -> int:
        with _opened(config) as (cfg, ledger):
            outcome = asyncio.run(run_once(cfg, ledger, apply=False, show=show,
                                           accept_shrink=accept_shrink))
            _LEFT_TO_EXIT.append(outcome)
        return EXIT_CHANGES if detailed_exitcode and not outcome.plan.empty else EXIT_OK

    name = _guard(lambda: render.check_format(fmt))
    filters = _guard(lambda: _filters(summary, kind, department, key))
    raise typer.Exit(_guard(go))


@app.command()
def apply(
    config: ConfigOpt = Path("orgsync.yaml"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    accept_shrink: AcceptShrink = False,
    summary: SummaryOpt = False,
    kind: KindOpt = None,
    department: DepartmentOpt = None,
    key: KeyOpt = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", metavar="KEY", help="Sync just these people or departments (employee id, "
        "department code or email; repeat it, or separate with commas), with what they "
        "depend on and nothing else.")] = None,
) -> None:
    """Plan, show the plan, then apply it to Feishu (asks first unless --yes).

    On a terminal the plan's summary is shown and its operations are offered in a
    pager; off a terminal the whole plan is printed. The filters only narrow what is
    shown: the whole plan is applied.

    With --only, just those people or departments are synced now (a new hire on their
    first morning): their operations and what they need first (their department, their
    manager's account), through the same safety checks, lock and journal. Nobody else is
    frozen or deleted, and the guards' baselines do not move.
    """
    keys = [k.strip() for item in only or () for k in item.split(",") if k.strip()]
    if only is not None and not keys:
        raise typer.BadParameter("give at least one key", param_hint="--only")
    _apply(config, yes=yes, accept_shrink=accept_shrink,
           filters=_guard(lambda: _filters(summary, kind, department, key)), only=keys or None)


ByOpt = Annotated[str | None, typer.Option(
    "--by", help="Who decides, as recorded in history [default: the OS user].")]


@app.command()
def approve(
    plan_id: Annotated[str, typer.Argument(help="The id of a held plan.")],
    config: ConfigOpt = Path("orgsync.yaml"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    accept_shrink: AcceptShrink = False,
    by: ByOpt = None,
) -> None:
    """Release exactly one held plan and apply it, in one step.

    The approval is recorded (who, when) only when that plan is applied: declined at
    the prompt, or without --yes off a terminal, the plan stays held. If the source
    changed since, the plan now differs from the approved one: nothing is applied,
    and the new plan id is shown (held in turn if it needs approval). A plan made
    with --accept-shrink is approved with --accept-shrink too.
    """
    _apply(config, yes=yes, accept_shrink=accept_shrink, approve=plan_id, by=by)


@app.command()
def discard(
    plan_id: Annotated[str, typer.Argument(help="The id of a held plan.")],
    config: ConfigOpt = Path("orgsync.yaml"),
    by: ByOpt = None,
) -> None:
    """Drop a held plan: it can no longer be approved (a run that plans exactly the
    same again holds it again). Writes nothing to Feishu."""

    def go() -> int:
        with _writing(config, "discard") as (_, ledger):
            if not ledger.discard_plan(plan_id, by=by or _os_user()):
                raise OrgsyncError(_not_held(ledger, plan_id))
        out.print(f"Plan {plan_id} discarded.", markup=False)
        return EXIT_OK

    raise typer.Exit(_guard(go))


def _os_user() -> str:
    """Who runs this command, as the OS knows them."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a bare container)
        return f"uid {os.getuid()}"


def _not_held(ledger: Any, plan_id: str) -> str:
    """Why ``plan_id`` cannot be approved or discarded."""
    status = ledger.plan_status(plan_id)
    if status is None:
        return f"no held plan {plan_id!r}; 'orgsync status' lists held plans"
    return f"plan {plan_id} is not held: it was {status}"


def _apply(config: Path, *, yes: bool, accept_shrink: bool, approve: str | None = None,
           by: str | None = None, only: list[str] | None = None,
           filters: Filters | None = None) -> None:
    """``apply`` (of exactly the held plan ``approve``), under the writer lock.

    Ctrl-C stops it: the calls in flight stay journaled, and it says how far it got.
    """
    with gcpause.paused_gc():  # as in plan: the imports make no garbage
        from orgsync import render
        from orgsync.runner import Approval, run_once

    bar = render.ProgressBar(out)
    confirm = _confirmer(bar, yes=yes)
    from orgsync.plan_view import Filters

    show = _shower(filters or Filters(), yes=yes)

    def go() -> int:
        with _interruptible(bar):
            return applying()

    def applying() -> int:
        with _writing(config, "approve" if approve else "apply") as (cfg, ledger):
            bar.scale = cfg.feishu.rate_scale
            approval = None
            if approve is not None:
                if ledger.plan_status(approve) not in ("held", "approved"):
                    raise OrgsyncError(_not_held(ledger, approve))
                approval = Approval(approve, by or _os_user())
            try:
                outcome = asyncio.run(run_once(cfg, ledger, apply=True, show=show,
                                               confirm=confirm, progress=bar.advance,
                                               accept_shrink=accept_shrink, approve=approval,
                                               only=only))
                _LEFT_TO_EXIT.append(outcome)
            finally:
                bar.stop()
        if outcome.selection is not None and only is not None:
            from orgsync.only import describe

            for line in describe(outcome.selection, only):
                out.print(line, markup=False, soft_wrap=True)
        if approval is not None and not outcome.cancelled:
            out.print(f"Plan {approve} approved by {approval.by}.", markup=False)
        elif approval is not None:
            err.print(f"Plan {approve} stays held (nothing approved).", markup=False)
        return _reported(outcome)

    raise typer.Exit(_guard(go))


@contextmanager
def _writing(path: Path, command: str) -> Iterator[tuple[Any, Any]]:
    """:func:`_opened`, holding the ledger's writer lock for ``command`` (exit 7 when taken)."""
    from orgsync import writer

    with _opened(path) as (cfg, ledger), writer.holding(ledger, command, cfg.daemon.lock_name):
        yield cfg, ledger


@app.command()
def check(config: ConfigOpt = Path("orgsync.yaml")) -> None:
    """Compare Feishu (read live) with the source: exit 0 when they match, 1 on drift."""
    from orgsync import render
    from orgsync.runner import run_once

    def go() -> int:
        with _opened(config) as (cfg, ledger):
            outcome = asyncio.run(run_once(cfg, ledger, apply=False, full=True))
            _LEFT_TO_EXIT.append(outcome)
        out.file.flush()
        render.render(outcome.plan, "text", sys.stdout)
        return EXIT_OK if outcome.plan.empty else EXIT_ERROR

    raise typer.Exit(_guard(go))


FormatOpt = Annotated[str, typer.Option("--format", "-f", help="text or json")]


@app.command()
def status(config: ConfigOpt = Path("orgsync.yaml"), fmt: FormatOpt = "text") -> None:
    """What orgsync manages and how the last run went (and why, when it did not)."""

    from orgsync import history as runs_view
    from orgsync import writer
    from orgsync.takeover import feishu_only_text

    def go() -> int:
        _format(fmt, "text", "json")
        with _opened(config) as (_, ledger):
            state = ledger.load_state()
            runs = ledger.runs(limit=1)
            decisions = ledger.decisions([r.plan_id for r in runs if r.plan_id])
            held = ledger.held_plans()
            unknown = ledger.notifications(status="unknown")
            writing = writer.current(ledger)
            feishu_only = ledger.get_meta("feishu_only")
        live = state.live_users()
        frozen = sum(1 for u in live.values() if u.lifecycle.value == "frozen")
        last = runs_view.run_record(runs[0], decisions.get(runs[0].plan_id or "")) \
            if runs else None
        if fmt == "json":
            _print_json({
                "managed": {"departments": len(state.departments), "users": len(live),
                            "frozen": frozen, "deleted": len(state.users) - len(live)},
                "feishu_only": json.loads(feishu_only) if feishu_only else None,
                "held_plans": [runs_view.held_record(h) for h in held],
                "messages_unknown": [{"event": n.event, "message": n.message}
                                     for n in unknown],
                "last_run": last,
                "writing": writing.describe() if writing is not None else None})
            return EXIT_OK
        out.print(f"Managed: {len(state.departments)} departments, {len(live)} users "
                  f"({frozen} frozen, {len(state.users) - len(live)} deleted)")
        if feishu_only:
            out.print(feishu_only_text(json.loads(feishu_only)) + " (at the takeover)",
                      markup=False)
        for h in held:
            out.print(f"Held plan {h.plan_id} since {h.created_at:%Y-%m-%d %H:%M}: "
                      f"{'; '.join(json.loads(h.reasons))} — 'orgsync approve {h.plan_id}' "
                      f"or 'orgsync discard {h.plan_id}'", markup=False, soft_wrap=True)
        for n in unknown:
            out.print(f"Message {n.event}: delivery unknown — {n.message}", markup=False)
        if last is not None:
            out.print(f"Last run: {last['run_id']} {last['mode']} {last['outcome']} at "
                      f"{runs[0].started_at:%Y-%m-%d %H:%M:%S} plan={last['plan_id'] or '—'}",
                      markup=False, soft_wrap=True)
            why = runs_view.why_text(last)
            if why:
                out.print(f"  {'error' if last['error'] else 'note'}: {why}", markup=False,
                          soft_wrap=True)
        else:
            out.print("No runs yet.")
        if writing is not None:
            out.print(f"Writing now: {writing.describe()}")
        return EXIT_OK

    raise typer.Exit(_guard(go))


@app.command()
def history(
    config: ConfigOpt = Path("orgsync.yaml"),
    limit: Annotated[int, typer.Option("--limit", "-n", help="Runs shown.")] = 20,
    fmt: FormatOpt = "text",
) -> None:
    """Recent runs, newest first: outcome (ok, failed writes, held, refused, cancelled,
    interrupted, failed), why, and who approved a held plan."""
    from orgsync import history as runs_view

    def go() -> int:
        _format(fmt, "text", "json")
        with _opened(config) as (_, ledger):
            runs = ledger.runs(limit=limit)
            decisions = ledger.decisions([r.plan_id for r in runs if r.plan_id])
        records = [runs_view.run_record(r, decisions.get(r.plan_id or "")) for r in runs]
        if fmt == "json":
            _print_json(records)
            return EXIT_OK
        if not out.is_terminal:  # whole values, one run a line: for grep, cut and copy
            # (print, not the console: it would expand the tabs)
            print("run\tmode\toutcome\tplan\tstarted\tsummary\twhy")
            for r, rec in zip(runs, records, strict=True):
                print("\t".join((rec["run_id"], rec["mode"], rec["outcome"],
                                 rec["plan_id"] or "—", f"{r.started_at:%Y-%m-%d %H:%M:%S}",
                                 runs_view.summary_text(rec["summary"]),
                                 " ".join(runs_view.why_text(rec).split()))))
            return EXIT_OK
        table = Table("run", "mode", "outcome", "plan", "started", "summary", "why")
        for column in table.columns:
            column.overflow = "fold"
        for r, rec in zip(runs, records, strict=True):
            table.add_row(Text(rec["run_id"]), rec["mode"], rec["outcome"],
                          Text(rec["plan_id"] or "—"), f"{r.started_at:%Y-%m-%d %H:%M:%S}",
                          Text(runs_view.summary_text(rec["summary"])),
                          Text(runs_view.why_text(rec)))
        out.print(table)
        return EXIT_OK

    raise typer.Exit(_guard(go))


def _format(fmt: str, *allowed: str) -> None:
    """Refuse an output format the command does not know (exit 3, not text with exit 0)."""
    from orgsync.errors import ConfigError

    if fmt not in allowed:
        raise ConfigError(f"unknown format {fmt!r}", key="--format",
                          remedy="use " + " or ".join(allowed))


def _print_json(data: Any) -> None:
    out.print(json.dumps(data, ensure_ascii=False, indent=2), markup=False, soft_wrap=True,
              highlight=False)


@app.command()
def explain(
    key: Annotated[str, typer.Argument(
        help="An employee id, a department code, or a person's email.")],
    config: ConfigOpt = Path("orgsync.yaml"),
    live: Annotated[bool, typer.Option(
        "--live", help="Also read what Feishu holds now (one read).")] = False,
    fmt: FormatOpt = "text",
) -> None:
    """Why is this person (or department) the way they are: the source record and its
    issues, what orgsync applied, lifecycle dates, the last operations, messages owed.

    Reads the source and the ledger (and with --live, Feishu); writes nothing.
    """
    from orgsync import explain as explaining

    def go() -> int:
        _format(fmt, "text", "json")
        with _opened(config) as (cfg, ledger):
            report = asyncio.run(explaining.explain(cfg, ledger, key, live=live))
        if fmt == "json":
            _print_json(report)
        else:
            explaining.render_text(report, out)
        return EXIT_OK

    raise typer.Exit(_guard(go))


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8790,
    app_id: Annotated[str, typer.Option("--app-id", envvar="ORGSYNC_APP_ID",
                                        help="The app id the sandbox accepts.")] = "cli_demo",
    app_secret: Annotated[str | None, typer.Option(
        "--app-secret", envvar="ORGSYNC_APP_SECRET",
        help="The app secret [default: demo-secret]; visible in ps: prefer the variable "
             "or --app-secret-file.")] = None,
    app_secret_file: Annotated[Path | None, typer.Option(
        "--app-secret-file", envvar="ORGSYNC_APP_SECRET_FILE",
        help="Read the app secret from this file.")] = None,
    rate_scale: Annotated[float, typer.Option(help="Documented rate limits × this.")] = 1.0,
    latency_ms: Annotated[float, typer.Option(help="Latency added to every API call.")] = 0.0,
    seed_file: Annotated[Path | None, typer.Option(help="JSON state to start from.")] = None,
) -> None:
    """Run the local Feishu sandbox (same API, rules and limits) for trying a config."""
    from orgsync.errors import ConfigError
    from orgsync.options import read_secret_file
    from orgsync.sandbox import SandboxConfig
    from orgsync.sandbox.server import serve

    def go() -> None:
        secret = app_secret or "demo-secret"
        # How the admin token is shown: a secret given on the command line (or the demo's)
        # is in the open already; one from a file or the environment is named, not printed.
        token, header = secret, shlex.quote(f"Authorization: Bearer {secret}")
        if app_secret_file is not None:
            if app_secret is not None:
                raise ConfigError("both --app-secret and --app-secret-file are given",
                                  remedy="keep only one (ORGSYNC_APP_SECRET sets the first)")
            secret = read_secret_file(app_secret_file, file=None, key="--app-secret-file")
            where = shlex.quote(str(app_secret_file.resolve()))
            token = f"the content of {where}"
            header = f'"Authorization: Bearer $(cat {where})"'
        elif app_secret is not None and os.environ.get("ORGSYNC_APP_SECRET") == app_secret:
            token, header = "$ORGSYNC_APP_SECRET", '"Authorization: Bearer $ORGSYNC_APP_SECRET"'
        logs.configure(level="info")

        def listening(url: str) -> None:
            out.print(f"Feishu sandbox on {url} (app id {app_id}). Its admin API (/_sandbox/…: "
                      f"state, seed, config, clock, requests) takes the app secret as bearer "
                      f"token: {token}", markup=False, soft_wrap=True)
            out.print(f"  curl -H {header} {url}/_sandbox/state", markup=False, soft_wrap=True)
            sys.stdout.flush()

        serve(SandboxConfig(app_id=app_id, app_secret=secret, rate_scale=rate_scale,
                            latency_ms=latency_ms), host, port, seed_file=seed_file,
              listening=listening)

    _guard(go)


@app.command()
def demo(
    fast: Annotated[bool, typer.Option(help="Run the sandbox's rate limits 10× faster.")] = False,
) -> None:
    """Sync a sample company into an in-process sandbox, then next week's changes."""
    from orgsync.demo import run_demo

    logs.configure(level=os.environ.get("ORGSYNC_LOG_LEVEL", "warning"))
    raise typer.Exit(_guard(lambda: run_demo(out, rate_scale=10.0 if fast else 1.0)))


@app.command()
def daemon(config: ConfigOpt = Path("orgsync.yaml")) -> None:
    """Run on a schedule: incremental syncs, full resyncs, an admin HTTP endpoint.

    One run at a time; with several replicas on one ledger only the leader syncs.
    SIGTERM or SIGINT stops it cleanly (exit 0).
    """
    from orgsync.daemon.service import run_daemon

    raise typer.Exit(_guard(lambda: run_daemon(_load(config))))


@app.command()
def resync(
    config: ConfigOpt = Path("orgsync.yaml"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    local: Annotated[bool, typer.Option(
        "--local", help="Run here even when admin.url names a running daemon.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the daemon's run.")
                       ] = 3600.0,
) -> None:
    """Full resync: read Feishu live, repair drift, rebuild the mirror.

    With admin.url set, the daemon there runs it (and this waits for the result);
    otherwise it runs here, under the ledger's writer lock like any writing run.
    """
    from orgsync import render
    from orgsync.errors import EXIT_APPLY_FAILED, EXIT_BUSY, EXIT_HELD
    from orgsync.plan_view import Filters
    from orgsync.runner import run_once

    bar = render.ProgressBar(out)
    confirm = _confirmer(bar, yes=yes)

    def remote(cfg: Any) -> int:
        import httpx

        if cfg.admin.token is None:
            raise OrgsyncError("admin.url is set but admin.token is not: the daemon needs it")
        try:
            reply = httpx.post(f"{cfg.admin.url}/resync", params={"wait": "1"},
                               headers={"Authorization": f"Bearer {cfg.admin.token}"},
                               timeout=httpx.Timeout(10.0, read=timeout + 30))
        except httpx.HTTPError as exc:
            raise OrgsyncError(f"cannot reach the daemon at {mask_url(cfg.admin.url)}: "
                               f"{type(exc).__name__} (use --local to run here)") from None
        body = reply.json() if reply.headers.get("content-type", "").startswith(
            "application/json") else {}
        if reply.status_code != 200 or "run" not in body:
            detail = body.get("detail") or body.get("error") or reply.text[:200]
            raise OrgsyncError(f"the daemon at {mask_url(cfg.admin.url)} answered "
                               f"{reply.status_code}: {mask_urls(str(detail))}")
        run = body["run"]
        out.print(f"Resync {run.get('run_id') or '—'} on the daemon: {run['outcome']} "
                  f"in {run['duration_seconds']}s" + (f" ({run['error']})" if run.get("error")
                                                     else ""), markup=False)
        return {"ok": EXIT_OK, "partial": EXIT_APPLY_FAILED, "held": EXIT_HELD,
                "skipped": EXIT_BUSY}.get(run["outcome"], EXIT_ERROR)

    def go() -> int:
        cfg = _load(config)
        if cfg.admin.url and not local:
            return remote(cfg)
        with _writing(config, "resync") as (cfg, ledger):
            bar.scale = cfg.feishu.rate_scale
            try:
                with _interruptible(bar):
                    outcome = asyncio.run(run_once(cfg, ledger, apply=True, full=True,
                                                   show=_shower(Filters(), yes=yes),
                                                   confirm=confirm, progress=bar.advance))
                    _LEFT_TO_EXIT.append(outcome)
            finally:
                bar.stop()
        return _reported(outcome)

    raise typer.Exit(_guard(go))


@app.command()
def doctor(
    config: ConfigOpt = Path("orgsync.yaml"),
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """Check everything a sync needs: Feishu reachable, credentials, scopes, contact range,
    readable fields, admin chat, clock, ledger, source. Exit 0 only when nothing fails.

    Writes nothing to Feishu. Run it before the first sync and whenever something looks wrong.
    """
    from orgsync import doctor as checks

    def go() -> int:
        cfg = _load(config)
        # The checks report every finding themselves; the client's own log lines would
        # only repeat them (and break --format json on stdout).
        logs.configure(fmt=cfg.logging.format, level="critical", mask=cfg.logging.mask_pii)
        found = asyncio.run(checks.run_checks(cfg))
        if fmt == "json":
            out.print(json.dumps(checks.as_json(found), ensure_ascii=False, indent=2),
                      markup=False, soft_wrap=True, highlight=False)
        else:
            style = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
            width = max(len(c.name) for c in found)
            for c in found:
                out.print(Text.assemble((f"{c.status:<4}", style[c.status]), "  ",
                                        f"{c.name:<{width}}", "  ", c.detail), soft_wrap=True)
                if c.remedy and c.status in ("warn", "fail"):
                    out.print(Text.assemble(" " * (width + 8), "→ ", c.remedy), soft_wrap=True)
        return EXIT_OK if checks.passed(found) else EXIT_ERROR

    raise typer.Exit(_guard(go))


@app.command("preview-source")
def preview_source(
    config: ConfigOpt = Path("orgsync.yaml"),
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    limit: Annotated[int, typer.Option("--limit", "-n",
                                       help="Departments/employees shown (0 = all).")] = 50,
) -> None:
    """Print the canonical snapshot the source produces, with its validation report.

    Reads only the source: no Feishu call, no ledger. For debugging a field mapping.
    """
    from orgsync import preview

    def go() -> int:
        cfg = preview.load_source_config(config)
        logs.configure(fmt=cfg.logging.format, level=cfg.logging.level, mask=cfg.logging.mask_pii)
        data = preview.preview_source(cfg)
        leave = None
        if cfg.leave.enabled:
            from orgsync import leave_sync, leave_view

            records = leave_sync.read_leave_data(cfg)
            leave = (records, leave_view.preview_leave(cfg, data, records))
        if fmt == "json":
            doc = json.loads(preview.to_json(data))
            if leave is not None:
                doc["leave"] = leave_view.leave_json(*leave)
            out.print(json.dumps(doc, ensure_ascii=False, indent=2), markup=False,
                      soft_wrap=True, highlight=False)
        else:
            preview.render_text(data, out, limit=limit)
            if leave is not None:
                leave_view.render_leave(*leave, out, limit=limit)
        return EXIT_OK

    raise typer.Exit(_guard(go))

leave_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                        help="Leave marks (请假) in Feishu from the leave file: plan or apply.")
app.add_typer(leave_app, name="leave")


@leave_app.command("plan")
def leave_plan(config: ConfigOpt = Path("orgsync.yaml")) -> None:
    """Show the leave marks a run would create and delete (no Feishu call)."""
    from datetime import UTC, datetime

    from orgsync import leave_sync, leave_view

    def go() -> int:
        with _opened(config) as (cfg, ledger):
            plan = leave_sync.make_leave_plan(cfg, ledger, datetime.now(UTC))
        for line in leave_view.plan_lines(plan):
            out.print(line, markup=False, soft_wrap=True, highlight=False)
        return EXIT_OK

    raise typer.Exit(_guard(go))


@leave_app.command("apply")
def leave_apply(
    config: ConfigOpt = Path("orgsync.yaml"),
    approve: Annotated[bool, typer.Option(
        "--approve", help="Apply a plan held for deleting too many marks.")] = False,
) -> None:
    """Create and delete leave marks in Feishu (holds the one-writer lock)."""
    from orgsync import leave_sync, leave_view
    from orgsync.feishu import FeishuClient

    def go() -> int:
        with _writing(config, "leave apply") as (cfg, ledger):
            async def run() -> Any:
                async with FeishuClient(cfg.feishu) as client:
                    return await leave_sync.run_leave(cfg, ledger, client, apply=True,
                                                      approve=approve)
            outcome = asyncio.run(run())
        for line in leave_view.plan_lines(outcome.plan):
            out.print(line, markup=False, soft_wrap=True, highlight=False)
        for line in [*outcome.warnings, *(f"failed: {f}" for f in outcome.failed)]:
            err.print(line, markup=False, soft_wrap=True, highlight=False)
        if outcome.applied:
            done = ", ".join(f"{k}={v}" for k, v in sorted(outcome.done.items())) or "nothing"
            out.print(f"Applied: {done}; failed: {len(outcome.failed)}", markup=False)
        else:
            err.print("Nothing applied: 'orgsync leave apply --approve' applies a held plan.",
                      markup=False)
        return int(outcome.exit_code)

    raise typer.Exit(_guard(go))


def main() -> None:
    """Console-script entry point: run the command, then exit with its code.

    The process ends with ``os._exit`` once the exit handlers have run and the
    standard streams are flushed, unless other threads are still alive (then
    it exits normally and waits for them). A plan leaves about 10⁵ records
    behind, and freeing them one by one at interpreter shutdown cost 0.15 s for
    nothing (``orgsync.bench`` measures the plan end to end).
    """
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe must not fail a finished command
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
