"""The Feishu the docs describe (feishu-api-more.md §1.1, §1.5, §1.6), over a real socket:
field read permissions, the primary department, clearing a job title."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.config import Config
from orgsync.diff import diff
from orgsync.feishu.schema import RA3
from orgsync.ledger import Ledger
from orgsync.model import Department, Employee, Snapshot
from orgsync.runner import RunOutcome
from orgsync.sandbox import SandboxServer
from orgsync.source import SourceData
from orgsync.state import DirectoryState, MirrorDepartment, MirrorUser
from tests.sandbox_run import config, read_back, run

DEPARTMENTS = "department_id,name,parent_id\nD1,研发,\nD2,销售,\n"
HEADER = "employee_id,name,email,mobile,department_ids,job_title\n"
PEOPLE = ("E1,张三,san@example.com,13800000001,D1;D2,工程师\n"
          "E2,李四,si@example.com,13800000002,D2,\n")
ALL_BUT_EMAIL = " ".join((*RA3, "contact:user.employee_id:readonly", "contact:user.phone:readonly"))
NO_EMPLOYEE = " ".join(("contact:user.base:readonly", "contact:user.employee_id:readonly",
                        "contact:user.email:readonly", "contact:user.phone:readonly",
                        "contact:user.department:readonly", "contact:department.base:readonly",
                        "contact:department.organize:readonly"))
ALL_BUT_USER_ID = " ".join((*RA3, "contact:user.email:readonly", "contact:user.phone:readonly"))


def _source(src: Path, people: str = PEOPLE) -> None:
    src.mkdir(exist_ok=True)
    (src / "departments.csv").write_text(DEPARTMENTS, encoding="utf-8")
    (src / "employees.csv").write_text(HEADER + people, encoding="utf-8")


def _cli(tmp_path: Path, sb: SandboxServer, *args: str) -> tuple[int, str]:
    conf = tmp_path / "orgsync.yaml"
    conf.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": "${PERMS_TEST_SECRET}", "rate_scale": 10.0},
        "source": {"type": "csv", "departments": "src/departments.csv",
                   "employees": "src/employees.csv"},
        "ledger": {"url": "sqlite:///ledger.db"},
    }), encoding="utf-8")
    result = CliRunner().invoke(app, [*args, "-c", str(conf)],
                                env={"PERMS_TEST_SECRET": sb.config.app_secret})
    return result.exit_code, " ".join(result.output.split())


def _resync_without(tmp_path: Path, sb: SandboxServer, permissions: str) -> tuple[int, str]:
    """Apply the source with every permission, then resync holding only ``permissions``."""
    _source(tmp_path / "src")
    assert _cli(tmp_path, sb, "apply", "--yes")[0] == 0
    sb.configure(permissions=permissions)
    sb.sandbox.clear_requests()
    return _cli(tmp_path, sb, "resync", "--yes", "--local")


def _applied_then(tmp_path: Path, sb: SandboxServer, people: str) -> tuple[Config, RunOutcome]:
    """Apply the source, then (request log cleared) apply it with ``people`` instead."""
    src = tmp_path / "src"
    _source(src)
    cfg = config(sb, src, tmp_path / "ledger.db")
    ledger = Ledger(cfg.ledger.url)
    try:
        assert run(cfg, ledger).exit_code == 0
        sb.sandbox.clear_requests()
        _source(src, people)
        return cfg, run(cfg, ledger)
    finally:
        ledger.close()


def _writes(sb: SandboxServer) -> list[dict[str, object]]:
    return [r for r in sb.requests()
            if r["method"] != "GET" and "tenant_access_token" not in r["path"]]


def _user(sb: SandboxServer, user_id: str) -> dict[str, object]:
    return next(u for u in sb.sandbox.state()["users"] if u["user_id"] == user_id)


# ------------------------------------------------------------------ §1.1 read permissions


def test_the_sandbox_leaves_out_what_the_app_may_not_read(sandbox: SandboxServer,
                                                          sandbox_api: httpx.Client) -> None:
    ids = {"user_id_type": "user_id", "department_id_type": "department_id"}
    dept = sandbox_api.post("/open-apis/contact/v3/departments", params=ids, json={
        "name": "研发", "parent_department_id": "0", "department_id": "D1"}).json()
    assert dept["code"] == 0
    sandbox.configure(permissions="contact:user.base:readonly,contact:department.base:readonly")
    created = sandbox_api.post("/open-apis/contact/v3/users", params=ids, json={
        "user_id": "E1", "name": "张三", "mobile": "13800000001", "email": "san@example.com",
        "department_ids": ["D1"], "employee_type": 1, "job_title": "工程师"}).json()
    assert created["code"] == 0
    got = sandbox_api.get("/open-apis/contact/v3/users/E1", params=ids).json()["data"]["user"]
    for user in (created["data"]["user"], got):
        assert user["name"] == "张三"
        assert user["open_id"].startswith("ou_")
        for absent in ("user_id", "email", "mobile", "job_title", "department_ids", "orders",
                       "status", "leader_user_id"):
            assert absent not in user, absent
    sandbox.configure(permissions="contact:user.email:readonly")
    got = sandbox_api.get("/open-apis/contact/v3/users/E1", params=ids).json()["data"]["user"]
    assert got["email"] == "san@example.com"
    assert "name" not in got
    d1 = sandbox_api.get("/open-apis/contact/v3/departments/D1",
                         params=ids).json()["data"]["department"]
    assert "department_id" not in d1
    assert "parent_department_id" not in d1
    assert d1["open_department_id"].startswith("od-")
    # The state dump (admin API) is whole whatever the app holds.
    assert _user(sandbox, "E1")["email"] == "san@example.com"


def test_without_the_email_permission_nothing_changes_and_check_refuses(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """An email Feishu does not return is unknown, not empty: a resync plans no change
    (before: an email update for everyone), keeps the applied emails in the mirror, and
    ``check`` refuses, naming the permission."""
    code, text = _resync_without(tmp_path, sandbox, ALL_BUT_EMAIL)
    assert code == 0, text
    assert "No changes." in text, text
    assert not _writes(sandbox)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        emails = {k: u.record.email for k, u in ledger.load_state().users.items()}
    finally:
        ledger.close()
    assert emails == {"E1": "san@example.com", "E2": "si@example.com"}

    code, text = _cli(tmp_path, sandbox, "check")
    assert code == 3, text
    assert "user.email (needs contact:user.email:readonly)" in text, text
    assert "check compares every field orgsync manages" in text, text


def test_the_diff_never_changes_a_field_it_could_not_read() -> None:
    """A record read without its email, manager, parent or leader plans nothing for them
    (before: the email cleared, the manager and the leader unlinked, the department moved
    to the top)."""
    d1 = Department(key="D1", name="研发", parent_key="D0", leader_key="E2")
    person = Employee(key="E1", name="张三", department_keys=("D1",), email="san@example.com",
                      mobile="+8613800000001", manager_key="E2")
    boss = Employee(key="E2", name="李四", department_keys=("D1",), mobile="+8613800000002")
    root = Department(key="D0", name="总部")
    state = DirectoryState()
    state.departments["D0"] = MirrorDepartment(root, "D0")
    state.departments["D1"] = MirrorDepartment(
        replace(d1, parent_key=None, leader_key=None), "D1",
        unknown=frozenset({"parent_key", "leader_key"}))
    state.users["E1"] = MirrorUser(replace(person, email=None, manager_key=None), "E1",
                                   unknown=frozenset({"email", "manager_key"}))
    state.users["E2"] = MirrorUser(boss, "E2")
    plan = diff(SourceData(Snapshot.of([root, d1], [person, boss])), state)
    assert plan.empty, [(op.kind.value, op.key) for op in plan.operations]


def test_without_the_user_id_permission_resync_refuses(tmp_path: Path,
                                                       sandbox: SandboxServer) -> None:
    """Without user_id nobody can be keyed: the resync stops before any write (before: a
    KeyError traceback)."""
    code, text = _resync_without(tmp_path, sandbox, ALL_BUT_USER_ID)
    assert code == 3, text
    assert "user.key (needs contact:user.employee_id:readonly)" in text, text
    assert "Traceback" not in text
    assert not _writes(sandbox)


def test_without_the_employee_permission_admins_and_frozen_users_stay_as_they_are(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """Without ``contact:user.employee:readonly`` Feishu leaves out ``status``,
    ``is_tenant_manager`` and ``job_title``: a resync writes nothing (before: a title
    "restored", a frozen leaver frozen again), and a tenant admin learned earlier stays
    protected when they leave the source (before: frozen)."""
    src = tmp_path / "src"
    _source(src, PEOPLE + "E3,王五,wu@example.com,13800000003,D1,\n")
    cfg = config(sandbox, src, tmp_path / "ledger.db", sync={"leaver_action": "freeze"})
    ledger = Ledger(cfg.ledger.url)
    try:
        assert run(cfg, ledger).exit_code == 0
        admin = sandbox.sandbox.tenant.find_user("E1", "user_id")
        assert admin is not None
        admin.is_tenant_manager = True
        assert run(cfg, ledger, full=True).exit_code == 0  # learns the admin
        _source(src)
        left = run(cfg, ledger, accept_shrink=True)
        assert [op.kind.value for op in left.plan.operations] == ["user.freeze"]
        sandbox.configure(permissions=NO_EMPLOYEE)
        resync = run(cfg, ledger, full=True, accept_shrink=True)
        assert resync.plan.empty, [op.label for op in resync.plan.operations]
        _source(src, PEOPLE.split("\n", 1)[1])  # E1 leaves the source
        gone = run(cfg, ledger, accept_shrink=True)
    finally:
        ledger.close()
    assert not any(op.key == "E1" for op in gone.plan.operations)
    assert "user E1 is protected; left as it is" in gone.plan.notes
    assert not _user(sandbox, "E1")["status"]["is_frozen"]  # type: ignore[index]


def test_an_account_that_may_be_a_tenant_admin_is_not_adopted(
        tmp_path: Path, sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
    """Without the permission that returns ``is_tenant_manager``, an existing account
    matching a new person by email is held, not taken over (before: adopted)."""
    sandbox_api.post("/open-apis/contact/v3/users", params={"user_id_type": "user_id"}, json={
        "user_id": "it-admin", "name": "张三", "mobile": "13800000001",
        "email": "san@example.com", "department_ids": ["0"], "employee_type": 1})
    sandbox.configure(permissions=NO_EMPLOYEE)
    src = tmp_path / "src"
    _source(src)
    cfg = config(sandbox, src, tmp_path / "ledger.db",
                 safety={"takeover_requires_approval": False})
    ledger = Ledger(cfg.ledger.url)
    try:
        outcome = run(cfg, ledger)
    finally:
        ledger.close()
    assert [i.reason for i in outcome.plan.issues if i.key == "E1"] == [
        "matches Feishu user it-admin, which may be a tenant admin: Feishu does not say without "
        "contact:user.employee:readonly or contact:contact:access_as_app or "
        "contact:contact:readonly or contact:contact:readonly_as_app; not adopted"]
    assert not any(op.key == "E1" for op in outcome.plan.operations)


# ------------------------------------------------------------------ §1.6 primary department


def test_a_new_primary_department_alone_is_applied_and_read_back(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """Same departments, the other one first: the PATCH carries orders, so Feishu's
    primary (the largest department_order) moves; a check afterwards finds no drift."""
    cfg, outcome = _applied_then(tmp_path, sandbox, PEOPLE.replace("D1;D2", "D2;D1"))
    assert outcome.exit_code == 0
    assert [(op.kind.value, op.key) for op in outcome.plan.operations] == [("user.move", "E1")]
    primary = [o["department_id"] for o in _user(sandbox, "E1")["orders"]  # type: ignore[union-attr]
               if o["is_primary_dept"]]
    assert primary == [sandbox.sandbox.tenant.find_department("D2", "department_id").open_id]
    assert read_back(cfg).users["E1"].record.department_keys == ("D2", "D1")
    assert _cli(tmp_path, sandbox, "check")[0] == 0


def test_department_ids_alone_keep_the_primary_and_orders_move_it(
        sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
    """The sandbox's reading of §1.6: a PATCH of department_ids without orders keeps the
    orders (UNCONFIRMED; the reading hardest for a client); the largest department_order
    is the primary; a flagged primary without the largest order is 41410."""
    sandbox.configure(rate_limits=False)  # a PATCH of department_ids is 1 QPS
    ids = {"user_id_type": "user_id", "department_id_type": "department_id"}
    for d in ("D1", "D2"):
        sandbox_api.post("/open-apis/contact/v3/departments", params=ids, json={
            "name": d, "parent_department_id": "0", "department_id": d})
    sandbox_api.post("/open-apis/contact/v3/users", params=ids, json={
        "user_id": "E1", "name": "张三", "mobile": "13800000001", "department_ids": ["D1", "D2"],
        "employee_type": 1})

    def primary() -> str:
        user = sandbox_api.get("/open-apis/contact/v3/users/E1", params=ids).json()["data"]["user"]
        return next(o["department_id"] for o in user["orders"] if o["is_primary_dept"])

    assert primary() == "D1"
    patch = "/open-apis/contact/v3/users/E1"
    assert sandbox_api.patch(patch, params=ids,
                             json={"department_ids": ["D2", "D1"]}).json()["code"] == 0
    assert primary() == "D1"
    assert sandbox_api.patch(patch, params=ids, json={
        "department_ids": ["D1", "D2"], "orders": [
            {"department_id": "D1", "department_order": 1},
            {"department_id": "D2", "department_order": 2}]}).json()["code"] == 0
    assert primary() == "D2"
    refused = sandbox_api.patch(patch, params=ids, json={
        "department_ids": ["D1", "D2"], "orders": [
            {"department_id": "D1", "department_order": 1, "is_primary_dept": True},
            {"department_id": "D2", "department_order": 2}]}).json()
    assert refused["code"] == 41410
    assert sandbox_api.patch(patch, params=ids, json={"orders": []}).json()["code"] == 44002


# ------------------------------------------------------------------ §1.5 clearing


def test_a_job_title_is_cleared_with_a_space_and_reads_back_empty(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    cfg, outcome = _applied_then(tmp_path, sandbox, PEOPLE.replace(",工程师", ","))
    assert outcome.exit_code == 0
    patches = [r["body"] for r in sandbox.requests() if r["method"] == "PATCH"]
    assert patches == [{"job_title": " "}]
    assert _user(sandbox, "E1")["job_title"] == ""
    assert read_back(cfg).users["E1"].record.job_title is None


def test_the_sandbox_clears_a_job_title_with_a_space_or_nothing(
        sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
    """" " is the documented clear; "" is still taken as one (UNCONFIRMED in Feishu)."""
    ids = {"user_id_type": "user_id", "department_id_type": "department_id"}
    sandbox_api.post("/open-apis/contact/v3/users", params=ids, json={
        "user_id": "E1", "name": "张三", "mobile": "13800000001", "department_ids": ["0"],
        "employee_type": 1, "job_title": "工程师"})
    for clear in (" ", ""):
        assert sandbox_api.patch("/open-apis/contact/v3/users/E1", params=ids,
                                 json={"job_title": clear}).json()["code"] == 0
        assert _user(sandbox, "E1")["job_title"] == ""
        sandbox_api.patch("/open-apis/contact/v3/users/E1", params=ids,
                          json={"job_title": "工程师"})
