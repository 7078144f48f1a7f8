"""Plans and apply results as text (coloured on a terminal), JSON and Markdown."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orgsync.executor import ApplyResult
from orgsync.operations import SPECS
from orgsync.plan import FieldChange, Operation, Plan
from orgsync.takeover import summary_lines


def _fmt(v: Any) -> str:
    if v is None or v == "":
        return "—"
    if isinstance(v, list):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


def _change(c: FieldChange) -> str:
    if c.old is None or c.old == "" or c.old == []:
        return f"{c.field}: {_fmt(c.new)}"
    if c.new is None or c.new == "" or c.new == []:
        return f"{c.field}: {_fmt(c.old)} → —"
    return f"{c.field}: {_fmt(c.old)} → {_fmt(c.new)}"


def op_line(op: Operation) -> str:
    """One-line description of an operation (plain text)."""
    label = f" {op.label}" if op.label else ""
    return f"{op.kind.value} {op.key}{label} ({op.reason})"


def _op_lines(ops: Sequence[Operation], show_fields: bool, *, rich: bool) -> list[str]:
    """The operation list as lines: rich markup when ``rich``, else plain text."""
    lines: list[str] = []
    esc = escape if rich else str
    for op in ops:
        spec = SPECS[op.kind]
        mark, colour = spec.badge
        label = f" {esc(op.label)}" if op.label else ""
        if rich:
            lines.append(f"  [{colour}]{mark} {op.kind.value}[/] [bold]{escape(op.key)}[/]{label}"
                         f"  [dim]({escape(op.reason)})[/]")
        else:
            lines.append(f"  {mark} {op.kind.value} {op.key}{label}  ({op.reason})")
        if show_fields and spec.lists_fields:
            lines.extend(f"      {esc(_change(c))}" for c in op.changes)
    return lines


def render_text(plan: Plan, console: Console, *, show_fields: bool = True,
                limit: int | None = None) -> None:
    """Print ``plan`` for people: one block per operation, held records, summary.

    ``limit`` caps the operations listed (the summary always counts all of them).
    A takeover's matching comes first.
    """
    if plan.takeover is not None:
        for line in summary_lines(plan.takeover):
            console.print(escape(line), highlight=False)
    if plan.empty:
        console.print("[bold green]No changes inside sync.stage.[/]" if plan.deferred else
                      "[bold green]No changes.[/] Feishu matches the source.")
    else:
        console.print(f"[bold]Plan {plan.plan_id}[/] — {len(plan.operations)} operations")
        shown = plan.operations if limit is None else plan.operations[:limit]
        lines = _op_lines(shown, show_fields, rich=console.is_terminal)
        if lines and console.is_terminal:
            console.print("\n".join(lines), highlight=False)
        elif lines:
            # Not a terminal (a pipe, a file, CI logs): plain text, written at once;
            # rich's markup and wrapping cost more than the plan itself on large plans.
            console.file.write("\n".join(lines) + "\n")
        if len(shown) < len(plan.operations):
            console.print(f"  … and {len(plan.operations) - len(shown)} more "
                          "([bold]orgsync plan[/] lists them all)")
    if plan.issues:
        errors = [i for i in plan.issues if i.severity == "error"]
        warnings = [i for i in plan.issues if i.severity != "error"]
        if errors:
            console.print(f"[bold red]Held back ({len(errors)})[/] — left as they are in Feishu:")
            for i in errors:
                console.print(f"  [red]✗[/] {escape(str(i))}", highlight=False)
        if warnings:
            console.print(f"[bold yellow]Warnings ({len(warnings)})[/]:")
            for i in warnings:
                console.print(f"  [yellow]![/] {escape(str(i))}", highlight=False)
    if plan.deferred:
        console.print(f"[bold blue]Deferred ({len(plan.deferred)})[/] — outside sync.stage, "
                      "not applied:")
        shown = plan.deferred if limit is None else plan.deferred[:limit]
        console.print("\n".join(_op_lines(shown, False, rich=console.is_terminal)),
                      markup=console.is_terminal, highlight=False)
        if len(shown) < len(plan.deferred):
            console.print(f"  … and {len(plan.deferred) - len(shown)} more")
    for n in plan.notes:
        console.print(f"[yellow]note:[/] {escape(n)}")
    if not plan.empty:
        parts = ", ".join(f"{k}={v}" for k, v in plan.summary().items())
        console.print(f"Summary: {parts}", highlight=False)


def render_json(plan: Plan) -> str:
    """The plan as JSON: ``plan_id``, ``checksum``, ``summary``, ``operations``, ``held``."""
    return json.dumps(plan.to_dict(), ensure_ascii=False, indent=2, sort_keys=False)


def render_markdown(plan: Plan) -> str:
    """The plan as a Markdown table, for pull-request comments and reports."""
    lines = [f"### orgsync plan `{plan.plan_id}`", ""]
    if plan.takeover is not None:
        lines += [f"- {line}" for line in summary_lines(plan.takeover)] + [""]
    if plan.empty:
        lines.append("No changes.")
    else:
        lines += ["| Operation | Key | Name | Changes | Reason |", "|---|---|---|---|---|"]
        for op in plan.operations:
            changes = "<br>".join(_change(c).replace("|", "\\|") for c in op.changes)
            lines.append(f"| {op.kind.value} | {op.key} | {op.label.replace('|', '/')} | "
                         f"{changes} | {op.reason} |")
        lines += ["", "Summary: " + ", ".join(f"{k}={v}" for k, v in plan.summary().items())]
    if plan.deferred:
        lines += ["", f"**Deferred (outside the stage): {len(plan.deferred)} operations**"]
    if plan.issues:
        lines += ["", f"**Held back / warnings ({len(plan.issues)})**", ""]
        lines += [f"- {i}" for i in plan.issues]
    return "\n".join(lines) + "\n"


def render_result(result: ApplyResult, console: Console) -> None:
    """Print the outcome of an apply: counts, then each failure with its Feishu code."""
    s = result.summary()
    colour = "green" if not s["failed"] and not s["skipped"] else "red"
    console.print(f"[bold {colour}]Applied:[/] {s['done']} done, {s['failed']} failed, "
                  f"{s['skipped']} skipped")
    for r in result.results:
        if r.status == "failed":
            console.print(f"  [red]✗ {escape(op_line(r.op))}[/]: Feishu {r.code}: "
                          f"{escape(r.message or '')}", highlight=False)
        elif r.status == "skipped":
            console.print(f"  [yellow]- {escape(op_line(r.op))}[/]: {escape(r.message or '')}",
                          highlight=False)


class ProgressBar:
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
