"""The takeover figures: a hand-made tenant of a synthetic org, taken over (issue 17).

``python -m orgsync.bench.takeover [--employees 2000] [--rate-scale 10]`` seeds a
sandbox (its own process, documented limits on, ``rate_scale`` faster when asked)
with :func:`orgsync.synth_tenant.existing_tenant` of :func:`orgsync.synth.generate_org`,
takes it over from the org's CSV export (plan held, approved, applied), runs again,
and prints: matched by each rule, to create, ambiguous, Feishu-only, the writes made
(by endpoint), failures, the second run's writes, and the wall time — measured, and
projected to the documented limits (× ``rate_scale``: every limit is scaled alike).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from orgsync import logs
from orgsync.bench.sandbox_host import SandboxProcess
from orgsync.config import config_from_dict
from orgsync.errors import PlanHeld
from orgsync.ledger import Ledger
from orgsync.runner import run_once
from orgsync.synth import generate_org, write_csv
from orgsync.synth_tenant import existing_tenant


def _writes(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in log if r["method"] != "GET" and r["path"].startswith("/open-apis/contact")
            and not r["path"].endswith("batch_get_id")]


def measure(employees: int, departments: int, rate_scale: float, work: Path) -> dict[str, Any]:
    """One takeover and the run after it; the figures as a JSON-able dict."""
    org = generate_org(seed=17, employees=employees, departments=departments, levels=5)
    tenant = existing_tenant(org)
    write_csv(org, work / "src")
    with SandboxProcess(app_id="cli_bench_takeover") as sb:
        sb.configure(app_id="cli_bench_takeover", rate_limits=True, rate_scale=rate_scale)
        sb.reset()
        sb.seed(tenant.state)
        sb.clear_requests()
        cfg = config_from_dict({
            "version": 1,
            "feishu": {"base_url": sb.base_url, "app_id": "cli_bench_takeover",
                       "app_secret": sb.app_secret, "rate_scale": rate_scale},
            "source": {"type": "csv", "departments": str(work / "src" / "departments.csv"),
                       "employees": str(work / "src" / "employees.csv")},
            "ledger": {"url": f"sqlite:///{work / 'ledger.db'}"}}, file="<bench>",
            base_dir=work)
        ledger = Ledger(cfg.ledger.url)
        start = time.perf_counter()
        try:
            asyncio.run(run_once(cfg, ledger, apply=True))
            raise RuntimeError("the takeover was not held for approval")
        except PlanHeld as held:
            plan_id = held.plan_id
        planned = time.perf_counter() - start
        ledger.approve_plan(plan_id)
        mark = time.perf_counter()
        out = asyncio.run(run_once(cfg, ledger, apply=True))
        applied = time.perf_counter() - mark
        writes = _writes(sb.requests())
        sb.clear_requests()
        again = asyncio.run(run_once(cfg, ledger, apply=True))
        second = _writes(sb.requests())
    if out.result is None or out.plan.takeover is None:
        raise RuntimeError("the approved takeover applied nothing")
    endpoints = Counter(f"{r['method']} {r['path'].split('/')[4]}"
                        + ("/" + r["path"].rsplit("/", 1)[1] if r["path"].count("/") > 5 else "")
                        for r in writes)
    return {
        "employees": employees, "departments": departments, "rate_scale": rate_scale,
        "takeover": dict(out.plan.takeover), "operations": out.plan.summary(),
        "result": out.result.summary(), "writes": len(writes),
        "writes_by_endpoint": dict(sorted(endpoints.items())),
        "plan_seconds": round(planned, 2), "apply_seconds": round(applied, 2),
        "apply_seconds_at_scale_1": round(applied * rate_scale, 1),
        "second_run_operations": len(again.plan.operations), "second_run_writes": len(second),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m orgsync.bench.takeover")
    parser.add_argument("--employees", type=int, default=2000)
    parser.add_argument("--departments", type=int, default=120)
    parser.add_argument("--rate-scale", type=float, default=10.0)
    args = parser.parse_args(argv)
    logs.configure(level="warning", stream=sys.stderr)  # the figures alone on stdout
    with tempfile.TemporaryDirectory(prefix="orgsync-takeover-") as work:
        print(json.dumps(measure(args.employees, args.departments, args.rate_scale, Path(work)),
                         ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
