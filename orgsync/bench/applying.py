"""Plan and apply one staged measurement in this process, timing the apply alone."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from orgsync.bench.seed import Stage
from orgsync.config import load_config
from orgsync.executor import ApplyResult
from orgsync.ledger import Ledger
from orgsync.plan import Plan
from orgsync.runner import run_once


@dataclass(frozen=True, slots=True)
class Applied:
    """A finished apply: the plan, its result and the apply's wall seconds."""

    plan: Plan
    result: ApplyResult
    seconds: float

    def kinds(self) -> dict[str, int]:
        """Operations of the plan by kind."""
        return dict(Counter(op.kind.value for op in self.plan.operations))


def plan_and_apply(staged: Stage) -> Applied:
    """One ``orgsync apply --yes`` run in this process; the apply is timed from the go-ahead.

    The clock starts when the run asks for confirmation (the plan is made and
    passed the safety checks) and stops when the run returns.
    """
    config = load_config(staged.config)
    ledger = Ledger(config.ledger.url)
    started: list[float] = []

    def go_ahead(_plan: Plan) -> bool:
        started.append(time.perf_counter())
        return True

    try:
        outcome = asyncio.run(run_once(config, ledger, apply=True, confirm=go_ahead))
    finally:
        ledger.close()
    seconds = time.perf_counter() - started[0] if started else 0.0
    return Applied(outcome.plan, outcome.result or ApplyResult(), seconds)
