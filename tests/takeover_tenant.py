"""The tenant of :func:`orgsync.synth_tenant.existing_tenant` built through the API (as its
admins would have), one takeover of it, and the checks every takeover must pass."""

from __future__ import annotations

import asyncio
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
from orgsync.synth_tenant import FEISHU_ONLY, ExistingTenant, existing_tenant
from tests.sandbox_run import run


async def build(client: FeishuClient, sb: SandboxServer, org: Snapshot) -> tuple[
        ExistingTenant, dict[str, dict[str, Any]]]:
    """Build ``existing_tenant(org)`` in ``sb`` through ``client`` (the API only); returns it
    and the Feishu-only accounts as the sandbox holds them."""
    tenant = existing_tenant(org)
    made: dict[str, str] = {"0": "0"}  # seed reference -> the department_id Feishu gave
    for d in tenant.state["departments"]:
        body = {k: v for k, v in d.items() if k != "open_department_id"}
        body["parent_department_id"] = made[d["parent_department_id"]]
        made[d["open_department_id"]] = str((await client.create_department(body))
                                            ["department_id"])
    for u in tenant.state["users"]:
        await client.create_user({**u, "department_ids": [made[r] for r in u["department_ids"]]})
    return tenant, {u["user_id"]: u for u in sb.tenant.state()["users"]
                    if u["user_id"] in FEISHU_ONLY}


def writes(sb: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sb.requests()
            if r["method"] != "GET" and "tenant_access_token" not in r["path"]
            and not r["path"].endswith("batch_get_id")]


def hand_made(sb: SandboxServer, cfg: Config, org: Snapshot
              ) -> tuple[ExistingTenant, dict[str, dict[str, Any]]]:
    async def go() -> tuple[ExistingTenant, dict[str, dict[str, Any]]]:
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


def check_taken_over(sb: SandboxServer, org: Snapshot, made: ExistingTenant,
                     feishu_only: dict[str, dict[str, Any]], out: RunOutcome,
                     ledger: Ledger) -> None:
    """0 failures, 0 duplicates, every HR department and person under its HR id,
    Feishu-only accounts untouched, the ambiguous department held naming both twins."""
    assert out.exit_code == 0, out.result.summary() if out.result else out.plan
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
    assert feishu_only.keys() == FEISHU_ONLY.keys()
    for uid, before in feishu_only.items():
        assert by_uid[uid] == before
    issue = [i for i in out.plan.issues if i.key == made.ambiguous]
    assert len(issue) == 1
    assert all(repr(t) in issue[0].reason for t in made.ambiguous_names)
    mirror = ledger.load_state()
    assert set(mirror.departments) == org.departments.keys() - held
    assert set(mirror.users) == people
