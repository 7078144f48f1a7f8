"""Benchmark 3, the full-resync read: the live directory read back from the sandbox.

The sandbox is seeded (no API calls) with a synthetic org and enforces the
documented limits with ``latency_ms`` added to every call;
:func:`orgsync.feishu.reader.read_directory` (the read of ``orgsync resync``) then reads
it all back. The share of the allowed read rate compares the arrival span of
every read call with the fastest legal schedule of the busiest read API
(``find_by_department``, 1000/min and 50/s); every page must be read once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from orgsync.bench import rates
from orgsync.bench.common import Context
from orgsync.bench.report import BenchResult, Figure
from orgsync.bench.seed import sandbox_state
from orgsync.bench.sizes import Sizes
from orgsync.feishu import FeishuClient, FeishuSettings
from orgsync.feishu.reader import read_directory
from orgsync.state import DirectoryState
from orgsync.synth import generate_org

NAME = "resync_read"
CHILDREN = "/open-apis/contact/v3/departments/"
MEMBERS = "/open-apis/contact/v3/users/find_by_department"


def run(sizes: Sizes, ctx: Context) -> BenchResult:
    """Seed, read back, compare with the limits."""
    result = BenchResult(NAME)
    sb = ctx.sandbox
    app_id = "cli_bench_read"
    sb.configure(app_id=app_id, rate_limits=True, rate_scale=1.0, latency_ms=sizes.latency_ms)
    org = generate_org(seed=31, employees=sizes.read_users, departments=sizes.read_departments,
                       levels=5)
    sb.reset()
    sb.seed(sandbox_state(org))
    sb.clear_requests()
    settings = FeishuSettings(app_id=app_id, app_secret=sb.app_secret, base_url=sb.base_url)

    async def read() -> tuple[DirectoryState, dict[str, Any]]:
        async with FeishuClient(settings) as client:
            state = await read_directory(client)
            return state, client.stats.as_dict()

    start = time.perf_counter()
    state, stats = asyncio.run(read())
    seconds = time.perf_counter() - start
    log = sb.requests()
    reads = [e for e in log if e["method"] == "GET" and e["path"].startswith("/open-apis/")]
    children = [e for e in reads if e["path"].startswith(CHILDREN)]
    members = [e for e in reads if e["path"] == MEMBERS]
    ideal = max(rates.ideal_span(len(children)), rates.ideal_span(len(members)))
    actual = rates.span(reads)
    repeated = rates.repeated_pages(reads)
    limited = rates.rate_limited(log)
    complete = (len(state.departments) == len(org.departments)
                and len(state.users) == len(org.active_employees()))
    result.details = {
        "read_seconds": round(seconds, 3), "children_pages": len(children),
        "member_pages": len(members), "arrival_span_seconds": round(actual, 3),
        "ideal_span_seconds": round(ideal, 3), "repeated_pages": repeated,
        "rate_limited": limited, "departments_read": len(state.departments),
        "users_read": len(state.users), "complete": complete, "client_stats": stats,
        "latency_ms": sizes.latency_ms,
    }
    share = ideal / actual if actual else None
    result.figures = [
        Figure(NAME, f"read {len(state.users):,} users in {len(state.departments):,} departments:"
               " share of the allowed read rate", share, "", 0.90, ">=",
               f"{len(reads)} pages over {actual:.1f} s, fastest legal {ideal:.1f} s"),
        Figure(NAME, "pages read twice", float(repeated), "", 0, "=="),
        Figure(NAME, "read: 429s provoked", float(limited), "", 0, "=="),
        Figure(NAME, "read: everything read back", 1.0 if complete else 0.0, "", 1, "=="),
        Figure(NAME, "read throughput", len(reads) / seconds, "pages/s",
               note=f"{seconds:.1f} s wall"),
    ]
    return result
