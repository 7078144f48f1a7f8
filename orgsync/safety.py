"""Safety checks that run on the whole plan before any write — in dry-run too.

* :func:`check_source` refuses a source that shrank implausibly against the
  source of the last completed apply (a broken filter or a half export must
  never look like "everyone left");
* :func:`plan_violations` lists the guards a plan trips. A plan with
  violations is held until ``orgsync approve PLAN_ID`` releases exactly that
  plan. The guards:

  - user removals (every delete and freeze of a user) and department
    deletes, each as a count and as a fraction of what orgsync manages. A
    delete at the end of a grace period counts like any other: a clock jump
    that makes many fall due at once is held, not waved through;
  - churn: :func:`leavers` (freezes and deletes of active users) above
    :func:`churn_limit` of the leaver counts recent applied runs recorded —
    a cut-off export under the fixed thresholds still stands out against a
    quiet history;
  - identity changes: :func:`identity_changes` (managed users whose name,
    email or mobile changes) as a fraction of the managed — a mis-decoded
    export renames everyone at once.

The baselines these guards read (the last good source size, the leaver
history) are moved only by applied runs, never by a plan or a held run.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

from orgsync.config import SafetyConfig
from orgsync.errors import SourceRefused
from orgsync.operations import SPECS, Departure
from orgsync.plan import Plan
from orgsync.state import DirectoryState, Lifecycle

#: The fields that say who a person is: a change to any of them is an identity change.
IDENTITY_FIELDS = frozenset({"name", "email", "mobile"})


def check_source(active: int, last_good: int | None, cfg: SafetyConfig) -> None:
    """Raise :class:`SourceRefused` when ``active`` shrank beyond ``max_source_shrink``."""
    if not last_good:
        return
    floor = last_good * (1.0 - cfg.max_source_shrink)
    if active < floor:
        drop = 1.0 - active / last_good
        raise SourceRefused(
            f"the source has {active} active employees, {drop:.0%} fewer than the last good "
            f"read ({last_good}); more than safety.max_source_shrink={cfg.max_source_shrink:.0%}. "
            "Nothing was planned. If the drop is real, run again with --accept-shrink.")


def leavers(plan: Plan, current: DirectoryState) -> int:
    """People ``plan`` takes out: freezes, and deletes of users not frozen before.

    Deletes at the end of a grace period are not leavers again (they left when
    they were frozen); they count against the removal thresholds instead.
    """
    count = 0
    for op in plan.operations:
        departure = SPECS[op.kind].departure
        if departure is Departure.FREEZE:
            count += 1
        elif departure is Departure.DELETE:
            cur = current.users.get(op.key)
            if cur is None or cur.lifecycle is not Lifecycle.FROZEN:
                count += 1
    return count


def identity_changes(plan: Plan) -> int:
    """Managed users whose name, email or mobile ``plan`` changes (each counted once)."""
    return len({op.key for op in plan.operations
                if SPECS[op.kind].identity
                and any(c.field in IDENTITY_FIELDS for c in op.changes)})


def churn_limit(history: Sequence[int], cfg: SafetyConfig) -> float:
    """``max(churn_factor × median(history), churn_floor)``; the floor alone without history.

    ``history``: leaver counts of recent applied runs. The median, not the mean:
    one large approved run does not raise the limit for the runs after it.
    """
    if not history:
        return float(cfg.churn_floor)
    return max(cfg.churn_factor * median(history), float(cfg.churn_floor))


def plan_violations(plan: Plan, current: DirectoryState, cfg: SafetyConfig,
                    history: Sequence[int] = ()) -> list[str]:
    """Human-readable reasons ``plan`` must be held (empty when it is within limits).

    ``history``: the leaver counts of the last ``churn_window`` applied runs
    (:meth:`orgsync.ledger.Ledger.leaver_history`).
    """
    destructive = [op.entity for op in plan.operations if SPECS[op.kind].destructive]
    removals = destructive.count("user")
    dept_deletes = destructive.count("department")
    managed = current.live_count()
    reasons: list[str] = []
    _check(reasons, cfg, "user removals (deletes + freezes)", removals, managed,
           "max_user_removals", "max_user_removal_fraction")
    _check(reasons, cfg, "department deletes", dept_deletes, len(current.departments),
           "max_department_deletes", "max_department_delete_fraction")
    left = leavers(plan, current)
    limit = churn_limit(history, cfg)
    if left > limit:
        base = (f"safety.churn_factor={cfg.churn_factor:g} × median {median(history):g} of "
                f"the last {len(history)} applied runs' leavers, " if history else
                "no applied runs' leavers recorded yet, ")
        reasons.append(f"{left} leavers (freezes + deletes of active users) exceed the churn "
                       f"limit {limit:g} ({base}safety.churn_floor={cfg.churn_floor})")
    _check(reasons, cfg, "managed users changing name, email or mobile",
           identity_changes(plan), managed, None, "max_identity_change_fraction")
    return reasons


def _check(reasons: list[str], cfg: SafetyConfig, what: str, count: int, managed: int,
           count_key: str | None, fraction_key: str) -> None:
    """Append why ``count`` is over ``safety.<count_key>`` or ``safety.<fraction_key>``.

    Fractions apply once ``managed`` reaches ``safety.min_managed``.
    """
    if count_key is not None and count > (max_count := getattr(cfg, count_key)):
        reasons.append(f"{count} {what} exceed safety.{count_key}={max_count}")
    max_fraction = getattr(cfg, fraction_key)
    if managed >= max(1, cfg.min_managed) and count / managed > max_fraction:
        reasons.append(f"{count} {what} are {count / managed:.0%} of the {managed} managed, "
                       f"over safety.{fraction_key}={max_fraction:.0%}")
