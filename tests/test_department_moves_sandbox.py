"""Against the sandbox: a removed department goes in the run that removes it (its frozen
leavers moved out first), and a path-keyed department renamed in the export is a PATCH."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orgsync.config import LedgerConfig
from orgsync.identity import feishu_department_id
from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.plan import Plan
from orgsync.runner import make_plan
from orgsync.sandbox import SandboxServer
from orgsync.state import Lifecycle
from orgsync.synth import write_csv
from tests.pg import _pg_url, _postgres  # noqa: F401  (fixtures)
from tests.sandbox_run import SCALE, config, run, with_client
from tests.test_department_moves import path_org
from tests.test_diff import dept, emp


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def kinds(plan: Plan) -> list[tuple[str, str]]:
    return [(op.kind.value, op.key) for op in plan.operations]


def writes(sb: SandboxServer, since: int) -> list[tuple[str, str, Any]]:
    return [(r["method"], r["path"], r["body"]) for r in sb.requests()[since:]
            if r["method"] != "GET" and "tenant_access_token" not in r["path"]
            and not r["path"].endswith("batch_get_id")]


T0 = datetime.now(UTC)
DEPTS = [dept("HQ", "总部"), dept("RD", "研发", "HQ"), dept("PF", "平台", "RD")]
PEOPLE = [emp("E1", ("HQ",)), emp("E2", ("RD",)), emp("E3", ("PF",)), emp("E9", ("PF",))]
USERS = "/open-apis/contact/v3/users"


def test_removed_department_goes_in_the_same_run_its_frozen_leaver_moved_out(
        sb: SandboxServer, tmp_path: Path) -> None:
    """E9 left (frozen); then HR removes 平台 and moves E3 to 研发: E9 moves to 研发 too
    (a paced PATCH of department_ids, still frozen) and 平台 is deleted in that run."""
    src = tmp_path / "s"
    write_csv(Snapshot.of(DEPTS, PEOPLE), src)
    cfg = config(sb, src, tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    run(cfg, ledger, T0)
    write_csv(Snapshot.of(DEPTS, PEOPLE[:3]), src)
    assert kinds(run(cfg, ledger, T0).plan) == [("user.freeze", "E9")]

    write_csv(Snapshot.of(DEPTS[:2], [*PEOPLE[:2], emp("E3", ("RD",))]), src)
    mark = len(sb.requests())
    out = run(cfg, ledger, T0 + timedelta(days=1))
    assert kinds(out.plan) == [("user.move", "E3"), ("user.move", "E9"),
                               ("department.delete", "PF")]
    assert out.result is not None
    assert out.result.count("failed") == 0
    assert writes(sb, mark) == [
        ("PATCH", f"{USERS}/E3", {"department_ids": ["RD"]}),
        ("PATCH", f"{USERS}/E9", {"department_ids": ["RD"]}),
        ("DELETE", "/open-apis/contact/v3/departments/PF", None)]
    leaver = sb.tenant.find_user("E9", "user_id")
    rd = sb.tenant.find_department("RD", "department_id")
    assert leaver is not None
    assert rd is not None
    assert (leaver.frozen, leaver.resigned, [o.dept for o in leaver.orders]) == (
        True, False, [rd.open_id])
    assert sb.tenant.find_department("PF", "department_id") is None
    mirrored = ledger.load_state()
    assert "PF" not in mirrored.departments
    assert mirrored.users["E9"].lifecycle is Lifecycle.FROZEN
    assert mirrored.users["E9"].record.department_keys == ("RD",)
    assert run(cfg, ledger, T0 + timedelta(days=2)).plan.empty
    # ... and at the end of the grace period the leaver is deleted from 研发 as usual.
    assert kinds(run(cfg, ledger, T0 + timedelta(days=15)).plan) == [("user.delete", "E9")]


def write_paths(snap: Snapshot, src: Path) -> None:
    """``snap`` (keyed by paths) as one employees file whose 部门 column holds the paths."""
    write_csv(snap, src)
    (src / "departments.csv").unlink()
    with (src / "employees.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows[0] = ["部门" if h == "department_ids" else h for h in rows[0]]
    with (src / "employees.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_renamed_path_department_is_a_patch(sb: SandboxServer, tmp_path: Path, backend: str,
                                            request: pytest.FixtureRequest) -> None:
    """研发中心 → 研发与技术中心 in a department_path export: department updates only
    (nobody moved, nothing created or deleted), Feishu has the new name, then nothing to do
    (incrementally, and on a full read of Feishu)."""
    src = tmp_path / "s"
    write_paths(path_org(), src)
    cfg = config(sb, src, tmp_path / "l.db", source={
        "type": "csv", "employees": str(src / "employees.csv"), "department_path": "部门"})
    if backend == "postgres":
        cfg = replace(cfg, ledger=LedgerConfig(url=request.getfixturevalue("pg_url")))
    ledger = Ledger(cfg.ledger.url)
    first = run(cfg, ledger, T0)
    assert first.result is not None
    assert first.result.count("failed") == 0
    old_ids = {k: m.feishu_id for k, m in ledger.load_state().departments.items()}

    write_paths(path_org("研发与技术中心"), src)
    planned = with_client(cfg, lambda c: make_plan(cfg, ledger, c, now=T0)).plan
    assert planned.summary() == {"department.update": 1, "department.rekey": 3}
    mark = len(sb.requests())
    out = run(cfg, ledger, T0)
    assert out.result is not None
    assert out.result.count("failed") == 0
    top = feishu_department_id("研发中心")
    assert writes(sb, mark) == [
        ("PATCH", f"/open-apis/contact/v3/departments/{top}", {"name": "研发与技术中心"})]
    found = sb.tenant.find_department(top, "department_id")
    assert found is not None
    assert found.name == "研发与技术中心"
    mirrored = ledger.load_state()
    assert {k: m.feishu_id for k, m in mirrored.departments.items()} == {
        k.replace("研发中心", "研发与技术中心"): fid for k, fid in old_ids.items()}
    assert mirrored.users["E8"].record.department_keys == (
        "研发与技术中心/平台部/基础架构组", "销售部")
    mark = len(sb.requests())
    assert run(cfg, ledger, T0).plan.empty
    assert writes(sb, mark) == []
    assert with_client(cfg, lambda c: make_plan(cfg, ledger, c, full=True,
                                                rebuild_mirror=False, now=T0)).plan.empty
    ledger.close()
