"""Faults: 5xx, timeouts, dropped connections, 429 storms and a revoked token during the apply.

The run must converge (within five runs), lose no write, apply none twice, and report
every failure left with its Feishu code. Default: a short run on a small org;
``TORTURE=full``: a larger org and a second seed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from orgsync.errors import FeishuRetryable
from orgsync.ledger import Ledger
from orgsync.runner import RunOutcome
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.sandbox_run import read_back
from tests.sandbox_run import run as apply
from tests.torture.harness import (
    SCALE,
    Size,
    assert_matches,
    count_duplicates,
    dump,
    make_config,
    report,
    unexplained,
    writes,
)


def _storm(sb: SandboxServer, stop: threading.Event, seen: Counter[str]) -> None:
    """Mid-run: a 429 storm, then every tenant token revoked, then another storm."""
    admin = {"Authorization": f"Bearer {sb.config.effective_admin_token()}"}
    steps = [(15, "burst"), (40, "revoke"), (70, "burst"), (100, "revoke")]
    for at, what in steps:
        while len(writes(sb)) < at and not stop.is_set():
            time.sleep(0.005)
        if stop.is_set():
            return
        if what == "burst":
            httpx.post(f"{sb.base_url}/_sandbox/ratelimit_burst", json={"count": 25},
                       headers=admin).raise_for_status()
            seen["429_burst_calls"] += 25
        else:
            httpx.post(f"{sb.base_url}/_sandbox/revoke_tokens", headers=admin).raise_for_status()
            seen["token_revocations"] += 1


def _fault_run(sb: SandboxServer, tmp_path: Path, size: Size, seed: int) -> None:
    sb.reset()
    sb.configure(rate_scale=SCALE, seed=seed, fault_5xx=0.10, fault_timeout=0.05,
                 fault_drop=0.03, fault_after_apply=0.5, hang_seconds=0.6)
    org = generate_org(**size)
    write_csv(org, tmp_path / "src")
    # The client gives up on a hanging call before the sandbox answers its 504.
    cfg = make_config(sb, tmp_path / "src", tmp_path / "l.db", timeout=0.3, max_retries=4)
    ledger = Ledger(cfg.ledger.url)
    seen: Counter[str] = Counter()
    stop = threading.Event()
    storm = threading.Thread(target=_storm, args=(sb, stop, seen), daemon=True)
    storm.start()
    outcomes: list[RunOutcome] = []
    try:
        # A 429 burst spoils the runs its 25 calls land in: two, when it straddles the end
        # of one (a run that failed early leaves the storm's later steps to the next runs).
        # Two bursts, then a clean run: five runs at most, and more when a plan's read
        # spends its retries.
        for _ in range(8):
            written = len(writes(sb))
            try:
                out = apply(cfg, ledger)
            except FeishuRetryable:
                out = None
            if out is None:
                # A read of the plan (the takeover's department walk, when a failed run
                # left departments uncreated) that spent its retries on the injected
                # faults or a burst: the run stops before any write, and the next run
                # reads again. A partial read never decides what to create.
                assert len(writes(sb)) == written
                seen["plan_read_failed"] += 1
                continue
            outcomes.append(out)
            if out.result is not None:
                for r in out.result.failed:  # every failure names its Feishu code
                    assert isinstance(r.code, int), (r.op.op_id, r.code, r.message)
                    assert r.message, r.op.op_id
            # Converged: nothing failed and nothing held back (a 429 on the account lookup
            # holds the joiners for the next run without failing this one).
            if out.exit_code == 0 and not any(i.severity == "error" for i in out.plan.issues):
                break
        stop.set()
        storm.join(timeout=5)
        faults = Counter(str(r["fault"]) for r in sb.requests() if r.get("fault"))
        applied_unheard = sum(1 for r in sb.requests() if r.get("applied"))
        rate_limited = sum(1 for r in sb.requests() if r.get("status") == 429)
        sb.configure(fault_5xx=0.0, fault_timeout=0.0, fault_drop=0.0)
        assert outcomes[-1].exit_code == 0, [
            (r.op.op_id, r.code, r.message) for o in outcomes if o.result
            for r in o.result.failed]
        assert_matches(read_back(cfg), org)  # nothing lost
        state = dump(sb)
        dups = count_duplicates(state)
        assert dups.total == 0, dups  # nothing applied twice
        assert unexplained(ledger, state) == []
        assert apply(cfg, ledger).plan.empty
        assert all(faults[kind] > 0 for kind in ("5xx", "timeout", "drop")), faults
        assert seen["token_revocations"] >= 1
        report("faults", seed=seed, runs=len(outcomes), faults=dict(faults),
               applied_but_unheard=applied_unheard, http_429=rate_limited, **seen,
               failed_first_run=(outcomes[0].result.count("failed")
                                 if outcomes[0].result else 0),
               lost=0, duplicates=dups.total)
    finally:
        stop.set()
        ledger.close()


@pytest.mark.timeout(120)
def test_faulty_feishu_converges_without_loss_or_duplicates(sandbox: SandboxServer,
                                                           tmp_path: Path) -> None:
    """10 % 5xx, 5 % timeouts, drops, 429 storms, revoked tokens: converges, nothing lost or doubled."""
    _fault_run(sandbox, tmp_path, {"employees": 40, "departments": 8, "levels": 3}, seed=1)


@pytest.mark.torture
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_faulty_feishu_long(sandbox: SandboxServer, tmp_path: Path, seed: int) -> None:
    """Long version: a 200-person org under the same faults, three seeds."""
    _fault_run(sandbox, tmp_path, {"employees": 200, "departments": 30, "levels": 5}, seed=seed)
