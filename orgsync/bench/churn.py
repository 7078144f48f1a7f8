"""A deterministic share of employees changed, as an HR export a day later would have it.

:func:`change_share` changes exactly ``round(share × employees)`` people (at least
four), in fixed proportions: 40 % field updates (job title or city), 20 % team
moves (new primary department and its leader as manager), 20 % leavers (half
marked terminated, half absent from the export) and 20 % joiners. Leaders and
managers are never touched, so the rest of the org keeps its managers; the
result validates as cleanly as the input.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

from orgsync.model import Employee, Snapshot, Status

_CITIES = ("北京", "上海", "深圳", "杭州", "广州", "成都", "武汉", "南京", "西安", "苏州")


@dataclasses.dataclass(frozen=True, slots=True)
class Churn:
    """How many employees each kind of change touched."""

    updated: int
    moved: int
    terminated: int
    removed: int
    joined: int

    @property
    def total(self) -> int:
        """Employees changed in all."""
        return self.updated + self.moved + self.terminated + self.removed + self.joined


def change_share(org: Snapshot, *, share: float = 0.01, seed: int = 11) -> tuple[Snapshot, Churn]:
    """``org`` with ``share`` of its employees changed; same arguments → same result."""
    rng = random.Random(seed)
    people = dict(org.employees)
    leaders = {d.leader_key for d in org.departments.values() if d.leader_key}
    managers = {e.manager_key for e in people.values() if e.manager_key}
    pool = sorted(k for k, e in people.items()
                  if e.status is Status.ACTIVE and k not in leaders and k not in managers)
    n = max(4, round(share * len(people)))
    fifth = n // 5
    chosen = rng.sample(pool, min(len(pool), n - fifth))
    updates, moves = chosen[:2 * fifth], chosen[2 * fifth:3 * fifth]
    leavers = chosen[3 * fifth:]

    for key in updates:
        e = people[key]
        if rng.random() < 0.5 and e.job_title:
            people[key] = dataclasses.replace(e, job_title="资深" + e.job_title.removeprefix("高级"))
        else:
            people[key] = dataclasses.replace(e, city=rng.choice([c for c in _CITIES
                                                                  if c != e.city]))
    staffed = sorted(k for k, d in org.departments.items() if d.leader_key)
    for key in moves:
        e = people[key]
        target = rng.choice([k for k in staffed if k not in e.department_keys])
        people[key] = dataclasses.replace(
            e, department_keys=(target, *e.department_keys[1:]),
            manager_key=org.departments[target].leader_key)
    removed = 0
    for i, key in enumerate(leavers):
        if i % 2:
            del people[key]
            removed += 1
        else:
            people[key] = dataclasses.replace(people[key], status=Status.TERMINATED)

    joiners = n - len(updates) - len(moves) - len(leavers)
    numbers = [int(k[1:]) for k in org.employees if k[1:].isdigit()]
    width = max((len(k) - 1 for k in org.employees), default=6)
    first = max(numbers, default=0) + 1
    newest = max((e.join_date for e in org.employees.values() if e.join_date), default=None)
    touched = set(chosen)
    templates = [people[k] for k in pool if k not in touched]
    for i in range(joiners):
        number = first + i
        key = f"E{number:0{width}d}"
        t = rng.choice(templates)
        people[key] = Employee(
            key=key, name=t.name, department_keys=t.department_keys, en_name=t.en_name,
            email=f"bench.joiner{number}@example.com", mobile=f"+86145{number:08d}",
            manager_key=t.manager_key, job_title=t.job_title, employee_no=f"{number:08d}",
            employee_type=t.employee_type,
            join_date=newest + timedelta(days=1) if newest else None, city=t.city)
    terminated = len(leavers) - removed
    return (Snapshot(dict(org.departments), people),
            Churn(len(updates), len(moves), terminated, removed, joiners))
