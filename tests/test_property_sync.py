"""Property: for random orgs A and B, applying plan(A → B) to a sandbox holding A yields B,
and plan(B → B) is empty. Departments move (swaps included), people join, leave, change
teams and managers (chains reversed included), in random combinations."""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from orgsync.config import config_from_dict
from orgsync.feishu import FeishuClient
from orgsync.feishu.reader import read_directory
from orgsync.ledger import Ledger
from orgsync.model import Department, Employee, Snapshot
from orgsync.runner import run_once
from orgsync.sandbox import SandboxServer
from orgsync.state import DirectoryState
from orgsync.synth import write_csv

DEPTS = [f"D{i}" for i in range(6)]
PEOPLE = [f"E{i}" for i in range(9)]


@st.composite
def orgs(draw: st.DrawFn) -> Snapshot:
    """A valid org over shared key pools: random tree, memberships, managers, leaders."""
    dkeys = draw(st.lists(st.sampled_from(DEPTS), min_size=1, max_size=len(DEPTS), unique=True))
    order = draw(st.permutations(dkeys))
    depts: dict[str, Department] = {}
    for i, k in enumerate(order):
        parent = draw(st.sampled_from([None, *order[:i]]))
        name = draw(st.sampled_from([f"部门{k}", f"新部门{k}"]))
        depts[k] = Department(key=k, name=name, parent_key=parent)
    pkeys = draw(st.lists(st.sampled_from(PEOPLE), max_size=len(PEOPLE), unique=True))
    porder = draw(st.permutations(pkeys))
    people: dict[str, Employee] = {}
    for i, k in enumerate(porder):
        n = int(k[1:])
        member = draw(st.lists(st.sampled_from(sorted(depts)), min_size=1, max_size=2, unique=True))
        people[k] = Employee(key=k, name=f"员工{n}", department_keys=tuple(member), email=f"e{n}@example.com",
                             mobile=f"+86138000{n:05d}",
                             manager_key=draw(st.sampled_from([None, *porder[:i]])),
                             job_title=draw(st.sampled_from([None, "工程师", "经理"])))
    for k in sorted(depts):
        members = sorted(p for p, e in people.items() if k in e.department_keys)
        if members and draw(st.booleans()):
            depts[k] = replace(depts[k], leader_key=draw(st.sampled_from(members)))
    return Snapshot(depts, people)


def _read(cfg: Any) -> DirectoryState:
    async def go() -> DirectoryState:
        async with FeishuClient(cfg.feishu) as client:
            return await read_directory(client)
    return asyncio.run(go())


# PROP_N examples (default 25; the long run: PROP_N=500); PROP_NOSHRINK=1 skips shrinking.
@settings(max_examples=int(os.environ.get("PROP_N", "25")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate,
                  *([] if os.environ.get("PROP_NOSHRINK") else [Phase.shrink])])
@given(a=orgs(), b=orgs())
def test_plan_a_to_b_yields_b(sandbox: SandboxServer, a: Snapshot, b: Snapshot) -> None:
    """Apply A, then B: Feishu reads back as B, and a further plan is empty."""
    sandbox.reset()
    sandbox.configure(rate_scale=20.0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = config_from_dict({
            "version": 1,
            "feishu": {"base_url": sandbox.base_url, "app_id": sandbox.config.app_id,
                       "app_secret": sandbox.config.app_secret, "rate_scale": 20.0},
            "source": {"type": "csv", "departments": str(root / "departments.csv"),
                       "employees": str(root / "employees.csv")},
            "ledger": {"url": f"sqlite:///{root / 'l.db'}"},
            "sync": {"leaver_action": "delete", "adopt_existing": False},
            "safety": {"max_user_removals": 10_000, "max_user_removal_fraction": 1.0,
                       "max_department_deletes": 10_000, "max_department_delete_fraction": 1.0,
                       "max_source_shrink": 1.0},
        }, file="<property>", base_dir=root)
        ledger = Ledger(cfg.ledger.url)
        try:
            for org in (a, b):
                write_csv(org, root)
                out = asyncio.run(run_once(cfg, ledger, apply=True))
                failed = [(r.op.op_id, r.code, r.message) for r in
                          (out.result.results if out.result else []) if r.status != "done"]
                assert failed == []
            state = _read(cfg)
            # The orgs carry no order: Feishu's default order is not a difference.
            assert {k: replace(m.record, order=None) for k, m in state.departments.items()} == \
                b.departments
            got = {k: replace(m.record, join_date=None) for k, m in state.users.items()}
            assert got == b.employees
            assert asyncio.run(run_once(cfg, ledger, apply=False)).plan.empty
        finally:
            ledger.close()
