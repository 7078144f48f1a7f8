"""Benchmark 4, headroom: the executor with limits and latency off, and an idle daemon's memory.

With the sandbox's limits and latency off and the client's limiter disabled, the
apply of a create-only plan shows how many operations per second the executor
(journal, ledger, client, HTTP) can drive; the sandbox's own CPU time over the
same interval tells whether the sandbox rather than orgsync was the limit. The
same plan through an in-memory Feishu isolates the executor and the ledger.
Then ``orgsync daemon`` runs on the same config (its first run finds nothing to
do), is left idle, and its RSS is read from /proc.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from orgsync.bench.apply_ceiling import unlinked_org
from orgsync.bench.applying import plan_and_apply
from orgsync.bench.common import Context, child_env, orgsync_command
from orgsync.bench.mirror import fill_mirror
from orgsync.bench.report import BenchResult, Figure
from orgsync.bench.seed import stage
from orgsync.bench.sizes import Sizes
from orgsync.executor import Executor
from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.plan import Plan

NAME = "headroom"


class InstantFeishu:
    """A Feishu that answers every write at once (no HTTP): the executor's own ceiling."""

    async def create_department(self, body: Mapping[str, Any], *,
                                client_token: str | None = None) -> dict[str, Any]:
        return {"open_department_id": "od-" + str(body.get("department_id"))}

    async def get_department(self, department_id: str) -> dict[str, Any]:
        return {"department_id": department_id}

    async def patch_department(self, department_id: str,
                               body: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    async def delete_department(self, department_id: str) -> None:
        return None

    async def create_user(self, body: Mapping[str, Any], *,
                          client_token: str | None = None) -> dict[str, Any]:
        return {"open_id": "ou_" + str(body.get("user_id"))}

    async def get_user(self, user_id: str) -> dict[str, Any]:
        return {"user_id": user_id}

    async def patch_user(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    async def delete_user(self, user_id: str, handover: Mapping[str, Any] | None = None) -> None:
        return None

    async def resurrect_user(self, user_id: str, departments: Any) -> None:
        return None

    async def update_user_id(self, user_id: str, new_user_id: str) -> None:
        return None

    async def update_department_id(self, department_id: str, new_department_id: str) -> None:
        return None

    async def create_group(self, body: Mapping[str, Any]) -> str:
        return str(body.get("group_id") or "")

    async def get_group(self, group_id: str) -> dict[str, Any]:
        return {"group_id": group_id}

    async def patch_group(self, group_id: str, body: Mapping[str, Any]) -> None:
        return None

    async def delete_group(self, group_id: str) -> None:
        return None

    async def add_group_members(self, group_id: str, user_ids: Any) -> dict[str, int]:
        return {}

    async def remove_group_members(self, group_id: str, user_ids: Any) -> None:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def instant_apply(ledger_url: str, departments: Snapshot, plan: Plan) -> float:
    """Seconds to apply ``plan`` through :class:`InstantFeishu` on a fresh ledger."""
    ledger = Ledger(ledger_url)
    try:
        fill_mirror(ledger, departments)
        run_id = ledger.start_run("apply", plan_id=plan.plan_id)
        executor = Executor(InstantFeishu(), ledger, run_id=run_id)
        start = time.perf_counter()
        asyncio.run(executor.run(plan))
        seconds = time.perf_counter() - start
        ledger.finish_run(run_id, "ok", plan_id=plan.plan_id)
    finally:
        ledger.close()
    return seconds


def idle_rss(config: Path, seconds: float) -> tuple[float | None, str]:
    """RSS in MB of ``orgsync daemon -c config`` after ``seconds`` (None if it did not stay up)."""
    cmd = [*orgsync_command(), "daemon", "-c", str(config)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,  # noqa: S603 - our own command
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env())
    try:
        time.sleep(seconds)
        if proc.poll() is not None:
            why = (proc.stderr.read().decode("utf-8", "replace") if proc.stderr else "")[-300:]
            return None, f"orgsync daemon exited with {proc.returncode}: {why.strip()}"
        return rss_mb(proc.pid), "orgsync daemon, after its first (no-change) run"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def daemon_config(source: Path, target: Path) -> Path:
    """``source`` with the daemon's admin endpoint on a free port (benchmarks run beside tests)."""
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["admin"] = {"bind": "127.0.0.1", "port": 0}
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def run(sizes: Sizes, ctx: Context) -> BenchResult:
    """Executor throughput without limits, then idle memory."""
    result = BenchResult(NAME)
    sb = ctx.sandbox
    app_id = "cli_bench_headroom"
    sb.configure(app_id=app_id, rate_limits=False, latency_ms=0.0)
    org = unlinked_org(seed=41, employees=sizes.headroom_ops, departments=50)
    departments = Snapshot(org.departments, {})
    staged = stage(ctx, NAME, departments, org, app_id=app_id, rate_limits=False)
    sandbox_cpu = cpu_seconds(sb.pid)
    own_cpu = time.process_time()
    applied = plan_and_apply(staged)
    sandbox_cpu = cpu_seconds(sb.pid) - sandbox_cpu
    own_cpu = time.process_time() - own_cpu
    n = len(applied.plan.operations)
    failed = applied.result.count("failed") + applied.result.count("skipped")
    instant = instant_apply(f"sqlite:///{ctx.workdir / NAME / 'instant.db'}", departments,
                            applied.plan)
    rss, what = idle_rss(daemon_config(staged.config, staged.config.with_name("daemon.yaml")),
                         sizes.daemon_idle_seconds)
    result.details = {
        "operations": applied.kinds(), "apply_seconds": round(applied.seconds, 3),
        "failed_or_skipped": failed,
        "sandbox_cpu_seconds": round(sandbox_cpu, 3),
        "orgsync_cpu_seconds_incl_plan": round(own_cpu, 3),
        "instant_apply_seconds": round(instant, 3),
        "idle_rss_mb": None if rss is None else round(rss, 1), "idle_process": what,
    }
    result.figures = [
        Figure(NAME, "executor against the sandbox, limits and latency off", n / applied.seconds,
               "ops/s", 500, ">=",
               f"{n} creates in {applied.seconds:.2f} s; sandbox CPU "
               f"{sandbox_cpu / applied.seconds:.0%} of that"),
        Figure(NAME, "executor with an in-memory Feishu (journal + ledger only)", n / instant,
               "ops/s"),
        Figure(NAME, "idle daemon RSS", rss, "MB", 150, "<=", what),
    ]
    return result
