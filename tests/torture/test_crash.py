"""Crash anywhere: SIGKILL the applying process at points spread over a large plan, then resume.

Default run: 5 trials. ``TORTURE=full`` (or ``-m torture``): 30 trials on a larger org.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.sandbox_run import read_back
from tests.sandbox_run import run as apply
from tests.torture.harness import (
    SCALE,
    Size,
    assert_matches,
    config_dict,
    count_duplicates,
    dump,
    make_config,
    report,
    unexplained,
    writes,
)

ROOT = Path(__file__).resolve().parents[2]


def _trial(sb: SandboxServer, tmp: Path, size: Size, fraction: float,
           total: int, rng: random.Random) -> dict[str, int]:
    """Kill one apply after ``fraction`` of its ``total`` writes, resume it, check everything."""
    sb.reset()
    sb.configure(rate_scale=SCALE, latency_ms=rng.choice((5, 15, 30)))
    org = generate_org(**size)
    write_csv(org, tmp / "src")
    ledger_path = tmp / "l.db"
    conf = tmp / "orgsync.yaml"
    doc = config_dict(sb, tmp / "src", ledger_path)
    doc["feishu"]["app_secret"] = "${TORTURE_SECRET}"
    conf.write_text(json.dumps(doc), encoding="utf-8")
    env = {**os.environ, "TORTURE_SECRET": sb.config.app_secret}
    target = max(1, int(total * fraction))
    proc = subprocess.Popen([sys.executable, "-m", "orgsync.cli", "apply", "--yes", "-c",
                             str(conf)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(writes(sb)) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(writes(sb))
    time.sleep(0.1)  # let requests still in flight land in the sandbox (applied, never heard)
    sb.configure(latency_ms=0)
    cfg = make_config(sb, tmp / "src", ledger_path)
    ledger = Ledger(cfg.ledger.url)
    try:
        out = apply(cfg, ledger)
        assert out.exit_code == 0, [(r.op.op_id, r.code, r.message)
                                    for r in (out.result.failed if out.result else [])]
        assert_matches(read_back(cfg), org)
        state = dump(sb)
        dups = count_duplicates(state)
        assert dups.total == 0, dups
        assert unexplained(ledger, state) == []
        statuses = {r.status for r in ledger.journal()}
        assert statuses <= {"done", "interrupted"}, statuses
        assert apply(cfg, ledger).plan.empty
        interrupted = sum(1 for r in ledger.journal() if r.status == "interrupted")
        return {"killed_at": killed_at, "interrupted": interrupted,
                "duplicates": dups.total, "lost": 0}
    finally:
        ledger.close()


def _crash_run(sb: SandboxServer, tmp_path: Path, trials: int, size: Size) -> None:
    rng = random.Random(20261124)
    # One uninterrupted apply first, to learn how many writes the plan makes.
    write_csv(generate_org(**size), tmp_path / "probe" / "src")
    sb.reset()
    sb.configure(rate_scale=SCALE)
    cfg = make_config(sb, tmp_path / "probe" / "src", tmp_path / "probe" / "l.db")
    probe = Ledger(cfg.ledger.url)
    assert apply(cfg, probe).exit_code == 0
    probe.close()
    total = len(writes(sb))
    outcomes = []
    for i in range(trials):
        fraction = (i + rng.random()) / trials  # one kill point per slice of the plan
        outcomes.append(_trial(sb, tmp_path / f"t{i}", size, fraction, total, rng))
    report("crash", trials=trials, plan_writes=total,
           kill_points=[o["killed_at"] for o in outcomes],
           interrupted_ops=sum(o["interrupted"] for o in outcomes),
           duplicates=sum(o["duplicates"] for o in outcomes), lost=0)
    assert len({o["killed_at"] for o in outcomes}) >= trials // 2  # really spread out


SMALL: Size = {"employees": 40, "departments": 8, "levels": 3}
LARGE: Size = {"employees": 200, "departments": 30, "levels": 5}


@pytest.mark.timeout(120)
def test_sigkill_anywhere_resumes_to_the_source_without_duplicates(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    """5 SIGKILLs spread over the plan: each resume equals the source, no duplicate, journal explains all."""
    _crash_run(sandbox, tmp_path, 5, SMALL)


@pytest.mark.torture
@pytest.mark.timeout(1200)
def test_sigkill_thirty_times_over_a_large_plan(sandbox: SandboxServer, tmp_path: Path) -> None:
    """≥ 30 SIGKILLs spread over a large plan: every resume converges with zero duplicates."""
    _crash_run(sandbox, tmp_path, 30, LARGE)
