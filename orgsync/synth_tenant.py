"""A Feishu tenant built by hand before orgsync, for an org: the takeover's demo, tests and figures.

:func:`existing_tenant` writes, as a sandbox seed document (the shape of
``GET /_sandbox/state``; ``orgsync sandbox --seed-file``), what a company has when
its admins built Feishu themselves: the HR departments without custom ids (one
already under its HR code, one whose name has stray spaces, one leaf twice under
look-alike names), most HR people without custom user ids (some under their HR id,
some findable by email only — with an old mobile — or by mobile only), some not
there at all, and a few Feishu-only accounts. No leaders and no managers are set.
Deterministic in its arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from orgsync.identity import feishu_department_id, feishu_user_id
from orgsync.model import Snapshot, Status

#: user_id → name of the accounts no HR record matches (the first sits in the root).
FEISHU_ONLY = {"contractor-1": "外包1", "contractor-2": "外包2", "it-admin-bot": "外包0"}


@dataclass(slots=True)
class ExistingTenant:
    """The seed document and what a takeover of it should find.

    ``ambiguous``: the HR department whose name matches two Feishu departments
    (``ambiguous_names``); ``by_rule``: HR keys findable by ``id``, ``email`` or
    ``mobile``; ``absent``: active HR people with no account (created by the takeover).
    """

    state: dict[str, Any]
    ambiguous: str
    ambiguous_names: tuple[str, str]
    by_rule: dict[str, set[str]] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)


def _parents_first(org: Snapshot) -> list[str]:
    def depth(k: str) -> int:
        d, n = org.departments[k], 0
        while d.parent_key is not None:
            d, n = org.departments[d.parent_key], n + 1
        return n
    return sorted(org.departments, key=lambda k: (depth(k), k))


def existing_tenant(org: Snapshot, *, seed: int = 3, absent_share: float = 0.1) -> ExistingTenant:
    """The hand-made tenant for ``org`` (departments listed parents first)."""
    rng = random.Random(seed)
    order = _parents_first(org)
    parents = {d.parent_key for d in org.departments.values()}
    ambiguous = [k for k in order if k not in parents][-1]  # the deepest leaf
    name = org.departments[ambiguous].name
    twins = (name[:1] + " " + name[1:], name[:1] + "\u3000" + name[1:])
    by_code, spaced = order[1 % len(order)], order[2 % len(order)]
    ref = {k: f"od-{i + 1:032x}" for i, k in enumerate(order)}
    departments: list[dict[str, Any]] = []
    for k in order:
        d = org.departments[k]
        parent = ref[d.parent_key] if d.parent_key else "0"
        if k == ambiguous:
            departments += [{"open_department_id": f"od-{'f' * 30}{i:02x}", "name": twin,
                             "parent_department_id": parent} for i, twin in enumerate(twins)]
            continue
        item: dict[str, Any] = {"open_department_id": ref[k], "name": d.name,
                                "parent_department_id": parent}
        if k == by_code:
            item["department_id"] = feishu_department_id(k)
        elif k == spaced and k != ambiguous:
            item["name"] = " ".join(d.name)
        departments.append(item)
    out = ExistingTenant({"departments": departments, "users": []}, ambiguous, twins,
                         {"id": set(), "email": set(), "mobile": set()})
    users = out.state["users"]
    for k in sorted(org.employees):
        e = org.employees[k]
        if ambiguous in e.department_keys or e.status is not Status.ACTIVE:
            continue  # held with their department; leavers are nobody to take over
        roll = rng.random()
        if roll < absent_share:
            out.absent.add(k)
            continue
        user: dict[str, Any] = {"name": e.name, "employee_type": 1,
                                "department_ids": [ref[e.department_keys[0]]]}
        # Feishu wants a mobile: one it does not know of is an old one the takeover replaces.
        old_mobile = f"+86137{len(users):08d}"
        if roll < 0.45 and e.mobile and (roll >= 0.25 or not e.email):
            user["mobile"] = e.mobile
            out.by_rule["mobile"].add(k)
        elif roll >= 0.25 and e.email:
            user.update(email=e.email, mobile=old_mobile)
            out.by_rule["email"].add(k)
        else:
            user.update(user_id=feishu_user_id(k), mobile=e.mobile or old_mobile,
                        **({"email": e.email} if e.email else {}))
            out.by_rule["id"].add(k)
        users.append(user)
    for i, (uid, who) in enumerate(sorted(FEISHU_ONLY.items())):
        users.append({"user_id": uid, "name": who, "employee_type": 1,
                      "email": f"{uid}@vendor.example", "mobile": f"+86136{i:08d}",
                      "department_ids": [ref[order[0]]] if i else ["0"]})
    return out
