"""Benchmark 1, plan at scale: ``orgsync plan`` end to end on a large, already applied org.

The org (:func:`orgsync.synth.generate_org`) is "already applied": the ledger's
mirror is filled directly (:mod:`orgsync.bench.mirror`). The export then has a
share of its employees changed (:mod:`orgsync.bench.churn`), and a real
``orgsync plan -c CONFIG`` subprocess is timed by wall clock from spawn to exit
(process start, imports, read CSV, validate, load the mirror, diff, build and
print the plan), with the peak RSS of that child; then the same plan with the 200 user
groups of :mod:`orgsync.bench.groups_scale` defined and mirrored (their members as the
applied org's first group sync left them), for the delta the group step adds. In the same
run a bare ``csv.DictReader`` pass over the same two files gives the yardstick. Finally an
``orgsync apply --yes`` of the *unchanged* export must make zero API calls.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from orgsync.bench.churn import change_share
from orgsync.bench.common import Context, median, orgsync_command, run_timed, write_config
from orgsync.bench.groups_scale import define
from orgsync.bench.mirror import fill_groups, fill_mirror
from orgsync.bench.report import BenchResult, Figure
from orgsync.bench.sizes import Sizes
from orgsync.config import config_from_dict
from orgsync.synth import generate_org, with_profile, write_csv

NAME = "plan_at_scale"
_OPERATIONS = re.compile(r"— (\d+) operations")


def dictreader_pass(*paths: Path) -> float:
    """Seconds for a bare ``csv.DictReader`` pass that keeps every row (the yardstick)."""
    start = time.perf_counter()
    for path in paths:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        del rows
    return time.perf_counter() - start


def _timed_plan(command: list[str], seconds: list[float], rss: list[float]) -> int:
    """Run ``orgsync plan`` once, adding its wall time and peak RSS; its operation count."""
    timed = run_timed(command)
    if timed.returncode != 0:
        raise RuntimeError(f"orgsync plan exited {timed.returncode}: {timed.stderr[-2000:]}")
    seconds.append(timed.seconds)
    rss.append(timed.max_rss_mb)
    found = _OPERATIONS.search(timed.stdout)
    return int(found.group(1)) if found else 0


def stage_times(config_path: Path) -> dict[str, float]:
    """The plan's stages timed in this process (imports already warm), for the profile.

    As :func:`orgsync.runner.run_once` runs them: collector paused, the mirror
    loaded against the records just read (fingerprints), validation trusting the
    values Feishu already holds, no Feishu lookup.
    """
    from connectors.registry import build_connector
    from orgsync import gcpause, render
    from orgsync.config import load_config
    from orgsync.diff import DiffPolicy, diff
    from orgsync.ledger import Ledger
    from orgsync.validate import validate

    t: dict[str, float] = {}
    start = time.perf_counter()
    cfg = load_config(config_path)
    ledger = Ledger(cfg.ledger.url)
    t["config_and_ledger_open"] = time.perf_counter() - start
    with gcpause.paused_gc():
        mark = time.perf_counter()
        raw = build_connector(cfg.source).read()
        t["read_csv"] = time.perf_counter() - mark
        mark = time.perf_counter()
        state = ledger.load_state(known=raw.snapshot.employees)
        t["load_mirror"] = time.perf_counter() - mark
        mark = time.perf_counter()
        data = validate(raw, applied=state.unchanged)
        t["validate"] = time.perf_counter() - mark
        mark = time.perf_counter()
        plan = diff(data, state, DiffPolicy(leaver_action=cfg.sync.leaver_action))
        t["diff_and_plan"] = time.perf_counter() - mark
        mark = time.perf_counter()
        render.render_text(plan, Console(file=io.StringIO(), width=160, color_system=None))
        t["render_text"] = time.perf_counter() - mark
    ledger.close()
    return {k: round(v, 4) for k, v in t.items()}


def import_seconds() -> tuple[float, float]:
    """Wall seconds of a bare interpreter and of one that imports ``orgsync.cli``."""
    bare = min(run_timed([sys.executable, "-c", "pass"]).seconds for _ in range(3))
    cli = min(run_timed([sys.executable, "-c", "import orgsync.cli"]).seconds for _ in range(3))
    return bare, cli


#: The churned export's leavers (1 % of the org) are no incident here: the figure times the
#: plan, which the churn guard would hold (exit 5) on a ledger without applied runs.
_NO_CHURN_GUARD = {"churn_floor": 1_000_000}


def run(sizes: Sizes, ctx: Context) -> BenchResult:
    """Build the org, fill the mirror, time ``orgsync plan`` and the yardstick."""
    from orgsync.ledger import Ledger
    from orgsync.source import SourceData
    from orgsync.validate import validate

    result = BenchResult(NAME)
    work = ctx.workdir / NAME
    details: dict[str, Any] = result.details

    mark = time.perf_counter()
    # Every profile field populated (work station, gender, job level and family, dotted-line
    # managers for the people in two departments): what a full HR export carries.
    org = with_profile(generate_org(seed=7, employees=sizes.plan_employees,
                                    departments=sizes.plan_departments,
                                    levels=sizes.plan_levels,
                                    multi_department_share=sizes.plan_multi_share))
    details["generate_seconds"] = round(time.perf_counter() - mark, 3)
    checked = validate(SourceData(org))
    if checked.issues:
        raise RuntimeError(f"the synthetic org does not validate: {checked.issues[0]}")
    changed, churn = change_share(org, share=sizes.plan_change_share)
    base_dir, changed_dir = work / "base", work / "changed"
    write_csv(org, base_dir)
    dept_csv, emp_csv = write_csv(changed, changed_dir)
    ledger_path = work / "ledger.db"
    ledger_path.unlink(missing_ok=True)
    ledger = Ledger(f"sqlite:///{ledger_path}")
    try:
        mark = time.perf_counter()
        n_depts, _ = fill_mirror(ledger, checked.snapshot)
        details["mirror_fill_seconds"] = round(time.perf_counter() - mark, 3)
    finally:
        ledger.close()
    sb = ctx.sandbox
    app_id = "cli_bench_plan"
    sb.configure(app_id=app_id, rate_limits=True, latency_ms=0.0)
    sb.reset()
    changed_cfg = write_config(work / "changed.yaml", departments=dept_csv, employees=emp_csv,
                               ledger=ledger_path, base_url=sb.base_url, app_id=app_id,
                               app_secret=sb.app_secret,
                            safety=_NO_CHURN_GUARD)
    base_cfg = write_config(work / "base.yaml", departments=base_dir / "departments.csv",
                            employees=base_dir / "employees.csv", ledger=ledger_path,
                            base_url=sb.base_url, app_id=app_id, app_secret=sb.app_secret,
                            safety=_NO_CHURN_GUARD)
    details.update(org={"departments": n_depts, "employees": len(org.employees),
                        "levels": sizes.plan_levels,
                        "multi_department": sum(1 for e in org.employees.values()
                                                if len(e.department_keys) > 1)},
                   churn={"updated": churn.updated, "moved": churn.moved,
                          "terminated": churn.terminated, "removed": churn.removed,
                          "joined": churn.joined, "total": churn.total},
                   csv_bytes=dept_csv.stat().st_size + emp_csv.stat().st_size)

    # The same plan with 200 user groups (groups_scale's), on a copy of the ledger whose
    # group mirror holds their members as a first group sync of the applied org left them:
    # the churned export then moves the changed people's memberships.
    groups_ledger = work / "ledger-groups.db"
    shutil.copyfile(ledger_path, groups_ledger)
    specs = define(sorted(org.departments))
    ledger = Ledger(f"sqlite:///{groups_ledger}")
    try:
        memberships = fill_groups(ledger, checked.snapshot, config_from_dict(
            {"version": 1, "feishu": {"app_id": app_id, "app_secret": "-"},
             "source": {"type": "csv", "departments": "d.csv", "employees": "e.csv"},
             "groups": {"define": specs}}, base_dir=work).groups.define)
    finally:
        ledger.close()
    groups_cfg = write_config(work / "groups.yaml", departments=dept_csv, employees=emp_csv,
                              ledger=groups_ledger, base_url=sb.base_url, app_id=app_id,
                              app_secret=sb.app_secret, safety=_NO_CHURN_GUARD, groups=specs)

    command = [*orgsync_command(), "plan", "-c", str(changed_cfg)]
    with_groups = [*orgsync_command(), "plan", "-c", str(groups_cfg)]
    details["command"] = " ".join(command)
    details["command_with_groups"] = " ".join(with_groups)
    plans: list[float] = []
    readers: list[float] = []
    rss: list[float] = []
    group_plans: list[float] = []
    group_rss: list[float] = []
    operations: int | None = None
    group_operations: int | None = None
    for _ in range(max(1, sizes.plan_repeats)):  # interleaved: both see the same machine
        readers.append(dictreader_pass(dept_csv, emp_csv))
        operations = _timed_plan(command, plans, rss)
        group_operations = _timed_plan(with_groups, group_plans, group_rss)
    details.update(plan_seconds=[round(x, 3) for x in plans],
                   dictreader_seconds=[round(x, 4) for x in readers],
                   plan_max_rss_mb=[round(x, 1) for x in rss], operations=operations,
                   groups={"groups": len(specs), "memberships": memberships,
                           "plan_seconds": [round(x, 3) for x in group_plans],
                           "plan_max_rss_mb": [round(x, 1) for x in group_rss],
                           "operations": group_operations})
    details["stages_in_process"] = stage_times(changed_cfg)
    bare, with_cli = import_seconds()
    details["interpreter_seconds"] = round(bare, 3)
    details["import_orgsync_cli_seconds"] = round(with_cli, 3)

    # A no-change apply: the plan is empty, so not one request may reach Feishu.
    sb.clear_requests()
    noop = run_timed([*orgsync_command(), "apply", "--yes", "-c", str(base_cfg)])
    if noop.returncode != 0:
        raise RuntimeError(f"no-change apply exited {noop.returncode}: {noop.stderr[-2000:]}")
    api_calls = len(sb.requests())
    details["no_change_apply_seconds"] = round(noop.seconds, 3)
    details["no_change_output"] = noop.stdout.strip().splitlines()[:1]

    plan_s, reader_s = median(plans), median(readers)
    group_s = median(group_plans)
    label = f"{len(org.employees):,} employees / {n_depts:,} departments, {churn.total} changed"
    result.figures = [
        Figure(NAME, "plan end to end, wall (median)", plan_s, "s", 2.5, "<=", label),
        Figure(NAME, "plan peak RSS", max(rss), "MB", 500, "<="),
        Figure(NAME, "plan ÷ bare csv.DictReader pass", plan_s / reader_s, "×", 8, "<=",
               f"DictReader {reader_s:.3f} s"),
        Figure(NAME, "plan end to end with 200 groups, wall (median)", group_s, "s", 2.5, "<=",
               f"{len(specs)} groups, {memberships:,} memberships; "
               f"{(group_operations or 0) - (operations or 0)} group operations"),
        Figure(NAME, "plan with 200 groups peak RSS", max(group_rss), "MB", 500, "<="),
        Figure(NAME, "plan with 200 groups ÷ bare csv.DictReader pass", group_s / reader_s, "×",
               8, "<="),
        Figure(NAME, "plan end to end: 200 groups' delta", group_s - plan_s, "s",
               note="medians' difference; informational"),
        Figure(NAME, "no-change apply: API calls", float(api_calls), "calls", 0, "=="),
        Figure(NAME, "plan operations", float(operations or 0), "ops"),
        Figure(NAME, "import orgsync.cli (process start included)", with_cli, "s",
               note=f"bare interpreter {bare:.3f} s"),
    ]
    return result

