"""A Feishu tenant built by hand through the API, as companies have before orgsync: the
HR departments without custom ids (one under its HR code, one with loosened whitespace,
one name made ambiguous), most HR people without custom user ids (a few under their HR
id, some findable by email only or by mobile only), and Feishu-only accounts."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from orgsync.config import Config
from orgsync.errors import PlanHeld
from orgsync.feishu import FeishuClient
from orgsync.identity import feishu_department_id, feishu_user_id
from orgsync.ledger import Ledger
from orgsync.model import Snapshot, Status
from orgsync.runner import RunOutcome
from orgsync.sandbox import SandboxServer
from tests.sandbox_run import run

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
        if ambiguous in e.department_keys or e.status is not Status.ACTIVE:
            continue  # held with their department; leavers are nobody to take over
        roll = rng.random()
        if roll < absent_share:
            made.absent.add(k)
            continue
        body = {"name": e.name, "employee_type": 1,
                "department_ids": [fid[e.department_keys[0]]]}
        # Feishu wants a mobile: one it does not know of is an old one the takeover replaces.
        old_mobile = f"+86137{len(made.by_rule['email']) + len(made.by_rule['id']):08d}"
        if roll < 0.45 and e.mobile and (roll >= 0.25 or not e.email):
            body["mobile"] = e.mobile
            made.by_rule["mobile"].add(k)
        elif roll >= 0.25 and e.email:
            body.update(email=e.email, mobile=old_mobile)
            made.by_rule["email"].add(k)
        else:
            body.update(user_id=feishu_user_id(k), mobile=e.mobile or old_mobile,
                        **({"email": e.email} if e.email else {}))
            made.by_rule["id"].add(k)
        await client.create_user(body)
    for i, uid in enumerate(FEISHU_ONLY):
        await client.create_user({"user_id": uid, "name": f"外包{i}", "employee_type": 1,
                                  "email": f"{uid}@vendor.example",
                                  "mobile": f"+86136{i:08d}",
                                  "department_ids": [fid[order[0]]] if i else ["0"]})
    made.feishu_only = {u["user_id"]: u for u in sb.tenant.state()["users"]
                        if u["user_id"] in FEISHU_ONLY}
    return made


def writes(sb: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sb.requests()
            if r["method"] != "GET" and "tenant_access_token" not in r["path"]
            and not r["path"].endswith("batch_get_id")]


def hand_made(sb: SandboxServer, cfg: Config, org: Snapshot) -> HandMade:
    async def go() -> HandMade:
        async with FeishuClient(cfg.feishu) as client:
            return await build(client, sb, org)
    return asyncio.run(go())


def take_over(sb: SandboxServer, cfg: Config, ledger: Ledger) -> tuple[PlanHeld, RunOutcome]:
    """The first run is held for approval; approving that plan id applies it."""
    before = len(writes(sb))
    with pytest.raises(PlanHeld) as held:
        run(cfg, ledger)
    assert len(writes(sb)) == before  # a held takeover writes nothing
    assert ledger.approve_plan(held.value.plan_id)
    return held.value, run(cfg, ledger)


def check_taken_over(sb: SandboxServer, org: Snapshot, made: HandMade,
                     out: RunOutcome, ledger: Ledger) -> None:
    """0 failures, 0 duplicates, every HR department and person under its HR id,
    Feishu-only accounts untouched, the ambiguous department held naming both twins."""
    assert out.result is not None
    assert out.exit_code == 0, out.result.summary()
    state = sb.tenant.state()
    depts = {d["department_id"]: d for d in state["departments"]}
    users = [u for u in state["users"] if not u["status"]["is_resigned"]]
    held = {made.ambiguous} | {k for k, e in org.employees.items()
                               if made.ambiguous in e.department_keys}
    people = {k for k, e in org.employees.items() if e.status is Status.ACTIVE} - held
    for k in org.departments.keys() - held:
        assert feishu_department_id(k) in depts, k
        assert depts[feishu_department_id(k)]["name"] == org.departments[k].name
    live = [d for d in state["departments"] if not d["status"]["is_deleted"]]
    assert len(live) == len(org.departments) + 1  # nothing created twice; + the ambiguous twin
    by_uid = {u["user_id"]: u for u in users}
    for k in people:
        assert feishu_user_id(k) in by_uid, k
        assert by_uid[feishu_user_id(k)]["name"] == org.employees[k].name
    emails = [u["email"] for u in users if u["email"]]
    assert len(emails) == len(set(emails))  # nobody twice
    assert len(users) == len(people) + len(FEISHU_ONLY)
    for uid, before in made.feishu_only.items():
        assert by_uid[uid] == before
    issue = [i for i in out.plan.issues if i.key == made.ambiguous]
    assert len(issue) == 1
    assert all(repr(t) in issue[0].reason for t in made.ambiguous_names)
    mirror = ledger.load_state()
    assert set(mirror.departments) == org.departments.keys() - held
    assert set(mirror.users) == people
