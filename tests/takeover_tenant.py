"""A Feishu tenant built by hand through the API, as companies have before orgsync: the
HR departments without custom ids (one under its HR code, one with loosened whitespace,
one name made ambiguous), most HR people without custom user ids (a few under their HR
id, some findable by email only or by mobile only), and Feishu-only accounts."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from orgsync.feishu import FeishuClient
from orgsync.identity import feishu_department_id, feishu_user_id
from orgsync.model import Snapshot
from orgsync.sandbox import SandboxServer

FEISHU_ONLY = ("it-admin-bot", "contractor-1", "contractor-2")


@dataclass(slots=True)
class HandMade:
    """What was built: the ambiguous department (held), who is created fresh, and how
    each built person can be found."""

    ambiguous: str
    ambiguous_names: tuple[str, str]
    by_rule: dict[str, set[str]] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)  # HR people with no account: created
    feishu_only: dict[str, dict[str, Any]] = field(default_factory=dict)


def _depth_order(org: Snapshot) -> list[str]:
    def depth(k: str) -> int:
        d, n = org.departments[k], 0
        while d.parent_key is not None:
            d, n = org.departments[d.parent_key], n + 1
        return n
    return sorted(org.departments, key=lambda k: (depth(k), k))


async def build(client: FeishuClient, sb: SandboxServer, org: Snapshot, *, seed: int = 3,
                absent_share: float = 0.1) -> HandMade:
    """Build the tenant for ``org`` in ``sb`` through ``client`` (the API only)."""
    rng = random.Random(seed)
    order = _depth_order(org)
    # The ambiguous one: a leaf whose two Feishu look-alikes differ from it by spaces.
    leaves = [k for k in order if not any(d.parent_key == k for d in org.departments.values())]
    ambiguous = leaves[-1]
    name = org.departments[ambiguous].name
    twins = (name[:1] + " " + name[1:], name[:1] + "\u3000" + name[1:])
    by_code, spaced = order[1], order[2]
    fid: dict[str, str] = {}
    for k in order:
        d = org.departments[k]
        parent = fid[d.parent_key] if d.parent_key else "0"
        if k == ambiguous:
            for twin in twins:
                await client.create_department({"name": twin, "parent_department_id": parent})
            continue
        body: dict[str, Any] = {"name": d.name, "parent_department_id": parent}
        if k == by_code:
            body["department_id"] = feishu_department_id(k)
        elif k == spaced:
            body["name"] = " ".join(d.name)
        fid[k] = str((await client.create_department(body))["department_id"])
    made = HandMade(ambiguous, twins, {"id": set(), "email": set(), "mobile": set()})
    for k in sorted(org.employees):
        e = org.employees[k]
        if ambiguous in e.department_keys:
            continue  # its people stay where HR has them: held with their department
        roll = rng.random()
        if roll < absent_share:
            made.absent.add(k)
            continue
        body = {"name": e.name, "employee_type": 1,
                "department_ids": [fid[e.department_keys[0]]]}
        if roll < 0.25:
            body.update(user_id=feishu_user_id(k), email=e.email, mobile=e.mobile)
            made.by_rule["id"].add(k)
        elif roll < 0.45 and e.mobile:
            body["mobile"] = e.mobile
            made.by_rule["mobile"].add(k)
        else:  # Feishu wants a mobile: an old one, which the takeover replaces
            body.update(email=e.email, mobile=f"+86137{len(made.by_rule['email']):08d}")
            made.by_rule["email"].add(k)
        await client.create_user(body)
    for i, uid in enumerate(FEISHU_ONLY):
        await client.create_user({"user_id": uid, "name": f"外包{i}", "employee_type": 1,
                                  "email": f"{uid}@vendor.example",
                                  "mobile": f"+86136{i:08d}",
                                  "department_ids": [fid[order[i % len(order)]]]
                                  if i else ["0"]})
    made.feishu_only = {u["user_id"]: u for u in sb.tenant.state()["users"]
                        if u["user_id"] in FEISHU_ONLY}
    return made
