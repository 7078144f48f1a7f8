"""How big each benchmark is in quick (smoke) and full (the issue's figures) mode."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sizes:
    """Every size knob of the suite; ``full`` matches the targets of issues 7 and 20."""

    mode: str
    # plan at scale
    plan_employees: int
    plan_departments: int
    plan_levels: int
    plan_multi_share: float
    plan_change_share: float
    plan_repeats: int
    # plan growth: initial and incremental plans at each of these sizes
    growth_employees: tuple[int, ...]
    # apply at the ceiling
    latency_ms: float
    create_users: int
    create_departments: int
    move_users: int
    sdk_creates: int
    # initial apply: everyone created, sandbox and client at rate_scale 10
    initial_users: int
    # initial apply's memory: everyone created by `orgsync apply`, at rate_scale 100
    memory_users: int
    # full-resync read
    read_users: int
    read_departments: int
    # headroom
    headroom_ops: int
    daemon_idle_seconds: float
    # an xlsx source against the same CSV
    xlsx_rows: int

    def scaled(self, factor: float) -> Sizes:
        """These sizes with every count multiplied by ``factor`` (at least 1; for smoke tests)."""
        counts = ("plan_employees", "plan_departments", "create_users", "create_departments",
                  "move_users", "sdk_creates", "initial_users", "memory_users", "read_users",
                  "read_departments", "headroom_ops", "xlsx_rows")
        changes = {name: max(2, round(getattr(self, name) * factor)) for name in counts}
        growth = tuple(sorted({max(2, round(n * factor)) for n in self.growth_employees}))
        return dataclasses.replace(self, growth_employees=growth, **changes)


QUICK = Sizes(
    mode="quick",
    plan_employees=5_000, plan_departments=250, plan_levels=6, plan_multi_share=0.03,
    plan_change_share=0.01, plan_repeats=1, growth_employees=(1_000, 5_000),
    latency_ms=100.0, create_users=120, create_departments=10, move_users=4, sdk_creates=20,
    initial_users=400, memory_users=1_000,
    read_users=600, read_departments=40,
    headroom_ops=600, daemon_idle_seconds=2.0, xlsx_rows=5_000,
)

FULL = Sizes(
    mode="full",
    plan_employees=100_000, plan_departments=5_000, plan_levels=6, plan_multi_share=0.03,
    plan_change_share=0.01, plan_repeats=5, growth_employees=(10_000, 30_000, 100_000, 300_000),
    latency_ms=100.0, create_users=2_000, create_departments=100, move_users=200,
    sdk_creates=100, initial_users=10_000, memory_users=100_000,
    read_users=100_000, read_departments=5_000,
    headroom_ops=2_000, daemon_idle_seconds=5.0, xlsx_rows=100_000,
)
