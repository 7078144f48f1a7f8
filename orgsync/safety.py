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
from dataclasses import dataclass
from statistics import median

from orgsync.config import SafetyConfig
from orgsync.errors import SourceError
from orgsync.operations import SPECS, Departure
from orgsync.plan import Plan
from orgsync.state import DirectoryState, Lifecycle

#: The fields that say who a person is: a change to any of them is an identity change.
IDENTITY_FIELDS = frozenset({"name", "email", "mobile"})


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


@dataclass(frozen=True, slots=True)
class Gauge:
    """One guard measured on a plan: ``count`` against the most it allows, ``limit``.

    ``setting`` names the config key and its value (``safety.max_user_removals=500``);
    ``managed`` is set for a fraction guard (the count it is a fraction of). A plan
    ``over`` any gauge is held; :meth:`violation` says why.
    """

    what: str
    count: int
    limit: float
    setting: str
    managed: int | None = None
    fraction: float | None = None  # a fraction guard's setting (``limit`` is it × managed)
    because: str = ""  # the violation's whole text, when it is not the usual one

    @property
    def over(self) -> bool:
        """The plan is over this guard's limit (it is held)."""
        if self.fraction is not None and self.managed:
            return self.count / self.managed > self.fraction
        return self.count > self.limit

    def violation(self) -> str:
        """Why the plan is held by this guard."""
        if self.because:
            return self.because
        if self.managed is None:
            return f"{self.count} {self.what} exceed {self.setting}"
        return (f"{self.count} {self.what} are {self.count / self.managed:.0%} of the "
                f"{self.managed} managed, over {self.setting}")

    def reading(self) -> str:
        """How close the plan is: ``user removals (deletes + freezes): 3 of at most 500
        (safety.max_user_removals=500)``."""
        of = f" ({self.fraction:.0%} of {self.managed} managed)" \
            if self.fraction is not None else ""
        return f"{self.what}: {self.count} of at most {int(self.limit)}{of} — {self.setting}"


def gauges(plan: Plan, current: DirectoryState, cfg: SafetyConfig,
           history: Sequence[int] = ()) -> list[Gauge]:
    """Every guard measured on ``plan`` (a fraction guard only once orgsync manages
    ``safety.min_managed``).

    ``history``: the leaver counts of the last ``churn_window`` applied runs
    (:meth:`orgsync.ledger.Ledger.leaver_history`).
    """
    destructive = [op.entity for op in plan.operations if SPECS[op.kind].destructive]
    removals = destructive.count("user")
    dept_deletes = destructive.count("department")
    managed = current.live_count()
    found: list[Gauge] = []
    _measure(found, cfg, "user removals (deletes + freezes)", removals, managed,
             "max_user_removals", "max_user_removal_fraction")
    _measure(found, cfg, "department deletes", dept_deletes, len(current.departments),
             "max_department_deletes", "max_department_delete_fraction")
    left = leavers(plan, current)
    limit = churn_limit(history, cfg)
    base = (f"safety.churn_factor={cfg.churn_factor:g} × median {median(history):g} of "
            f"the last {len(history)} applied runs' leavers, " if history else
            "no applied runs' leavers recorded yet, ")
    setting = f"{base}safety.churn_floor={cfg.churn_floor}"
    found.append(Gauge("leavers (freezes + deletes of active users)", left, limit, setting,
                       because=f"{left} leavers (freezes + deletes of active users) exceed the "
                               f"churn limit {limit:g} ({setting})"))
    _measure(found, cfg, "managed users changing name, email or mobile",
             identity_changes(plan), managed, None, "max_identity_change_fraction")
    return found


def plan_violations(plan: Plan, current: DirectoryState, cfg: SafetyConfig,
                    history: Sequence[int] = ()) -> list[str]:
    """Human-readable reasons ``plan`` must be held (empty when it is within limits)."""
    return violations(gauges(plan, current, cfg, history))


def violations(measured: Sequence[Gauge]) -> list[str]:
    """Why the plan ``measured`` describes must be held (empty when it is within limits)."""
    return [g.violation() for g in measured if g.over]


def _measure(found: list[Gauge], cfg: SafetyConfig, what: str, count: int, managed: int,
             count_key: str | None, fraction_key: str) -> None:
    """Append the gauges of ``safety.<count_key>`` and ``safety.<fraction_key>``.

    Fractions apply once ``managed`` reaches ``safety.min_managed``.
    """
    if count_key is not None:
        max_count = getattr(cfg, count_key)
        found.append(Gauge(what, count, max_count, f"safety.{count_key}={max_count}"))
    max_fraction = getattr(cfg, fraction_key)
    if managed >= max(1, cfg.min_managed):
        found.append(Gauge(what, count, max_fraction * managed,
                           f"safety.{fraction_key}={max_fraction:.0%}", managed, max_fraction))
