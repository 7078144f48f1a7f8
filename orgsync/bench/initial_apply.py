"""Benchmark: the first sync of a company — every department and person created.

A synthetic org (one department per twenty people, leaders and managers) is
applied into an empty sandbox through the code path of ``orgsync apply``, with
the sandbox and the client both at ``rate_scale`` 10 (the documented limits ten
times faster) and a tenth of the usual latency. Figures: the writes made against
``users + 2 × departments`` (a create per department and person, a leader link per
department; manager links ride in the creates), the share of the allowed rate over
the whole run and the 429s provoked. Before that, ``orgsync plan`` of the same org at
the documented limits (``rate_scale`` 1, the usual latency) measures the adoption
lookups: the share of ``batch_get_id``'s documented rate, 50/s as a rate and 1000/min
(50 emails and 50 mobiles a call; the tenant is empty, so everyone is asked).

The whole run's share of the documented rate takes Feishu's write rate as the issue
does, 1000 writes a minute (× ``rate_scale``): ``(writes - 1) / rate`` over the measured
span from the first write to the last. At ``rate_scale`` 10 a 10k-person run fits in
one minute window, where the per-second limit (500/s) would allow a burst; the
fastest legal schedule with that burst (the department creates' plus the user
creates', :func:`orgsync.bench.rates.ideal_span`: people wait for their departments,
leader links are another API and overlap) is reported beside it, without a target.

Last, the memory of a whole first sync: ``orgsync apply --yes`` of
:attr:`~orgsync.bench.sizes.Sizes.memory_users` people (100k in full mode) into an empty
sandbox, in a process of its own so that its peak RSS is its own, with the sandbox and the
client at ``rate_scale`` 100 (so CPU-bound: it measures memory, not pacing).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml

from orgsync.bench import rates
from orgsync.bench.applying import plan_and_apply
from orgsync.bench.common import Context, orgsync_command, run_timed
from orgsync.bench.report import BenchResult, Figure
from orgsync.bench.seed import stage
from orgsync.bench.sizes import Sizes
from orgsync.model import Snapshot
from orgsync.synth import generate_org

NAME = "initial_apply"
RATE_SCALE = 10.0
MEMORY_RATE_SCALE = 100.0
MEMORY_TARGET_AT = 100_000
"""The size at which the issue sets the apply's memory target (≤ 500 MB)."""
_USERS = "/open-apis/contact/v3/users"
_DEPARTMENTS = "/open-apis/contact/v3/departments"
_LOOKUP = "/open-apis/contact/v3/users/batch_get_id"


def run(sizes: Sizes, ctx: Context) -> BenchResult:
    """Apply a whole org into an empty tenant; count the writes, time them against the limits."""
    result = BenchResult(NAME)
    n = sizes.initial_users
    org = generate_org(seed=7, employees=n, departments=max(1, n // 20), levels=6,
                       multi_department_share=sizes.plan_multi_share)
    sb = ctx.sandbox
    app_id = "cli_bench_initial"
    sb.configure(app_id=app_id, rate_limits=True, rate_scale=1.0, latency_ms=sizes.latency_ms)
    staged = stage(ctx, NAME, Snapshot({}, {}), org, app_id=app_id)
    sb.clear_requests()
    planned = run_timed([*orgsync_command(), "plan", "-c", str(staged.config)], timeout=1800)
    if planned.returncode != 0:
        raise RuntimeError(f"orgsync plan exited {planned.returncode}: {planned.stderr[-2000:]}")
    lookups = [e for e in sb.requests() if e["path"] == _LOOKUP]
    # 50/s read as a rate (one call each 20 ms), and 1000/min: an even pacer's best.
    lookup_ideal = max((len(lookups) - 1) / rates.STANDARD[1][0], rates.ideal_span(len(lookups)))
    lookup_span = rates.span(lookups)

    sb.configure(rate_scale=RATE_SCALE, latency_ms=sizes.latency_ms / RATE_SCALE)
    config = yaml.safe_load(staged.config.read_text(encoding="utf-8"))
    config["feishu"]["rate_scale"] = RATE_SCALE
    staged.config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                             encoding="utf-8")
    sb.clear_requests()
    applied = plan_and_apply(staged)
    log = sb.requests()
    writes = [e for e in log if e["method"] in ("POST", "PATCH", "PUT", "DELETE")
              and e["path"].startswith(("/open-apis/contact/v3/users",
                                        "/open-apis/contact/v3/departments"))
              and e["path"] != _LOOKUP]
    users = len(org.active_employees())
    departments = len(org.departments)
    user_creates = [e for e in writes if e["method"] == "POST" and e["path"] == _USERS]
    dept_creates = [e for e in writes if e["method"] == "POST" and e["path"] == _DEPARTMENTS]
    windows = tuple((round(count * RATE_SCALE), period) for count, period in rates.STANDARD)
    burst = rates.ideal_span(len(dept_creates), windows) + \
        rates.ideal_span(len(user_creates), windows)
    per_minute = rates.STANDARD[0][0] * RATE_SCALE
    ideal = (len(writes) - 1) / (per_minute / 60.0)
    whole = rates.span(writes)
    limited = rates.rate_limited(log)
    failed = applied.result.count("failed") + applied.result.count("skipped")
    bound = 1.05 * (users + 2 * departments)
    result.details.update(
        users=users, departments=departments, operations=applied.kinds(),
        writes=len(writes), user_creates=len(user_creates), department_creates=len(dept_creates),
        apply_seconds=round(applied.seconds, 3), write_span_seconds=round(whole, 3),
        ideal_span_seconds=round(ideal, 3), burst_span_seconds=round(burst, 3),
        lookups=len(lookups),
        lookup_span_seconds=round(lookup_span, 3), lookup_ideal_seconds=round(lookup_ideal, 3),
        rate_limited=limited, failed_or_skipped=failed, rate_scale=RATE_SCALE,
        plan_with_lookups_seconds=round(planned.seconds, 3),
        plan_with_lookups_max_rss_mb=round(planned.max_rss_mb, 1),
        writes_per_second=_per_second(writes))
    label = f"{users:,} people / {departments:,} departments, rate_scale {RATE_SCALE:g}"
    result.figures = [
        Figure(NAME, "initial apply: writes", float(len(writes)), "writes", bound, "<=",
               f"{label}; 1.05 × (users + 2 × departments) = {bound:.0f}"),
        _share("initial apply: share of the documented write rate, whole run", ideal, whole,
               0.95, f"{len(writes)} writes over {whole:.1f} s; at {per_minute:.0f}/min "
               f"{ideal:.1f} s"),
        Figure(NAME, "initial apply: share of the fastest legal schedule with bursts",
               burst / whole if whole else None, "",
               note=f"{burst:.1f} s at {windows[1][0]}/s within one minute window"),
        Figure(NAME, "initial apply: 429s provoked", float(limited), "", 0, "=="),
        Figure(NAME, "initial apply: operations failed or skipped", float(failed), "", 0, "=="),
        _share("adoption lookups (batch_get_id): share of the documented rate", lookup_ideal,
               lookup_span, 0.9, f"{len(lookups)} calls over {lookup_span:.1f} s, at the "
               f"documented rate {lookup_ideal:.1f} s, rate_scale 1"),
    ]
    figures, result.details["memory"] = _apply_memory(sizes, ctx)
    result.figures += figures
    return result


def _apply_memory(sizes: Sizes, ctx: Context) -> tuple[list[Figure], dict[str, Any]]:
    """``orgsync apply --yes`` of a whole org into an empty sandbox: its peak RSS, and
    that every planned create was made."""
    n = sizes.memory_users
    org = generate_org(seed=11, employees=n, departments=max(1, n // 20), levels=6,
                       multi_department_share=sizes.plan_multi_share)
    sb = ctx.sandbox
    app_id = "cli_bench_initial_memory"
    sb.configure(app_id=app_id, rate_limits=True, rate_scale=MEMORY_RATE_SCALE, latency_ms=0.0)
    try:
        staged = stage(ctx, f"{NAME}_memory", Snapshot({}, {}), org, app_id=app_id)
        config = yaml.safe_load(staged.config.read_text(encoding="utf-8"))
        config["feishu"]["rate_scale"] = MEMORY_RATE_SCALE
        staged.config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                                 encoding="utf-8")
        sb.clear_requests()
        timed = run_timed([*orgsync_command(), "apply", "--yes", "-c", str(staged.config)],
                          timeout=3600)
        if timed.returncode != 0:
            raise RuntimeError(f"orgsync apply exited {timed.returncode}: {timed.stderr[-2000:]}")
        log = sb.requests()
    finally:
        sb.configure(rate_scale=1.0, latency_ms=sizes.latency_ms)
    created = sum(1 for e in log if e["method"] == "POST" and e["path"] in (_USERS, _DEPARTMENTS))
    wanted = len(org.active_employees()) + len(org.departments)
    size = f"{len(org.active_employees()):,} people / {len(org.departments):,} departments"
    details = {"people": len(org.active_employees()), "departments": len(org.departments),
               "seconds": round(timed.seconds, 3), "max_rss_mb": round(timed.max_rss_mb, 1),
               "creates": created, "rate_scale": MEMORY_RATE_SCALE}
    at_target = n >= MEMORY_TARGET_AT
    return [
        Figure(NAME, "initial apply: peak RSS (orgsync apply --yes, its own process)",
               timed.max_rss_mb, "MB", 500 if at_target else None, "<=" if at_target else None,
               f"{size}, sandbox and client at rate_scale {MEMORY_RATE_SCALE:g}; "
               f"{timed.seconds:.0f} s"),
        Figure(NAME, "initial apply: creates made of those planned", float(created), "creates",
               float(wanted), "==", size),
    ], details


def _share(name: str, ideal: float, span: float, target: float, note: str) -> Figure:
    """``ideal / span`` against ``target``; without a target when too few calls were made
    to have a span (a smoke run)."""
    if span <= 0:
        return Figure(NAME, name, None, "", note=note + "; too few calls to measure")
    return Figure(NAME, name, ideal / span, "", target, ">=", note)


def _per_second(entries: list[dict[str, Any]]) -> dict[str, float]:
    """Arrivals per whole second of the run: the slowest, median and fastest second."""
    if not entries:
        return {}
    start = min(float(e["time"]) for e in entries)
    counts = Counter(int(float(e["time"]) - start) for e in entries)
    seconds = sorted(counts[s] for s in range(max(counts) + 1))
    return {"min": seconds[0], "median": seconds[len(seconds) // 2], "max": seconds[-1]}
