"""Leave-sync benchmark: ``python -m orgsync.bench.leave [--leaves 10000] [--scale 1]``.

A synthetic org (mirrored directly, seeded into a sandbox process) with ``--leaves`` future
all-day leave records, five per person a week apart. The first ``leave apply`` creates every
mark; the figure is the share of the documented rate it reached (1000/min and 50/s, both
times ``--scale`` on client and sandbox alike): the fastest legal schedule's span of those
creates (:func:`orgsync.bench.rates.ideal_span`) over the measured span, from the sandbox's
request log. A second run with nothing changed must make no call.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orgsync.bench.mirror import fill_mirror
from orgsync.bench.rates import STANDARD, calls, ideal_span, rate_limited, span
from orgsync.bench.sandbox_host import ADMIN_SECRET, SandboxProcess
from orgsync.bench.seed import sandbox_state
from orgsync.config import config_from_dict
from orgsync.feishu import FeishuClient
from orgsync.identity import feishu_user_id
from orgsync.leave_sync import LeaveOutcome, run_leave
from orgsync.ledger import Ledger
from orgsync.synth import generate_org

PATH = "/open-apis/calendar/v4/timeoff_events"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m orgsync.bench.leave")
    parser.add_argument("--leaves", type=int, default=10_000)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply Feishu's documented limits (sandbox and client)")
    args = parser.parse_args(argv)
    from orgsync import logs

    logs.configure(level="warning", stream=sys.stderr)
    people = max(1, args.leaves // 5)
    org = generate_org(employees=people + people // 20, departments=40)
    active = sorted(org.active_employees())[:people]
    today = datetime.now(UTC).date()
    rows = [f"L{n:06d},{key},{day},{day},年假,approved"
            for n, (key, day) in enumerate(
                (key, today + timedelta(days=2 + 7 * week)) for week in range(5)
                for key in active)][:args.leaves]
    with tempfile.TemporaryDirectory(prefix="orgsync-leave-bench-") as tmp, \
            SandboxProcess() as sandbox:
        work = Path(tmp)
        (work / "leaves.csv").write_text("leave_id,employee_id,start,end,kind,status\n"
                                         + "\n".join(rows) + "\n", encoding="utf-8")
        sandbox.configure(rate_scale=args.scale)
        sandbox.seed(sandbox_state(org))
        cfg = config_from_dict({
            "version": 1,
            "feishu": {"base_url": sandbox.base_url, "app_id": "cli_bench",
                       "app_secret": ADMIN_SECRET, "rate_scale": args.scale},
            "source": {"type": "csv", "departments": "d.csv", "employees": "e.csv"},
            "ledger": {"url": f"sqlite:///{work / 'l.db'}"},
            "leave": {"source": {"type": "csv", "file": str(work / "leaves.csv")}},
        }, file="<bench>", base_dir=work)
        ledger = Ledger(cfg.ledger.url)
        fill_mirror(ledger, org)
        assert all(feishu_user_id(k) for k in active)
        sandbox.clear_requests()

        def once() -> tuple[LeaveOutcome, float]:
            async def go() -> LeaveOutcome:
                async with FeishuClient(cfg.feishu) as client:
                    return await run_leave(cfg, ledger, client, apply=True)
            mark = time.perf_counter()
            return asyncio.run(go()), time.perf_counter() - mark

        first, seconds = once()
        log = sandbox.requests()
        creates = calls(log, "POST", PATH)
        windows = tuple((max(1, round(n * args.scale)), s) for n, s in STANDARD)
        share = ideal_span(len(creates), windows) / span(creates) if len(creates) > 1 else 1.0
        sandbox.clear_requests()
        second, _ = once()
        again = len(calls(sandbox.requests(), "POST", PATH)) + \
            len(calls(sandbox.requests(), "DELETE", PATH))
        ledger.close()
    print(f"leave records: {len(rows)}; created: {first.done.get('leave.create', 0)}, "
          f"failed: {len(first.failed)}; wall {seconds:.1f} s")
    print(f"creates at {share:.3f} of the documented rate (x{args.scale:g}: "
          f"{windows[0][0]}/min, {windows[1][0]}/s); 429s: {rate_limited(log)}")
    print(f"second run: {len(second.plan.operations)} operations, {again} calls")
    return 0 if share >= 0.95 and again == 0 and not first.failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
