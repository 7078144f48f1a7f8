"""Benchmark: the first sync's plan, and how plan cost grows with the org.

For each size of :attr:`~orgsync.bench.sizes.Sizes.growth_employees` (one department
per twenty people) a synthetic org is written as CSV and planned twice by a real
``orgsync plan`` subprocess: *initial* (empty ledger and Feishu, every operation a
create; adoption lookups off) and *incremental* (the mirror filled as if applied,
1 % of people changed). Each run's wall time and peak RSS are taken, with a bare
``csv.DictReader`` pass over the same files in the same run as the yardstick. The
exponent of wall time against size is the least-squares slope in log-log space
(1 = linear). At the size of :attr:`~orgsync.bench.sizes.Sizes.plan_employees`
the initial plan is also rendered as JSON and Markdown (the output goes to a
file, as a user would redirect it), and each format's floor is timed the same way:
:mod:`orgsync.bench.floor`, the same command with the planning left out (the creates
made straight from the records and rendered), without and with the plan's checksum.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from orgsync.bench.churn import change_share
from orgsync.bench.common import Context, Timed, orgsync_command, run_timed, write_config
from orgsync.bench.mirror import fill_mirror
from orgsync.bench.plan_scale import dictreader_pass
from orgsync.bench.report import BenchResult, Figure
from orgsync.bench.sizes import Sizes
from orgsync.synth import generate_org, write_csv

NAME = "plan_growth"
_PEOPLE_PER_DEPARTMENT = 20


def exponent(sizes: list[float], seconds: list[float]) -> float:
    """The slope of log(seconds) against log(size): cost ∝ size ** exponent."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def run(sizes: Sizes, ctx: Context) -> BenchResult:
    """Plan initial and incremental at every size; figures per size and the fitted exponent."""
    from orgsync.ledger import Ledger
    from orgsync.source import SourceData
    from orgsync.validate import validate

    result = BenchResult(NAME)
    sb = ctx.sandbox
    app_id = "cli_bench_growth"
    sb.configure(app_id=app_id, rate_limits=True, latency_ms=0.0)
    rows: list[dict[str, Any]] = []
    for n in sizes.growth_employees:
        work = ctx.workdir / NAME / str(n)
        org = generate_org(seed=7, employees=n, departments=max(1, n // _PEOPLE_PER_DEPARTMENT),
                           levels=sizes.plan_levels,
                           multi_department_share=sizes.plan_multi_share)
        changed, _ = change_share(org, share=sizes.plan_change_share)
        dept_csv, emp_csv = write_csv(org, work / "base")
        ch_dept, ch_emp = write_csv(changed, work / "changed")
        first = write_config(work / "initial.yaml", departments=dept_csv, employees=emp_csv,
                             ledger=work / "empty.db", base_url=sb.base_url, app_id=app_id,
                             app_secret=sb.app_secret, sync={"adopt_existing": False})
        ledger_path = work / "applied.db"
        ledger_path.unlink(missing_ok=True)
        ledger = Ledger(f"sqlite:///{ledger_path}")
        try:
            fill_mirror(ledger, validate(SourceData(org)).snapshot)
        finally:
            ledger.close()
        weekly = write_config(work / "incremental.yaml", departments=ch_dept, employees=ch_emp,
                              ledger=ledger_path, base_url=sb.base_url, app_id=app_id,
                              app_secret=sb.app_secret, sync={"adopt_existing": False})
        sb.reset()
        row: dict[str, Any] = {"employees": n, "departments": n // _PEOPLE_PER_DEPARTMENT,
                               "dictreader_initial_s": dictreader_pass(dept_csv, emp_csv),
                               "dictreader_incremental_s": dictreader_pass(ch_dept, ch_emp)}
        formats = ("text", "json", "markdown") if n == sizes.plan_employees else ("text",)
        for fmt in formats:
            row[f"initial_{fmt}"] = _plan(first, fmt, work / f"initial.{fmt}")
        if n == sizes.plan_employees:
            for fmt in formats:
                row[f"floor_{fmt}"] = _floor(first, fmt, work / f"floor.{fmt}")
                row[f"floor_hashed_{fmt}"] = _floor(first, fmt, work / f"floor.{fmt}", "--hash")
        row["incremental_text"] = _plan(weekly, "text", work / "incremental.text")
        rows.append(row)
        del org, changed
    result.details["sizes"] = rows
    result.figures = _figures(rows, sizes)
    return result


def _plan(config: Path, fmt: str, out: Path) -> dict[str, float]:
    timed = _timed(out, f"orgsync plan -f {fmt}",
                   [*orgsync_command(), "plan", "-f", fmt, "-c", str(config)])
    return {"seconds": round(timed.seconds, 3), "max_rss_mb": round(timed.max_rss_mb, 1),
            "output_mb": round(len(timed.stdout.encode()) / 1e6, 1)}


def _floor(config: Path, fmt: str, out: Path, *flags: str) -> dict[str, Any]:
    """:func:`_plan`'s figures for :mod:`orgsync.bench.floor` on the same config."""
    timed = _timed(out, f"the floor -f {fmt}",
                   [sys.executable, "-m", "orgsync.bench.floor", str(config), fmt, *flags])
    return {"seconds": round(timed.seconds, 3), "max_rss_mb": round(timed.max_rss_mb, 1),
            "stages": timed.stderr.strip().splitlines()[-1] if timed.stderr.strip() else ""}


def _timed(out: Path, what: str, command: list[str]) -> Timed:
    """``command`` run and timed (:func:`run_timed`), its output kept in ``out``; a
    ``RuntimeError`` naming ``what`` when it fails."""
    timed = run_timed(command, timeout=1800)
    if timed.returncode != 0:
        raise RuntimeError(f"{what} exited {timed.returncode}: {timed.stderr[-2000:]}")
    out.write_text(timed.stdout, encoding="utf-8")
    return timed


def _figures(rows: list[dict[str, Any]], sizes: Sizes) -> list[Figure]:
    figures: list[Figure] = []
    for row in rows:
        n = row["employees"]
        size = f"{n:,} employees / {row['departments']:,} departments"
        for fmt in ("text", "json", "markdown"):
            got = row.get(f"initial_{fmt}")
            if got is None:
                continue
            target = n == sizes.plan_employees  # the targets are at this size
            figures += [
                Figure(NAME, f"initial plan -f {fmt}, {n:,}: wall", got["seconds"], "s",
                       note=f"{size}; {got['output_mb']} MB of output"),
                Figure(NAME, f"initial plan -f {fmt}, {n:,}: ÷ bare csv.DictReader pass",
                       got["seconds"] / row["dictreader_initial_s"], "×",
                       8 if target else None, "<=" if target else None,
                       f"DictReader {row['dictreader_initial_s']:.3f} s"),
                Figure(NAME, f"initial plan -f {fmt}, {n:,}: peak RSS", got["max_rss_mb"], "MB",
                       500 if target else None, "<=" if target else None),
            ]
            for key, what in (("floor", "no diff, order or checksum"),
                              ("floor_hashed", "no diff or order; the checksum")):
                floor = row.get(f"{key}_{fmt}")
                if floor is not None:
                    figures.append(Figure(
                        NAME, f"initial plan -f {fmt}, {n:,}: its floor ({what}) "
                              "÷ bare csv.DictReader pass",
                        floor["seconds"] / row["dictreader_initial_s"], "×",
                        note=f"{floor['seconds']} s, {floor['max_rss_mb']} MB; "
                             f"{floor['stages']} (orgsync.bench.floor)"))
        inc = row["incremental_text"]
        big = n == max(sizes.growth_employees) and n >= 300_000
        figures += [
            Figure(NAME, f"incremental plan, {n:,}: wall", inc["seconds"], "s", note=size),
            Figure(NAME, f"incremental plan, {n:,}: ÷ bare csv.DictReader pass",
                   inc["seconds"] / row["dictreader_incremental_s"], "×",
                   8 if big else None, "<=" if big else None,
                   f"DictReader {row['dictreader_incremental_s']:.3f} s"),
            Figure(NAME, f"incremental plan, {n:,}: peak RSS", inc["max_rss_mb"], "MB",
                   1200 if big else None, "<=" if big else None),
        ]
    if len(rows) > 1:
        ns = [float(r["employees"]) for r in rows]
        for label, key in (("initial", "initial_text"), ("incremental", "incremental_text")):
            figures.append(Figure(
                NAME, f"{label} plan: exponent of wall time vs size",
                exponent(ns, [r[key]["seconds"] for r in rows]), "", 1.1, "<=",
                f"least squares over {', '.join(f'{int(n):,}' for n in ns)} employees"))
    return figures
