"""Benchmark 2, apply at the ceiling: creates and moves against the documented limits.

The sandbox enforces Feishu's limits (1000/min and 50/s per API, 1 QPS for user
patches that change departments) and adds ``latency_ms`` to every call. Each
measurement stages an org (sandbox, mirror and source; no API calls) so that the
plan holds only the operations measured, then applies it through the code path
of ``orgsync apply``. The share of the allowed rate compares the arrival span of
the measured calls in the sandbox's request log with the fastest legal schedule
(:mod:`orgsync.bench.rates`). The official SDK, called in a plain sequential
loop (the tutorial's approach), is measured in the same run on the same sandbox.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any

from orgsync.bench import rates
from orgsync.bench.applying import plan_and_apply
from orgsync.bench.common import Context
from orgsync.bench.report import BenchResult, Figure
from orgsync.bench.seed import sandbox_state, stage
from orgsync.bench.sizes import Sizes
from orgsync.identity import feishu_department_id, feishu_user_id
from orgsync.model import Employee, Snapshot
from orgsync.synth import generate_org

NAME = "apply_ceiling"
USERS_PATH = "/open-apis/contact/v3/users"


def unlinked_org(*, seed: int, employees: int, departments: int) -> Snapshot:
    """A synthetic org without leaders or managers (so a plan holds only what is measured)."""
    org = generate_org(seed=seed, employees=employees, departments=departments, levels=3,
                       multi_department_share=0.0)
    return Snapshot({k: dataclasses.replace(d, leader_key=None) for k, d in org.departments.items()},
                    {k: dataclasses.replace(e, manager_key=None) for k, e in org.employees.items()})


def measure_creates(sizes: Sizes, ctx: Context, org: Snapshot) -> tuple[list[Figure], dict[str, Any]]:
    """Create ``sizes.create_users`` users into existing departments."""
    sb = ctx.sandbox
    sb.configure(app_id="cli_bench_create", rate_limits=True, rate_scale=1.0,
                 latency_ms=sizes.latency_ms)
    staged = stage(ctx, f"{NAME}/create", Snapshot(org.departments, {}), org,
                   app_id="cli_bench_create")
    applied = plan_and_apply(staged)
    log = sb.requests()
    creates = rates.calls(log, "POST", USERS_PATH)
    creates = [e for e in creates if e["path"] == USERS_PATH]
    n = len(creates)
    ideal = rates.ideal_span(n)
    actual = rates.span(creates)
    limited = rates.rate_limited(log)
    failed = applied.result.count("failed") + applied.result.count("skipped")
    details = {"operations": applied.kinds(), "apply_seconds": round(applied.seconds, 3),
               "create_calls": n, "arrival_span_seconds": round(actual, 3),
               "ideal_span_seconds": round(ideal, 3), "rate_limited": limited,
               "failed_or_skipped": failed, "requests": len(log)}
    share = ideal / actual if actual else None
    figures = [
        Figure(NAME, f"create {n} users: share of the allowed rate", share, "", 0.95, ">=",
               f"arrivals over {actual:.1f} s, fastest legal {ideal:.1f} s"),
        Figure(NAME, "create users: 429s provoked", float(limited), "", 0, "=="),
        Figure(NAME, "create users: orgsync throughput", n / applied.seconds, "calls/s",
               note=f"{n} creates in {applied.seconds:.1f} s, {failed} failed/skipped"),
    ]
    return figures, details


def measure_sdk(sizes: Sizes, ctx: Context, org: Snapshot) -> tuple[list[Figure], dict[str, Any]]:
    """The official SDK creating users one after another, as its tutorial does."""
    import lark_oapi as lark
    from lark_oapi.api.contact.v3 import CreateUserRequest, User

    sb = ctx.sandbox
    app_id = "cli_bench_sdk"
    sb.configure(app_id=app_id, rate_limits=True, rate_scale=1.0, latency_ms=sizes.latency_ms)
    sb.reset()
    sb.seed(sandbox_state(Snapshot(org.departments, {})))
    client = (lark.Client.builder().app_id(app_id).app_secret(sb.app_secret)
              .domain(sb.base_url).timeout(30).log_level(lark.LogLevel.ERROR).build())
    people = sorted(org.employees.values(), key=lambda e: e.key)[:sizes.sdk_creates]
    errors = 0
    start = time.perf_counter()
    for e in people:
        req = (CreateUserRequest.builder().user_id_type("user_id")
               .department_id_type("department_id")
               .request_body(_sdk_user(User.builder(), e)).build())
        resp = client.contact.v3.user.create(req)
        if not resp.success():
            errors += 1
    seconds = time.perf_counter() - start
    log = sb.requests()
    limited = rates.rate_limited(log)
    details = {"sdk_creates": len(people), "sdk_seconds": round(seconds, 3), "sdk_errors": errors,
               "sdk_rate_limited": limited}
    figures = [Figure(NAME, "create users: official SDK, sequential loop",
                      len(people) / seconds, "calls/s",
                      note=f"{len(people)} creates in {seconds:.1f} s, {errors} errors")]
    return figures, details


def _sdk_user(b: Any, e: Employee) -> Any:
    b = (b.user_id(feishu_user_id(e.key)).name(e.name).mobile(e.mobile or "")
         .department_ids([feishu_department_id(k) for k in e.department_keys])
         .employee_type(int(e.employee_type)))
    if e.email:
        b = b.email(e.email)
    if e.en_name:
        b = b.en_name(e.en_name)
    if e.job_title:
        b = b.job_title(e.job_title)
    if e.city:
        b = b.city(e.city)
    if e.employee_no:
        b = b.employee_no(e.employee_no)
    if e.join_date:
        b = b.join_time(int(datetime.combine(e.join_date, dtime(0), UTC).timestamp()))
    return b.build()


def measure_moves(sizes: Sizes, ctx: Context, org: Snapshot) -> tuple[list[Figure], dict[str, Any]]:
    """Move ``sizes.move_users`` existing users to another department (1 QPS each)."""
    sb = ctx.sandbox
    sb.configure(app_id="cli_bench_move", rate_limits=True, rate_scale=1.0,
                 latency_ms=sizes.latency_ms)
    people = dict(sorted(org.employees.items())[:sizes.move_users])
    depts = sorted(org.departments)
    moved = {}
    for k, e in people.items():
        here = depts.index(e.department_keys[0])
        moved[k] = dataclasses.replace(e, department_keys=(depts[(here + 1) % len(depts)],))
    staged = stage(ctx, f"{NAME}/move", Snapshot(org.departments, people),
                   Snapshot(org.departments, moved), app_id="cli_bench_move")
    applied = plan_and_apply(staged)
    log = sb.requests()
    patches = [e for e in rates.calls(log, "PATCH", USERS_PATH + "/")]
    n = len(patches)
    ideal = rates.ideal_span(n, rates.MOVE)
    actual = rates.span(patches)
    limited = rates.rate_limited(log)
    failed = applied.result.count("failed") + applied.result.count("skipped")
    details = {"operations": applied.kinds(), "apply_seconds": round(applied.seconds, 3),
               "move_calls": n, "arrival_span_seconds": round(actual, 3),
               "ideal_span_seconds": round(ideal, 3), "rate_limited": limited,
               "failed_or_skipped": failed}
    share = ideal / actual if actual else None
    figures = [
        Figure(NAME, f"move {n} users: share of the 1 QPS limit", share, "", 0.95, ">=",
               f"arrivals over {actual:.1f} s, fastest legal {ideal:.1f} s"),
        Figure(NAME, "move users: 429s provoked", float(limited), "", 0, "=="),
    ]
    return figures, details


def run(sizes: Sizes, ctx: Context) -> BenchResult:
    """Creates, the SDK baseline, then moves."""
    result = BenchResult(NAME)
    org = unlinked_org(seed=21, employees=sizes.create_users,
                       departments=sizes.create_departments)
    figures, details = measure_creates(sizes, ctx, org)
    result.figures += figures
    result.details["create"] = details
    sdk_figures, sdk_details = measure_sdk(sizes, ctx, org)
    result.figures += sdk_figures
    result.details["sdk"] = sdk_details
    ours = details["create_calls"] / details["apply_seconds"]
    theirs = sdk_details["sdk_creates"] / sdk_details["sdk_seconds"]
    result.figures.append(Figure(NAME, "create users: orgsync ÷ SDK loop", ours / theirs, "×"))
    figures, details = measure_moves(sizes, ctx, org)
    result.figures += figures
    result.details["move"] = details
    result.details["latency_ms"] = sizes.latency_ms
    return result
