"""Plans and apply results as text (coloured on a terminal), JSON, Markdown and HTML
(:mod:`orgsync.render_html`); the progress bar."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from itertools import islice
from typing import Any, AnyStr, BinaryIO, TextIO, cast

import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orgsync.errors import ConfigError
from orgsync.executor import ApplyResult, OpResult
from orgsync.feishu.endpoints import USER_PATCH_SLOW, USER_RESURRECT, Endpoint
from orgsync.feishu.ratelimit import Limit
from orgsync.operations import MEMBERSHIP_LANE, RESURRECT_LANE, SPECS
from orgsync.plan import Operation, OpKind, Plan, issue_dict
from orgsync.plan_view import Filters, View, shown_count
from orgsync.takeover import summary_lines

#: The formats ``plan -f`` takes (``md`` is Markdown too).
FORMATS = ("text", "json", "markdown", "html")
_ALIASES = {"md": "markdown"}
_SHOWN_ISSUES = 10  # held records and warnings the summary lists before "and N more"
_ANSI = {"green": "32", "yellow": "33", "red": "31", "cyan": "36", "white": "37"}


def check_format(fmt: str) -> str:
    """The canonical name of ``fmt``; a :class:`ConfigError` naming the formats otherwise."""
    name = _ALIASES.get(fmt.lower(), fmt.lower())
    if name not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}", key="--format",
                          remedy="use " + ", ".join(FORMATS))
    return name


def render(plan: Plan, fmt: str, out: TextIO, filters: Filters | None = None, *,
           color: bool = False) -> None:
    """Write ``plan`` to ``out`` as ``fmt`` (text, json, markdown, html), operation by operation.

    The summary comes first (counts by kind, held records, warnings, the safety
    guards and how close the plan is to each), then the operations that pass
    ``filters``, grouped by kind and department (JSON: in execution order).
    ``color``: ANSI colours in text (for a terminal). Raises :class:`ConfigError` for
    an unknown format or filter before anything is written.
    """
    name = check_format(fmt)
    view = View(plan, filters or Filters())
    if name == "json":
        _json(view, out)
    elif name == "markdown":
        _markdown(view, out)
    elif name == "html":
        from orgsync.render_html import write_html

        write_html(view, out)
    else:
        _text(view, out, color=color)


def op_line(op: Operation) -> str:
    """One-line description of an operation (plain text)."""
    label = f" {op.label}" if op.label else ""
    return f"{op.kind.value} {op.key}{label} ({op.reason})"


def summary_text(view: View, out: TextIO, *, color: bool = False) -> None:
    """The summary a text plan starts with (what ``plan --summary`` and ``apply`` on a
    terminal print)."""
    plan = view.plan

    def paint(text: str, colour: str) -> str:
        return f"\x1b[{_ANSI.get(colour, '1')}m{text}\x1b[0m" if color else text

    w = out.write
    if plan.takeover is not None:
        for line in summary_lines(plan.takeover):
            w(line + "\n")
    if plan.empty:
        w("No changes inside sync.stage.\n" if plan.deferred else
          "No changes. Feishu matches the source.\n")
    else:
        w(f"Plan {plan.plan_id} — {len(plan.operations)} operations\n")
        counts = view.counts()
        width = max(len(k) for k in counts)
        for kind, n in counts.items():
            w(f"  {kind:<{width}}  {n:>6}\n")
    held, warnings = plan.held(), plan.warnings()
    more = " (listed after the operations)" if not view.filters.summary else \
        " (orgsync plan lists them all)"
    for title, colour, mark, issues in (
            (f"Held back ({len(held)}) — left as they are in Feishu:", "red", "✗", held),
            (f"Warnings ({len(warnings)}):", "yellow", "!", warnings)):
        if issues:
            w(paint(title, colour) + "\n")
            for i in issues[:_SHOWN_ISSUES]:
                w(f"  {paint(mark, colour)} {i}\n")
            if len(issues) > _SHOWN_ISSUES:
                w(f"  … and {len(issues) - _SHOWN_ISSUES} more{more}\n")
    if plan.guards:
        w("Safety thresholds (a plan over one is held for approval):\n")
        for g in plan.guards:
            w(f"  {paint('OVER', 'red') if g.over else 'ok  '}  {g.reading()}\n")
    for note in plan.notes:
        w(f"{paint('note:', 'yellow')} {note}\n")
    if plan.deferred:
        w(paint(f"Deferred ({len(plan.deferred)}) — outside sync.stage, not applied:", "cyan")
          + "\n")
        deferred = Counter(op.kind.value for op in plan.deferred)
        width = max(len(k) for k in deferred)
        for kind, n in sorted(deferred.items()):
            w(f"  {kind:<{width}}  {n:>6}\n")
    if not plan.empty:
        w("Summary: " + ", ".join(f"{k}={v}" for k, v in plan.summary().items()) + "\n")


def details_text(view: View, out: TextIO, *, color: bool = False) -> None:
    """The operations that pass the filters, by kind and department (after the summary),
    then the held records and warnings the summary left out."""
    _write_in_batches(out.write, _detail_lines(view, color), "")


def _detail_lines(view: View, color: bool) -> Iterator[str]:
    plan = view.plan
    if view.filters.active:
        yield (f"Showing {shown_count(view)} of {len(plan.operations)} operations "
               f"({view.filters.describe()})\n")
    for kind, n, groups in view.groups():
        mark, colour = SPECS[kind].badge
        if color:
            mark = f"\x1b[{_ANSI.get(colour, '1')}m{mark}\x1b[0m"
        yield f"\n{kind.value} ({n})\n"
        for dept, ops in groups:
            yield f"  {view.names.path(dept) if dept else 'top level'}\n"
            for op in ops:
                yield f"    {mark} {view.title(op)}  ({op.reason})\n"
                changes = view.changes(op)
                if changes:
                    yield "        " + "; ".join(changes) + "\n"
    held, warnings = plan.held(), plan.warnings()
    for title, mark, issues in (("Held back", "✗", held), ("Warnings", "!", warnings)):
        if len(issues) > _SHOWN_ISSUES:
            yield f"\n{title} ({len(issues)}):\n"
            for i in issues:
                yield f"  {mark} {i}\n"


def _text(view: View, out: TextIO, *, color: bool) -> None:
    summary_text(view, out, color=color)
    if not view.filters.summary and not view.plan.empty:
        details_text(view, out, color=color)


def render_text(plan: Plan, console: Console, *, limit: int | None = None) -> None:
    """Print ``plan`` on ``console`` (coloured on a terminal): the summary, then the
    operations; ``limit`` caps the operations listed (the demo's long weeks)."""
    view = View(plan)
    color = console.is_terminal and console.color_system is not None
    out = cast(TextIO, console.file)
    summary_text(view, out, color=color)
    if plan.empty:
        return
    if limit is None or len(plan.operations) <= limit:
        details_text(view, out, color=color)
        return
    keep = {op.op_id for op in plan.operations[:limit]}
    details_text(View(replace(plan, operations=tuple(
        op for op in plan.operations if op.op_id in keep))), out, color=color)
    out.write(f"  … and {len(plan.operations) - limit} more "
                       "(orgsync plan lists them all)\n")


#: Operations' lines are written this many pieces at a time: a write to a text file costs
#: a microsecond and more before it does anything, and a first sync writes 10⁵ lines.
_BATCH = 2000


def _write_in_batches(write: Callable[[AnyStr], object], pieces: Iterable[AnyStr],
                      empty: AnyStr) -> None:
    """Write ``pieces`` joined :data:`_BATCH` at a time (streamed: never all at once)."""
    it = iter(pieces)
    while batch := list(islice(it, _BATCH)):
        write(empty.join(batch))


#: ``json.dumps(value, ensure_ascii=False)``, without building an encoder per call.
_dump = json.JSONEncoder(ensure_ascii=False).encode


def _dump_op(value: Any) -> bytes:
    """An operation's JSON on one line, without spaces, in UTF-8: orjson writes a first
    sync's 200 MB of operations in a third of the standard encoder's time; what it
    refuses (an int beyond 64 bits, a lone surrogate) takes the standard encoder."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _dump(value).encode("utf-8", "surrogatepass")


def _utf8_buffer(out: TextIO) -> BinaryIO | None:
    """``out``'s byte stream when it writes UTF-8 (a file, a pipe): operations' JSON goes
    there as orjson makes it, not decoded to be encoded again; ``None`` otherwise."""
    buffer = getattr(out, "buffer", None)
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
    return buffer if buffer is not None and encoding == "utf8" else None


def _json(view: View, out: TextIO) -> None:
    """The plan as one JSON object, written operation by operation (operations last)."""
    plan = view.plan
    w = out.write
    head: dict[str, Any] = {
        "plan_id": plan.plan_id,
        "checksum": plan.checksum,
        "summary": plan.summary(),
        "held": [issue_dict(i) for i in plan.held()],
        "warnings": [issue_dict(i) for i in plan.warnings()],
        "notes": list(plan.notes),
        "deferred": [op.to_dict() for op in plan.deferred],
        "thresholds": [{"what": g.what, "count": g.count, "limit": g.limit,
                        "setting": g.setting, "over": g.over} for g in plan.guards],
        "filters": {"kinds": sorted(view.filters.kinds), "department": view.filters.department,
                    "keys": sorted(view.filters.keys)},
    }
    if plan.takeover is not None:
        head["takeover"] = dict(plan.takeover)
    w("{\n")
    for k, v in head.items():
        w(f"  {_dump(k)}: {_dump(v)},\n")
    w('  "operations": [')
    if view.filters.summary:
        w("]\n}\n")
        return
    raw = _utf8_buffer(out)
    if raw is not None:
        out.flush()
    _write_in_batches(raw.write if raw is not None else (lambda b: w(b.decode())),
                      _operations_json(view), b"")
    if raw is not None:
        raw.flush()


def _operations_json(view: View) -> Iterator[bytes]:
    """The shown operations' JSON, after the array's opening bracket, to the document's end."""
    first = True
    for op in view.shown():
        yield b"\n    " if first else b",\n    "
        yield _dump_op(view.op_dict(op))
        first = False
    yield b"]\n}\n" if first else b"\n  ]\n}\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(view: View, out: TextIO) -> None:
    """The plan in Markdown (pull-request comments, reports): the summary, then a
    table per kind, rows by department."""
    plan = view.plan
    w = out.write
    w(f"### orgsync plan `{plan.plan_id}`\n\n")
    if plan.takeover is not None:
        w("".join(f"- {line}\n" for line in summary_lines(plan.takeover)) + "\n")
    if plan.empty:
        w("No changes.\n")
    else:
        w(f"{len(plan.operations)} operations: " + ", ".join(
            f"{k}={v}" for k, v in plan.summary().items()) + "\n")
    held, warnings = plan.held(), plan.warnings()
    for title, issues in (("Held back", held), ("Warnings", warnings)):
        if issues:
            w(f"\n**{title} ({len(issues)})**\n\n")
            w("".join(f"- {_cell(str(i))}\n" for i in issues))
    if plan.guards:
        w("\n**Safety thresholds**\n\n")
        w("".join(f"- {'**over**' if g.over else 'ok'}: {_cell(g.reading())}\n"
                  for g in plan.guards))
    if plan.notes:
        w("\n" + "".join(f"- note: {_cell(n)}\n" for n in plan.notes))
    if plan.deferred:
        w(f"\n**Deferred (outside the stage): {len(plan.deferred)} operations**\n")
    if view.filters.summary:
        return
    if view.filters.active:
        w(f"\nShowing {shown_count(view)} of {len(plan.operations)} operations "
          f"(`{view.filters.describe()}`)\n")
    _write_in_batches(w, _markdown_rows(view), "")


def _markdown_rows(view: View) -> Iterator[str]:
    """A table per kind shown, rows by department."""
    for kind, n, groups in view.groups():
        yield (f"\n#### {kind.value} ({n})\n\n| Department | Key | Name | Changes | Reason |\n"
               "|---|---|---|---|---|\n")
        for dept, ops in groups:
            where = _cell(view.names.path(dept) if dept else "top level")
            for op in ops:
                name = view.names.path(op.key) if op.entity == "department" else op.label
                yield (f"| {where} | {_cell(op.key)} | {_cell(name)} | "
                       f"{'<br>'.join(_cell(c) for c in view.changes(op))} | {_cell(op.reason)} |\n")


def render_json(plan: Plan) -> str:
    """The plan as JSON (see :func:`render`)."""
    buf = io.StringIO()
    render(plan, "json", buf)
    return buf.getvalue()


def render_markdown(plan: Plan) -> str:
    """The plan as Markdown (see :func:`render`)."""
    buf = io.StringIO()
    render(plan, "markdown", buf)
    return buf.getvalue()


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


#: The lanes held to a Feishu limit far below the others, and the limit as documented
#: (feishu-api.md: 1 QPS for user patches that move or freeze; 10/min for resurrect).
_SLOW_LANES = {MEMBERSHIP_LANE.name: USER_PATCH_SLOW.limit,
               RESURRECT_LANE.name: USER_RESURRECT.limits[0]}
_SLOW_WORDS = {OpKind.USER_MOVE: "moves", OpKind.USER_FREEZE: "freezes",
               OpKind.USER_UNFREEZE: "unfreezes", OpKind.USER_RESURRECT: "resurrects"}


def limit_text(limit: Limit, scale: float = 1.0) -> str:
    """``1/s``, ``10/min``: a rate limit as people say it (``scale``: the configured
    ``feishu.rate_scale``, 1 against Feishu)."""
    n = limit.scaled(scale).count
    return f"{n}/s" if limit.period == 1.0 else f"{n}/min" if limit.period == 60.0 \
        else f"{n}/{limit.period:g}s"


class ProgressBar:
    """A progress bar over a plan's operations (silent when stdout is not a terminal).

    It shows an ETA that knows the slow lanes (1 move a second whatever else goes
    fast) and says when only rate-limited work is left (``moves: 1/s Feishu limit``).
    ``done`` and ``total`` count the operations (what an interrupted apply reports).
    """

    def __init__(self, console: Console, *, scale: float = 1.0) -> None:
        self.console = console
        self.scale = scale
        self.progress: Progress | None = None
        self.task: Any = None
        self.total = 0
        self.done = 0
        self.finished = 0
        self._slow: Counter[OpKind] = Counter()  # rate-limited operations not finished yet
        self._writes: Counter[Endpoint] = Counter()  # operations not finished yet, by API
        self._fast_left = 0
        self._started = 0.0

    def start(self, plan: Plan | int) -> None:
        """Start over ``plan``'s operations (or a count of operations)."""
        ops: tuple[Operation, ...] = plan.operations if isinstance(plan, Plan) else ()
        self.total = len(ops) if isinstance(plan, Plan) else int(plan)
        self._slow = Counter(op.kind for op in ops if SPECS[op.kind].lane.name in _SLOW_LANES)
        self._fast_left = self.total - sum(self._slow.values())
        self._writes = Counter(w for op in ops if (w := SPECS[op.kind].writes) is not None)
        self._started = time.monotonic()
        if self.total and self.console.is_terminal:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("{task.fields[eta]}"), console=self.console,
                                     transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.waiting() or "applying", total=self.total,
                                               eta=self.eta())

    def advance(self, result: OpResult) -> None:
        """One operation finished (done, failed or skipped)."""
        self.finished += 1
        self.done += result.status == "done"
        kind = result.op.kind
        if (writes := SPECS[kind].writes) is not None and self._writes[writes]:
            self._writes[writes] -= 1
        if self._slow[kind]:
            self._slow[kind] -= 1
        else:
            self._fast_left -= 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=self.waiting() or "applying",
                                 eta=self.eta())

    def waiting(self) -> str:
        """``moves: 1/s Feishu limit`` when only rate-limited operations are left, else ``""``."""
        if self._fast_left > 0 or not +self._slow:
            return ""
        kinds = [k for k in self._slow if self._slow[k]]
        limit = _SLOW_LANES[SPECS[kinds[0]].lane.name]
        return (", ".join(_SLOW_WORDS.get(k, k.value) for k in kinds)
                + f": {limit_text(limit, self.scale)} Feishu limit")

    def eta(self) -> str:
        """``ETA 2m05s``: the slow lanes at their limits, the rest at the pace so far — and
        never sooner than each API's documented limits allow for what is left on it (a first
        sync's creates go out at 50/s for a minute, then at 1000/min: the pace of the first
        minute would promise a third of the real time)."""
        elapsed = time.monotonic() - self._started
        fast_done = self.total - sum(self._slow.values()) - self._fast_left
        fast = self._fast_left * elapsed / fast_done if fast_done else 0.0
        slow = 0.0
        for lane, limit in _SLOW_LANES.items():
            left = sum(n for k, n in self._slow.items() if SPECS[k].lane.name == lane)
            rate = limit.scaled(self.scale).count
            slow = max(slow, left * limit.period / rate)
        for api, left in self._writes.items():
            for limit in api.limits:
                scaled = limit.scaled(self.scale)
                slow = max(slow, left * scaled.period / scaled.count)
        seconds = int(max(fast, slow))
        return f"ETA {seconds // 60}m{seconds % 60:02d}s"

    def interrupted(self) -> str:
        """What an interrupted apply says: ``interrupted: 11 of 60 done; run again to finish``."""
        return f"interrupted: {self.done} of {self.total} done; run again to finish"

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
