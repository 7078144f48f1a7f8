"""End to end over a real socket: CSV → plan → apply against the sandbox, then read Feishu back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from orgsync.config import Config, config_from_dict
from orgsync.diff import diff
from orgsync.feishu import FeishuClient
from orgsync.ledger import Ledger
from orgsync.model import Department, Employee, Snapshot
from orgsync.runner import RunOutcome, run_once
from orgsync.sandbox import SandboxServer
from orgsync.source import SourceData
from orgsync.state import DirectoryState
from orgsync.synth import generate_org, next_week, write_csv
from tests.sandbox_run import read_back
from tests.sandbox_run import run as apply

SCALE = 10.0  # sandbox and client both run the documented limits 10x faster


def make_config(sb: SandboxServer, source: Path, ledger: Path, **sync: Any) -> Config:
    data: dict[str, Any] = {
        "version": 1,
        "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": sb.config.app_secret, "rate_scale": SCALE},
        "source": {"type": "csv", "departments": str(source / "departments.csv"),
                   "employees": str(source / "employees.csv")},
        "ledger": {"url": f"sqlite:///{ledger}"},
    }
    if sync:
        data["sync"] = sync
    return config_from_dict(data, file="<test>", base_dir=source)


def writes(sb: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sb.requests()
            if r["method"] != "GET" and "tenant_access_token" not in r["path"]]


def assert_matches(state: DirectoryState, snap: Snapshot) -> None:
    """Feishu (read back) equals the source, field by field."""
    want_d = {k: d for k, d in snap.departments.items()}
    got_d = {k: m.record for k, m in state.departments.items()}
    assert sorted(got_d) == sorted(want_d)
    for k, d in want_d.items():
        got = got_d[k] if d.order is not None else replace(got_d[k], order=None)
        assert got == d, k  # a source without an order leaves Feishu's default
    active = snap.active_employees()
    got_u = {k: m.record for k, m in state.users.items()}
    assert sorted(got_u) == sorted(active)
    for k, e in active.items():
        got_e = got_u[k]
        if e.join_date is None:  # Feishu defaults join_time to "now"; unset means don't care
            got_e = replace(got_e, join_date=None)
        if e.employee_no is None:
            got_e = replace(got_e, employee_no=None)
        assert got_e == e, k
    assert diff(SourceData(snap), state).empty


@pytest.fixture(name="fast_sandbox")
def _fast_sandbox(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


SMALL = {"employees": 60, "departments": 12, "levels": 4}


class TestInitialSync:
    def test_applied_org_reads_back_equal_to_the_source(self, fast_sandbox: SandboxServer,
                                                        tmp_path: Path) -> None:
        """After one apply, Feishu holds exactly the source: parents, leaders, managers, orders."""
        org = generate_org(**SMALL)
        write_csv(org, tmp_path / "w1")
        cfg = make_config(fast_sandbox, tmp_path / "w1", tmp_path / "l.db")
        ledger = Ledger(cfg.ledger.url)
        out = apply(cfg, ledger)
        assert out.exit_code == 0
        assert out.result is not None
        assert out.result.count("done") == len(out.plan.operations)
        assert_matches(read_back(cfg), org)
        assert any(len(e.department_keys) == 2 for e in org.active_employees().values())

    def test_an_initial_apply_writes_each_person_once(self, fast_sandbox: SandboxServer,
                                                       tmp_path: Path) -> None:
        """400 people in 51 departments: one create per department and per person, one
        leader link per department, no manager patch — each manager link is in the
        report's create, made after the manager's: ≤ 1.05 × (users + 2 × departments)."""
        org = generate_org(employees=400, departments=51, levels=5)
        write_csv(org, tmp_path / "w1")
        cfg = make_config(fast_sandbox, tmp_path / "w1", tmp_path / "l.db")
        out = apply(cfg, Ledger(cfg.ledger.url))
        assert out.exit_code == 0
        contact = [r for r in writes(fast_sandbox) if "/contact/v3/" in r["path"]
                   and not r["path"].endswith("/batch_get_id")]  # a lookup, not a write
        creates = [r["body"] for r in contact
                   if r["method"] == "POST" and r["path"] == "/open-apis/contact/v3/users"]
        assert len(creates) == 400
        assert [r for r in contact if "/users/" in r["path"]] == []  # no patch of anyone
        assert len(contact) == 400 + 2 * 51 <= 1.05 * (400 + 2 * 51)
        made = {body["user_id"]: i for i, body in enumerate(creates)}
        linked = {body["user_id"]: body["leader_user_id"] for body in creates
                  if "leader_user_id" in body}
        assert linked == {k: e.manager_key for k, e in org.active_employees().items()
                          if e.manager_key}
        assert all(made[manager] < made[report] for report, manager in linked.items())
        assert_matches(read_back(cfg), org)

    def test_second_run_plans_nothing_and_writes_nothing(self, fast_sandbox: SandboxServer,
                                                         tmp_path: Path) -> None:
        """Idempotence: the second plan is empty and the second apply makes zero API calls."""
        org = generate_org(**SMALL)
        write_csv(org, tmp_path / "w1")
        cfg = make_config(fast_sandbox, tmp_path / "w1", tmp_path / "l.db")
        ledger = Ledger(cfg.ledger.url)
        apply(cfg, ledger)
        before = len(fast_sandbox.requests())
        again = apply(cfg, ledger)
        assert again.plan.empty
        assert again.result is None
        assert len(fast_sandbox.requests()) == before


class TestNextWeek:
    def test_every_change_kind_makes_the_exact_calls(self, fast_sandbox: SandboxServer,
                                                     tmp_path: Path) -> None:
        """Week 2: renames and moves are PATCHes, leavers DELETEs, joiners POSTs; state matches."""
        w1 = generate_org(**SMALL)
        w2 = next_week(w1)
        write_csv(w1, tmp_path / "w1")
        write_csv(w2, tmp_path / "w2")
        ledger_path = tmp_path / "l.db"
        ledger = Ledger(f"sqlite:///{ledger_path}")
        apply(make_config(fast_sandbox, tmp_path / "w1", ledger_path, leaver_action="delete"),
              ledger)
        first = len(fast_sandbox.requests())
        cfg2 = make_config(fast_sandbox, tmp_path / "w2", ledger_path, leaver_action="delete")
        out = apply(cfg2, ledger)
        assert out.exit_code == 0
        calls = [r for r in fast_sandbox.requests()[first:]
                 if "tenant_access_token" not in r["path"]]
        summary = out.plan.summary()
        for kind in ("department.update", "department.move", "user.create", "user.delete",
                     "user.move", "user.set_manager"):
            assert summary.get(kind, 0) >= 1, (kind, summary)

        moved = [op for op in out.plan.operations if op.kind.value == "department.move"]
        for op in moved:
            path = f"/open-apis/contact/v3/departments/{op.feishu_id}"
            mine = [(r["method"], r["body"]) for r in calls if r["path"] == path]
            assert mine == [("PATCH", dict(op.payload))]
            assert "parent_department_id" in op.payload
            assert not any(r["method"] == "POST" and (r["body"] or {}).get("department_id")
                           == op.feishu_id for r in calls)
        renamed = [op for op in out.plan.operations if op.kind.value == "department.update"
                   and "name" in op.payload]
        assert renamed
        for op in renamed:
            path = f"/open-apis/contact/v3/departments/{op.feishu_id}"
            assert [r["method"] for r in calls if r["path"] == path] == ["PATCH"]
        leavers = {op.feishu_id for op in out.plan.operations if op.kind.value == "user.delete"}
        deleted = {r["path"].rsplit("/", 1)[1] for r in calls if r["method"] == "DELETE"
                   and "/users/" in r["path"]}
        assert deleted == leavers
        joiners = {op.feishu_id for op in out.plan.operations if op.kind.value == "user.create"}
        created = {r["body"]["user_id"] for r in calls if r["method"] == "POST"
                   and r["path"] == "/open-apis/contact/v3/users"}
        assert created == joiners
        assert_matches(read_back(cfg2), w2)


class TestOrdering:
    def _two_runs(self, sb: SandboxServer, tmp_path: Path, a: Snapshot, b: Snapshot) -> RunOutcome:
        write_csv(a, tmp_path / "a")
        write_csv(b, tmp_path / "b")
        lp = tmp_path / "l.db"
        ledger = Ledger(f"sqlite:///{lp}")
        assert apply(make_config(sb, tmp_path / "a", lp), ledger).exit_code == 0
        out = apply(make_config(sb, tmp_path / "b", lp), ledger)
        assert_matches(read_back(make_config(sb, tmp_path / "b", lp)), b)
        return out

    def test_department_swap_applies(self, fast_sandbox: SandboxServer, tmp_path: Path) -> None:
        """A under B becoming B under A applies without Feishu rejecting a cycle."""
        people = [Employee(key="E1", name="张伟", department_keys=("A",), mobile="+8613800000001",
                           email="e1@example.com")]
        a = Snapshot.of([Department(key="B", name="乙部"),
                         Department(key="A", name="甲部", parent_key="B")], people)
        b = Snapshot.of([Department(key="A", name="甲部"),
                         Department(key="B", name="乙部", parent_key="A")], people)
        out = self._two_runs(fast_sandbox, tmp_path, a, b)
        assert out.exit_code == 0
        assert [op.op_id for op in out.plan.operations] == ["department.move:A",
                                                            "department.move:B"]

    def test_manager_chain_reverses(self, fast_sandbox: SandboxServer, tmp_path: Path) -> None:
        """E1 → E2 → E3 becoming E3 → E2 → E1 applies without an intermediate cycle."""
        def people(chain: dict[str, str | None]) -> list[Employee]:
            return [Employee(key=k, name=f"员工{k}", department_keys=("D",),
                             mobile=f"+86138000000{i:02d}", email=f"{k.lower()}@example.com",
                             manager_key=m)
                    for i, (k, m) in enumerate(sorted(chain.items()))]
        d = [Department(key="D", name="部门")]
        a = Snapshot.of(d, people({"E1": None, "E2": "E1", "E3": "E2"}))
        b = Snapshot.of(d, people({"E3": None, "E2": "E3", "E1": "E2"}))
        out = self._two_runs(fast_sandbox, tmp_path, a, b)
        assert out.exit_code == 0
        assert out.result is not None
        assert out.result.count("failed") == 0


def test_bad_rows_are_held_back_and_the_rest_applied(fast_sandbox: SandboxServer,
                                                     tmp_path: Path) -> None:
    """Missing id, bad mobile, duplicate email, unknown department, manager cycle: held; rest applied."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "departments.csv").write_text(
        "department_id,name,parent_id,leader_id,order\nD1,研发部,,,1\nD2,测试部,D1,,1\n",
        encoding="utf-8")
    header = ("employee_id,name,en_name,email,mobile,department_ids,manager_id,job_title,"
              "employee_type,join_date,city,status\n")
    rows = [
        "E1,好人甲,Good One,good1@example.com,+8613800000001,D1,,工程师,regular,2026-01-05,北京,active",
        "E2,好人乙,Good Two,good2@example.com,+8613800000002,D2,E1,测试,regular,2026-01-05,上海,active",
        ",无编号,,noid@example.com,+8613800000003,D1,,,regular,,,active",
        "E4,坏手机,,bad@example.com,12345,D1,,,regular,,,active",
        "E5,重复甲,,dup@example.com,+8613800000005,D1,,,regular,,,active",
        "E6,重复乙,,dup@example.com,+8613800000006,D1,,,regular,,,active",
        "E7,无部门,,nodept@example.com,+8613800000007,D9,,,regular,,,active",
        "E8,环甲,,loop8@example.com,+8613800000008,D1,E9,,regular,,,active",
        "E9,环乙,,loop9@example.com,+8613800000009,D1,E8,,regular,,,active",
    ]
    (src / "employees.csv").write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    cfg = make_config(fast_sandbox, src, tmp_path / "l.db")
    out = apply(cfg, Ledger(cfg.ledger.url))
    assert out.exit_code == 0
    state = read_back(cfg)
    assert sorted(state.users) == ["E1", "E2"]
    assert sorted(state.departments) == ["D1", "D2"]
    held = {(i.key, i.field) for i in out.plan.issues if i.severity == "error"}
    for key in ("E4", "E5", "E6", "E7", "E8", "E9"):
        assert any(k == key for k, _ in held), key
    assert any(i.key is None and "employees.csv:4" in (i.where or "") for i in out.plan.issues)


def test_killed_apply_resumes_without_duplicates(fast_sandbox: SandboxServer,
                                                 tmp_path: Path) -> None:
    """SIGKILL mid-apply, then apply again: Feishu equals the source, nothing created twice."""
    org = generate_org(**SMALL)
    write_csv(org, tmp_path / "w1")
    fast_sandbox.configure(latency_ms=40)
    conf = tmp_path / "orgsync.yaml"
    conf.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": fast_sandbox.base_url, "app_id": fast_sandbox.config.app_id,
                   "app_secret": "${TEST_SECRET}", "rate_scale": SCALE},
        "source": {"type": "csv", "departments": "w1/departments.csv",
                   "employees": "w1/employees.csv"},
        "ledger": {"url": "sqlite:///l.db"},
    }), encoding="utf-8")
    env = {**os.environ, "TEST_SECRET": fast_sandbox.config.app_secret}
    proc = subprocess.Popen([sys.executable, "-m", "orgsync.cli", "apply", "--yes", "-c", str(conf)],
                            cwd=Path(__file__).parent.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(writes(fast_sandbox)) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(writes(fast_sandbox))
    assert 40 <= killed_at < 140
    created_before = sum(1 for r in writes(fast_sandbox) if r["method"] == "POST"
                         and r["path"] == "/open-apis/contact/v3/users")
    assert 0 < created_before < len(org.active_employees())  # killed among the creates
    fast_sandbox.configure(latency_ms=0)
    cfg = make_config(fast_sandbox, tmp_path / "w1", tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    out = apply(cfg, ledger)
    assert out.exit_code == 0
    assert_matches(read_back(cfg), org)
    dump = httpx.get(f"{fast_sandbox.base_url}/_sandbox/state",
                     headers={"Authorization": f"Bearer {fast_sandbox.config.app_secret}"}
                     ).json()["data"]
    user_ids = [u["user_id"] for u in dump["users"]]
    assert sorted(user_ids) == sorted(org.active_employees())  # none twice, none resigned
    dept_ids = [d["department_id"] for d in dump["departments"]]
    assert sorted(dept_ids) == sorted(org.departments)
    journal = ledger.journal()
    assert {r.status for r in journal} <= {"done", "interrupted"}
    # Every manager link was made in a create, before the kill or after it.
    assert not [r.op_id for r in journal if r.op_id.startswith("user.set_manager")]
    assert any(r.status == "interrupted" or r.message == "adopted after an interrupted create"
               for r in journal)
    again = apply(cfg, ledger)
    assert again.plan.empty, [(op.op_id, op.changes) for op in again.plan.operations] + [
        (r.op_id, r.status, r.message) for r in ledger.journal()
        if r.target_key in {op.key for op in again.plan.operations}]


def test_full_resync_repairs_drift_made_behind_orgsyncs_back(fast_sandbox: SandboxServer,
                                                             tmp_path: Path) -> None:
    """Renamed, retitled, frozen and deleted in Feishu by hand: check sees it, resync repairs it."""
    org = generate_org(**SMALL)
    write_csv(org, tmp_path / "w1")
    cfg = make_config(fast_sandbox, tmp_path / "w1", tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    apply(cfg, ledger)
    dept_key = sorted(org.departments)[3]
    people = sorted(org.active_employees())
    leaf = next(k for k in people if not any(e.manager_key == k for e in org.employees.values())
                and not any(d.leader_key == k for d in org.departments.values()))

    async def tamper() -> None:
        async with FeishuClient(cfg.feishu) as c:
            await c.patch_department(dept_key, {"name": "被手工改名"})
            await c.patch_user(people[1], {"job_title": "手工改的"})
            await c.patch_user(people[2], {"is_frozen": True})
            await c.delete_user(leaf)
    asyncio.run(tamper())

    assert asyncio.run(run_once(cfg, ledger, apply=False)).plan.empty  # the mirror cannot see it
    drift = asyncio.run(run_once(cfg, ledger, apply=False, full=True)).plan
    assert {(op.kind.value, op.key) for op in drift.operations} == {
        ("department.update", dept_key), ("user.update", people[1]),
        ("user.unfreeze", people[2]), ("user.create", leaf)}  # with its manager link
    fixed = asyncio.run(run_once(cfg, ledger, apply=True, full=True))
    assert fixed.exit_code == 0
    assert_matches(read_back(cfg), org)
    assert asyncio.run(run_once(cfg, ledger, apply=False, full=True)).plan.empty
    assert [r.mode for r in ledger.runs(limit=3)] == ["check", "resync", "check"]
