"""Safety checks that run on the whole plan before any write — in dry-run too.

* :func:`check_source` refuses a source that shrank implausibly against the
  last good read (a broken filter or a half export must never look like
  "everyone left");
* :func:`plan_violations` lists the thresholds a plan exceeds: user removals
  (deletes and freezes of active users) and department deletes, each as a count
  and as a fraction of what orgsync manages. A plan with violations is held
  until ``orgsync approve PLAN_ID`` releases exactly that plan.

Deletes of users frozen earlier (their grace period is over) are not counted:
their removal was approved when they were frozen.
"""

from __future__ import annotations

from orgsync.config import SafetyConfig
from orgsync.errors import SourceError
from orgsync.plan import OpKind, Plan
from orgsync.state import DirectoryState, Lifecycle


def check_source(active: int, last_good: int | None, cfg: SafetyConfig) -> None:
    """Raise :class:`SourceError` when ``active`` shrank beyond ``max_source_shrink``."""
    if not last_good:
        return
    floor = last_good * (1.0 - cfg.max_source_shrink)
    if active < floor:
        drop = 1.0 - active / last_good
        raise SourceError(
            f"the source has {active} active employees, {drop:.0%} fewer than the last good "
            f"read ({last_good}); more than safety.max_source_shrink={cfg.max_source_shrink:.0%}. "
            "Nothing was planned. If the drop is real, run again with --accept-shrink.")


def plan_violations(plan: Plan, current: DirectoryState, cfg: SafetyConfig) -> list[str]:
    """Human-readable reasons ``plan`` must be held (empty when it is within limits)."""
    removals = 0
    for op in plan.operations:
        if op.kind is OpKind.USER_FREEZE:
            removals += 1
        elif op.kind is OpKind.USER_DELETE:
            cur = current.users.get(op.key)
            if cur is None or cur.lifecycle is not Lifecycle.FROZEN:
                removals += 1
    dept_deletes = sum(1 for op in plan.operations if op.kind is OpKind.DEPT_DELETE)
    reasons: list[str] = []
    _check(reasons, "user removals (deletes + freezes)", removals,
           current.live_count(), cfg.max_user_removals, cfg.max_user_removal_fraction,
           "max_user_removals", "max_user_removal_fraction", cfg.min_managed)
    _check(reasons, "department deletes", dept_deletes, len(current.departments),
           cfg.max_department_deletes, cfg.max_department_delete_fraction,
           "max_department_deletes", "max_department_delete_fraction", cfg.min_managed)
    return reasons


def _check(reasons: list[str], what: str, count: int, managed: int, max_count: int,
           max_fraction: float, count_key: str, fraction_key: str, min_managed: int) -> None:
    if count > max_count:
        reasons.append(f"{count} {what} exceed safety.{count_key}={max_count}")
    if managed >= max(1, min_managed) and count / managed > max_fraction:
        reasons.append(f"{count} {what} are {count / managed:.0%} of the {managed} managed, "
                       f"over safety.{fraction_key}={max_fraction:.0%}")
