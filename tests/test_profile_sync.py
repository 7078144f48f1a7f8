"""The profile fields (orgsync.feishu.schema.PROFILE) end to end over a real socket: CSV →
plan → apply against the sandbox, read back from the sandbox's tenant field by field."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import lark_oapi as lark
import pytest
from lark_oapi.api.contact.v3 import GetDepartmentRequest, GetUserRequest

from orgsync.config import Config, config_from_dict
from orgsync.errors import ConfigError
from orgsync.ledger import Ledger
from orgsync.runner import run_once
from orgsync.sandbox import SandboxServer
from orgsync.sandbox.tenant.job_catalog import FAMILY, LEVEL
from tests.sandbox_run import SCALE, config, run

DEPARTMENTS = "department_id,name,parent_id\nD1,研发部,\nD2,平台组,D1\n"
PEOPLE = [  # employee_id, name, mobile, department, work_station, gender
    ("E1", "张伟", "+8613800000001", "D1", "A-1-01", "男"),
    ("E2", "李娜", "+8613800000002", "D2", "A-2-17", "female"),
    ("E3", "王芳", "+8613800000003", "D2", "", "其他"),
]


def write(src: Path, people: list[tuple[str, ...]], columns: tuple[str, ...]) -> None:
    """The source files: departments, and people with the profile ``columns`` present."""
    src.mkdir(exist_ok=True)
    (src / "departments.csv").write_text(DEPARTMENTS, encoding="utf-8")
    header = ["employee_id", "name", "email", "mobile", "department_ids", *columns]
    lines = [",".join(header)]
    for key, name, mobile, dept, station, gender in people:
        profile = {"work_station": station, "gender": gender}
        lines.append(",".join([key, name, f"{key.lower()}@example.com", mobile, dept,
                               *(profile[c] for c in columns)]))
    (src / "employees.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def profile_in_feishu(sb: SandboxServer) -> dict[str, tuple[str, int]]:
    """Each user's work station and gender as the sandbox tenant holds them."""
    return {u.user_id: (u.work_station, u.gender) for u in sb.tenant.users.values()}


def sdk(sb: SandboxServer) -> lark.Client:
    """The official SDK on the sandbox (configure an app id of the test's own first: the
    SDK caches tokens per app id)."""
    return (lark.Client.builder().app_id(sb.config.app_id).app_secret(sb.config.app_secret)
            .domain(sb.base_url).timeout(10).log_level(lark.LogLevel.ERROR).build())


def sdk_user(sb: SandboxServer, user_id: str) -> Any:
    """A user as the official SDK reads it (``lark_oapi``'s ``User`` model)."""
    got = sdk(sb).contact.v3.user.get(GetUserRequest.builder().user_id(user_id)
                                      .user_id_type("user_id").build())
    assert got.success(), (got.code, got.msg)
    return got.data.user


def writes(sb: SandboxServer, since: int = 0) -> list[dict[str, Any]]:
    return [r for r in sb.requests()[since:]
            if r["method"] != "GET" and "tenant_access_token" not in r["path"]]


def drift(cfg: Config, ledger: Ledger) -> list[tuple[str, str, Any, Any]]:
    """What ``orgsync check`` reports (a live read compared with the source): each
    change as (person, field, in Feishu, in the source)."""
    plan = asyncio.run(run_once(cfg, ledger, apply=False, full=True)).plan
    return [(op.key, c.field, c.old, c.new) for op in plan.operations for c in op.changes]


@pytest.fixture(name="fast_sandbox")
def _fast_sandbox(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def test_week_one_and_two_write_exactly_the_profile_changes(fast_sandbox: SandboxServer,
                                                            tmp_path: Path) -> None:
    """Week 1 creates people with their work station and gender; week 2 patches only the
    profile values that changed (a cleared one with Feishu's clear); week 3 writes nothing."""
    sb = fast_sandbox
    sb.configure(app_id="cli_profile_week")  # the SDK caches tokens per app id
    cfg = config(sb, tmp_path / "src", tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    write(tmp_path / "src", PEOPLE, ("work_station", "gender"))
    assert run(cfg, ledger).exit_code == 0
    assert profile_in_feishu(sb) == {"E1": ("A-1-01", 1), "E2": ("A-2-17", 2), "E3": ("", 3)}
    e2 = sdk_user(sb, "E2")
    assert (e2.work_station, e2.gender) == ("A-2-17", 2)

    week2 = [PEOPLE[0], (*PEOPLE[1][:4], "B-5-02", "female"), (*PEOPLE[2][:5], "")]
    write(tmp_path / "src", week2, ("work_station", "gender"))
    before = len(sb.requests())
    out = run(cfg, ledger)
    assert out.exit_code == 0
    assert {(op.key, tuple((c.field, c.old, c.new) for c in op.changes))
            for op in out.plan.operations} == {("E2", (("work_station", "A-2-17", "B-5-02"),)),
                                               ("E3", (("gender", 3, None),))}
    assert sorted((r["path"].rsplit("/", 1)[1], r["body"]) for r in writes(sb, before)) == [
        ("E2", {"work_station": "B-5-02"}), ("E3", {"gender": 0})]
    assert profile_in_feishu(sb) == {"E1": ("A-1-01", 1), "E2": ("B-5-02", 2), "E3": ("", 0)}

    before = len(sb.requests())
    again = run(cfg, ledger)
    assert again.plan.empty
    assert len(sb.requests()) == before


def test_a_profile_field_the_source_lacks_is_never_touched(fast_sandbox: SandboxServer,
                                                           tmp_path: Path) -> None:
    """Without a gender column, a gender set in Feishu by hand survives apply, check and
    resync (and is no drift), while the work station the source has is written."""
    sb = fast_sandbox
    cfg = config(sb, tmp_path / "src", tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    write(tmp_path / "src", PEOPLE, ("work_station",))
    assert run(cfg, ledger).exit_code == 0
    for u in sb.tenant.users.values():  # an admin sets the gender in the console
        u.gender = 2
    assert profile_in_feishu(sb) == {"E1": ("A-1-01", 2), "E2": ("A-2-17", 2), "E3": ("", 2)}

    before = len(sb.requests())
    assert run(cfg, ledger).plan.empty
    assert drift(cfg, ledger) == []
    resync = asyncio.run(run_once(cfg, ledger, apply=True, full=True))
    assert resync.exit_code == 0
    assert resync.plan.empty
    assert writes(sb, before) == []
    assert profile_in_feishu(sb) == {"E1": ("A-1-01", 2), "E2": ("A-2-17", 2), "E3": ("", 2)}

    # Drift in a field the source has is found and repaired.
    sb.tenant.users[next(o for o, u in sb.tenant.users.items() if u.user_id == "E1")] \
        .work_station = "moved by hand"
    assert drift(cfg, ledger) == [("E1", "work_station", "moved by hand", "A-1-01")]
    assert asyncio.run(run_once(cfg, ledger, apply=True, full=True)).exit_code == 0
    assert profile_in_feishu(sb)["E1"] == ("A-1-01", 2)


def test_a_bad_profile_value_holds_the_row_naming_the_field(fast_sandbox: SandboxServer,
                                                            tmp_path: Path) -> None:
    """A gender Feishu would reject (41038) is held at the source, with the line and field."""
    sb = fast_sandbox
    cfg = config(sb, tmp_path / "src", tmp_path / "l.db")
    write(tmp_path / "src", [*PEOPLE[:2], (*PEOPLE[2][:5], "unicorn")], ("work_station", "gender"))
    out = run(cfg, Ledger(cfg.ledger.url))
    assert [str(i) for i in out.plan.issues] == [
        "employees.csv:4: employee E3: gender: 'unicorn' is not a gender (male, female, other, "
        "secret; 男, 女, 其他, 保密) (held back)"]
    assert sorted(profile_in_feishu(sb)) == ["E1", "E2"]


LED = ("department_id,name,parent_id,leader_id,deputy_leader_ids,hrbp_ids\n"
       "D1,研发部,,E1,E2;E3,E3\n"
       "D2,平台组,D1,E2,,\n")


def leaders_in_feishu(sb: SandboxServer) -> dict[str, tuple[list[tuple[int, str]], list[str]]]:
    """Each department's leaders (leaderType, user_id) and HRBPs as the sandbox holds them."""
    uid = {o: u.user_id for o, u in sb.tenant.users.items()}
    return {d.custom_id: ([(kind, uid[o]) for kind, o in d.leaders], [uid[o] for o in d.hrbps])
            for d in sb.tenant.departments.values() if d.open_id != "0"}


def test_deputy_leaders_and_hrbps(fast_sandbox: SandboxServer, tmp_path: Path) -> None:
    """Deputies go beside the main leader in one camelCase ``leaders`` list, HRBPs in
    ``department_hrbps``; a change to either is one PATCH of that part; a third run writes
    nothing; a deputy the source does not hold is left out with a warning."""
    sb = fast_sandbox
    sb.configure(app_id="cli_profile_leaders")
    src = tmp_path / "src"
    cfg = config(sb, src, tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    write(src, PEOPLE, ())
    (src / "departments.csv").write_text(LED, encoding="utf-8")
    assert run(cfg, ledger).exit_code == 0
    assert leaders_in_feishu(sb) == {"D1": ([(1, "E1"), (2, "E2"), (2, "E3")], ["E3"]),
                                     "D2": ([(1, "E2")], [])}

    (src / "departments.csv").write_text(LED.replace("E2;E3,E3", "E3;E9,E1;E2"), encoding="utf-8")
    before = len(sb.requests())
    out = run(cfg, ledger)
    assert [str(i) for i in out.plan.issues] == [
        "departments.csv:2: department D1: deputy_leader_keys: deputy leader 'E9' does not "
        "exist in the source (cleared)"]
    assert [(r["method"], r["body"]) for r in writes(sb, before)] == [
        ("PATCH", {"leader_user_id": "E1", "leaders": [{"leaderType": 1, "leaderID": "E1"},
                                                       {"leaderType": 2, "leaderID": "E3"}],
                   "department_hrbps": ["E1", "E2"]})]
    assert leaders_in_feishu(sb)["D1"] == ([(1, "E1"), (2, "E3")], ["E1", "E2"])
    got = sdk(sb).contact.v3.department.get(
        GetDepartmentRequest.builder().department_id("D1").department_id_type("department_id")
        .user_id_type("user_id").build())
    assert got.success(), (got.code, got.msg)
    assert (got.data.department.leader_user_id, got.data.department.department_hrbps) == (
        "E1", ["E1", "E2"])
    # The SDK's DepartmentLeader knows only snake_case: the wire's leaderID is dropped
    # (feishu-api-more.md §7), which is why orgsync reads leaders from the raw JSON.
    assert [(x.leader_type, x.leader_id) for x in got.data.department.leaders] == [(None, None)] * 2

    before = len(sb.requests())
    assert run(cfg, ledger).plan.empty
    assert len(sb.requests()) == before


def dotted_in_feishu(sb: SandboxServer) -> dict[str, list[str]]:
    """Each user's dotted-line managers (user ids) as the sandbox holds them."""
    uid = {o: u.user_id for o, u in sb.tenant.users.items()}
    return {u.user_id: [uid[o] for o in u.dotted_line_leaders] for u in sb.tenant.users.values()}


def write_dotted(src: Path, dotted: dict[str, str]) -> None:
    """PEOPLE with a ``dotted_line_manager_ids`` column (employee id → cell)."""
    write(src, PEOPLE, ())
    lines = (src / "employees.csv").read_text(encoding="utf-8").splitlines()
    out = [lines[0] + ",dotted_line_manager_ids"]
    out += [f"{line},{dotted.get(line.split(',')[0], '')}" for line in lines[1:]]
    (src / "employees.csv").write_text("\n".join(out) + "\n", encoding="utf-8")


def test_dotted_line_managers(fast_sandbox: SandboxServer, tmp_path: Path) -> None:
    """Dotted-line managers are linked in the second pass (one PATCH per person, with the
    manager when both change), changed and cleared; a link that would close a cycle is
    left out with a warning; a third run writes nothing."""
    sb = fast_sandbox
    sb.configure(app_id="cli_profile_dotted")
    src = tmp_path / "src"
    cfg = config(sb, src, tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    write_dotted(src, {"E2": "E1;E3", "E3": "E1"})
    out = run(cfg, ledger)
    assert out.exit_code == 0
    assert out.plan.issues == ()
    assert dotted_in_feishu(sb) == {"E1": [], "E2": ["E1", "E3"], "E3": ["E1"]}
    links = [op for op in out.plan.operations if op.kind.value == "user.set_manager"]
    creates = {op.op_id for op in out.plan.operations if op.kind.value == "user.create"}
    assert all(creates & set(op.depends_on) for op in links)  # after the people exist
    # The SDK's model types them List[int]; its parser keeps the strings as sent.
    assert sdk_user(sb, "E2").dotted_line_leader_user_ids == ["E1", "E3"]

    write_dotted(src, {"E1": "E2", "E2": "E3"})
    before = len(sb.requests())
    out = run(cfg, ledger)
    assert out.plan.issues == ()
    assert sorted((r["path"].rsplit("/", 1)[1], r["body"]) for r in writes(sb, before)) == [
        ("E1", {"dotted_line_leader_user_ids": ["E2"]}),
        ("E2", {"dotted_line_leader_user_ids": ["E3"]}),
        ("E3", {"dotted_line_leader_user_ids": []})]
    assert dotted_in_feishu(sb) == {"E1": ["E2"], "E2": ["E3"], "E3": []}

    write_dotted(src, {"E1": "E2", "E2": "E3", "E3": "E1;E3"})
    out = run(cfg, ledger)
    assert [str(i) for i in out.plan.issues] == [
        "employees.csv:4: employee E3: dotted_line_manager_keys: dotted-line manager 'E1' would "
        "close a cycle of dotted-line links (cleared)",
        "employees.csv:4: employee E3: dotted_line_manager_keys: is the employee themself "
        "(cleared)"]
    assert out.plan.empty
    before = len(sb.requests())
    assert run(cfg, ledger).plan.empty
    assert len(sb.requests()) == before


def test_sync_fields_and_create_only_decide_who_owns_a_field(fast_sandbox: SandboxServer,
                                                             tmp_path: Path) -> None:
    """``sync.fields`` leaves out gender although the source has it: a value set by hand
    survives apply, check and resync. ``sync.create_only`` work_station is set when a person
    is created, then neither a change in the source nor one in Feishu is written or drift."""
    sb = fast_sandbox
    src = tmp_path / "src"
    cfg = config(sb, src, tmp_path / "l.db",
                 sync={"fields": ["work_station"], "create_only": ["work_station"]})
    ledger = Ledger(cfg.ledger.url)
    write(src, PEOPLE, ("work_station", "gender"))
    out = run(cfg, ledger)
    assert out.exit_code == 0
    assert all("gender" not in r["body"] for r in writes(sb))
    assert profile_in_feishu(sb) == {"E1": ("A-1-01", 0), "E2": ("A-2-17", 0), "E3": ("", 0)}

    for u in sb.tenant.users.values():  # by hand: a gender, and E1 moved desks
        u.gender = 3
        if u.user_id == "E1":
            u.work_station = "C-9-99"
    write(src, [PEOPLE[0], (*PEOPLE[1][:4], "B-5-02", "male"), PEOPLE[2]],
          ("work_station", "gender"))
    before = len(sb.requests())
    assert run(cfg, ledger).plan.empty
    assert drift(cfg, ledger) == []
    assert asyncio.run(run_once(cfg, ledger, apply=True, full=True)).plan.empty
    assert writes(sb, before) == []
    assert profile_in_feishu(sb) == {"E1": ("C-9-99", 3), "E2": ("A-2-17", 3), "E3": ("", 3)}

    # A new hire gets the create-only value.
    write(src, [*PEOPLE, ("E4", "赵磊", "+8613800000004", "D2", "D-1-01", "男")],
          ("work_station", "gender"))
    assert run(cfg, ledger).exit_code == 0
    assert profile_in_feishu(sb)["E4"] == ("D-1-01", 0)


@pytest.mark.parametrize(("sync", "key", "text"), [
    ({"fields": ["work_staton"]}, "sync.fields[0]", "work_station"),
    ({"fields": ["gender"], "create_only": ["work_station"]}, "sync.create_only[0]",
     "work_station is not in sync.fields"),
])
def test_bad_field_ownership_fails_naming_the_key(tmp_path: Path, sync: dict[str, Any],
                                                  key: str, text: str) -> None:
    """A field name orgsync does not know, or a create-only field it does not manage, is a
    config error naming the key."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"version": 1, "feishu": {"app_id": "cli_x", "app_secret": "s"},
                          "source": {"type": "csv", "departments": "d.csv",
                                     "employees": "e.csv"},
                          "ledger": {"url": "sqlite:///x.db"}, "sync": sync},
                         file="o.yaml", base_dir=tmp_path)
    assert caught.value.key == key
    assert text in str(caught.value)


def write_jobs(src: Path, jobs: dict[str, tuple[str, str]]) -> None:
    """PEOPLE with ``job_level`` and ``job_family`` columns (employee id → (level, family))."""
    write(src, PEOPLE, ())
    lines = (src / "employees.csv").read_text(encoding="utf-8").splitlines()
    out = [lines[0] + ",job_level,job_family"]
    out += [f"{line},{','.join(jobs.get(line.split(',')[0], ('', '')))}" for line in lines[1:]]
    (src / "employees.csv").write_text("\n".join(out) + "\n", encoding="utf-8")


def jobs_in_feishu(sb: SandboxServer) -> dict[str, tuple[str, str]]:
    """Each user's job level and family, by name, as the sandbox holds them."""
    name = {i: e["name"] for c in sb.tenant.catalogs.values() for i, e in c.items()}
    return {u.user_id: (name.get(u.job_level_id, u.job_level_id),
                        name.get(u.job_family_id, u.job_family_id))
            for u in sb.tenant.users.values()}


def test_job_levels_and_families_by_name(fast_sandbox: SandboxServer, tmp_path: Path) -> None:
    """Levels and families are looked up by name; one the tenant lacks holds the people
    naming it, with the remedy, until sync.create_job_levels lets apply create it (a dry
    run creates nothing). Then nothing is read or written again, and a resync reads the
    ids back as the same names."""
    sb = fast_sandbox
    sb.configure(app_id="cli_profile_jobs")
    sb.tenant.create_catalog(LEVEL, {"name": "P7", "status": True})
    sb.tenant.create_catalog(FAMILY, {"name": "研发", "status": True})
    src = tmp_path / "src"
    write_jobs(src, {"E1": ("P7", "研发"), "E2": ("P9", "研发"), "E3": ("P7", "")})
    cfg = config(sb, src, tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    out = run(cfg, ledger)
    assert [str(i) for i in out.plan.issues] == [
        "employees.csv:3: employee E2: job_level: job level 'P9' is not in Feishu: add it "
        "there (管理后台 › 组织架构 › 职级), or set sync.create_job_levels: true (held back)"]
    assert jobs_in_feishu(sb) == {"E1": ("P7", "研发"), "E3": ("P7", "")}
    e1 = sdk_user(sb, "E1")
    assert (e1.job_level_id, e1.job_family_id) == tuple(
        next(i for i, e in sb.tenant.catalogs[c].items() if e["name"] == n)
        for c, n in (("job_level", "P7"), ("job_family", "研发")))

    cfg = config(sb, src, tmp_path / "l.db", sync={"create_job_levels": True})
    dry = asyncio.run(run_once(cfg, ledger, apply=False))
    create = next(op for op in dry.plan.operations if op.key == "E2")
    assert create.payload["job_level_id"] == "(new job_level P9)"
    assert sorted(e["name"] for e in sb.tenant.catalogs["job_level"].values()) == ["P7"]
    assert run(cfg, ledger).exit_code == 0
    assert jobs_in_feishu(sb) == {"E1": ("P7", "研发"), "E2": ("P9", "研发"), "E3": ("P7", "")}

    before = len(sb.requests())
    assert run(cfg, ledger).plan.empty
    assert len(sb.requests()) == before  # the cached catalog: not even a read
    resync = asyncio.run(run_once(cfg, ledger, apply=True, full=True))
    assert resync.plan.empty
    write_jobs(src, {"E1": ("P9", "研发"), "E2": ("P9", ""), "E3": ("P7", "")})
    before = len(sb.requests())
    out = run(cfg, ledger)
    assert sorted((r["path"].rsplit("/", 1)[1], r["body"]) for r in writes(sb, before)) == [
        ("E1", {"job_level_id": sb.tenant.catalogs["job_level"][
            next(i for i, e in sb.tenant.catalogs["job_level"].items() if e["name"] == "P9")
        ]["job_level_id"]}),
        ("E2", {"job_family_id": ""})]


def test_custom_employee_types_by_name(fast_sandbox: SandboxServer, tmp_path: Path) -> None:
    """A custom employee type is looked up by name and sent as its enum_value (created by
    apply when sync.create_employee_types allows); dropping it sends the built-in type back."""
    sb = fast_sandbox
    sb.configure(app_id="cli_profile_types")
    sb.tenant.create_employee_type({"content": "劳务派遣", "enum_type": 2, "enum_status": 1})
    src = tmp_path / "src"
    write(src, PEOPLE, ())
    emp = src / "employees.csv"
    lines = emp.read_text(encoding="utf-8").splitlines()
    types = {"E1": "劳务派遣", "E2": "退休返聘"}
    emp.write_text("\n".join([lines[0] + ",employee_type,custom_employee_type", *(
        f"{line},intern,{types.get(line.split(',')[0], '')}" for line in lines[1:])]) + "\n",
        encoding="utf-8")
    cfg = config(sb, src, tmp_path / "l.db", sync={"create_employee_types": True})
    ledger = Ledger(cfg.ledger.url)
    assert run(cfg, ledger).exit_code == 0
    made = {e["content"]: e["enum_value"] for e in sb.tenant.employee_type_enums().values()}
    assert made == {"劳务派遣": "6", "退休返聘": "7"}
    assert {u.user_id: u.employee_type for u in sb.tenant.users.values()} == {
        "E1": 6, "E2": 7, "E3": 2}
    assert sdk_user(sb, "E2").employee_type == 7

    before = len(sb.requests())
    assert run(cfg, ledger).plan.empty
    assert asyncio.run(run_once(cfg, ledger, apply=True, full=True)).plan.empty
    assert writes(sb, before) == []

    emp.write_text("\n".join([lines[0] + ",employee_type,custom_employee_type", *(
        f"{line},intern,{'劳务派遣' if line.startswith('E1') else ''}" for line in lines[1:])])
        + "\n", encoding="utf-8")
    before = len(sb.requests())
    assert run(cfg, ledger).exit_code == 0
    assert [(r["path"].rsplit("/", 1)[1], r["body"]) for r in writes(sb, before)] == [
        ("E2", {"employee_type": 2})]


def test_user_order_in_the_primary_department(fast_sandbox: SandboxServer,
                                              tmp_path: Path) -> None:
    """The ``order`` column is the person's place in their primary department (orders[]
    .user_order, sent with department_ids: a membership PATCH); a change is one such PATCH,
    then nothing."""
    sb = fast_sandbox
    src = tmp_path / "src"
    cfg = config(sb, src, tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)

    def write_orders(orders: dict[str, str]) -> None:
        write(src, PEOPLE, ())
        emp = src / "employees.csv"
        lines = emp.read_text(encoding="utf-8").splitlines()
        emp.write_text("\n".join([lines[0] + ",order", *(
            f"{line},{orders.get(line.split(',')[0], '')}" for line in lines[1:])]) + "\n",
            encoding="utf-8")

    def user_orders() -> dict[str, int]:
        return {u.user_id: u.orders[0].user_order for u in sb.tenant.users.values()}

    write_orders({"E2": "20", "E3": "１０"})
    assert run(cfg, ledger).exit_code == 0
    assert user_orders() == {"E1": 0, "E2": 20, "E3": 10}
    write_orders({"E2": "5", "E3": "10"})
    before = len(sb.requests())
    out = run(cfg, ledger)
    assert [op.kind.value for op in out.plan.operations] == ["user.move"]
    assert [(r["path"].rsplit("/", 1)[1], r["body"]) for r in writes(sb, before)] == [
        ("E2", {"department_ids": ["D2"], "orders": [
            {"department_id": "D2", "department_order": 1, "user_order": 5}]})]
    assert user_orders() == {"E1": 0, "E2": 5, "E3": 10}
    before = len(sb.requests())
    assert run(cfg, ledger).plan.empty
    assert asyncio.run(run_once(cfg, ledger, apply=True, full=True)).plan.empty
    assert writes(sb, before) == []


def test_a_level_renamed_in_hr_under_its_code_renames_the_entry(fast_sandbox: SandboxServer,
                                                                 tmp_path: Path) -> None:
    """With job_level_code / job_family_code, a new name under a known code is a rename of
    that entry (its holders keep pointing at it), not a new entry; then nothing is written."""
    sb = fast_sandbox
    sb.configure(app_id="cli_profile_codes")
    src = tmp_path / "src"

    def week(level: str, family: str) -> None:
        write_jobs(src, {"E1": (level, family), "E2": (level, family)})
        lines = (src / "employees.csv").read_text(encoding="utf-8").splitlines()
        out = [lines[0] + ",job_level_code,job_family_code"]
        out += [line + (",L7,F1" if line.split(",")[0] in ("E1", "E2") else ",,")
                for line in lines[1:]]
        (src / "employees.csv").write_text("\n".join(out) + "\n", encoding="utf-8")

    week("P7", "研发")
    cfg = config(sb, src, tmp_path / "l.db",
                 sync={"create_job_levels": True, "create_job_families": True})
    ledger = Ledger(cfg.ledger.url)
    assert run(cfg, ledger).exit_code == 0
    level_ids = set(sb.tenant.catalogs["job_level"])
    family_ids = set(sb.tenant.catalogs["job_family"])

    week("P7 资深", "研发与工程")
    dry = asyncio.run(run_once(cfg, ledger, apply=False))
    assert sorted(e["name"] for e in sb.tenant.catalogs["job_level"].values()) == ["P7"]
    assert {op.key for op in dry.plan.operations} <= {"E1", "E2"}
    out = run(cfg, ledger)
    assert out.exit_code == 0
    assert set(sb.tenant.catalogs["job_level"]) == level_ids
    assert set(sb.tenant.catalogs["job_family"]) == family_ids
    assert [e["name"] for e in sb.tenant.catalogs["job_level"].values()] == ["P7 资深"]
    assert [e["name"] for e in sb.tenant.catalogs["job_family"].values()] == ["研发与工程"]
    assert jobs_in_feishu(sb) == {"E1": ("P7 资深", "研发与工程"), "E2": ("P7 资深", "研发与工程"),
                                  "E3": ("", "")}
    before = len(sb.requests())
    assert run(cfg, ledger).plan.empty
    assert writes(sb, before) == []
    assert asyncio.run(run_once(cfg, ledger, apply=True, full=True)).plan.empty
