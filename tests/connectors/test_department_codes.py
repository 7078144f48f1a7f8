"""connectors.csvfile: department paths paired with stable codes (source.department_code)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connectors.csvfile import CsvConnector
from orgsync.config import config_from_dict
from orgsync.errors import ConfigError, SourceError
from orgsync.ledger import Ledger
from orgsync.runner import run_once
from orgsync.sandbox import SandboxServer
from orgsync.validate import validate
from tests.sandbox_run import SCALE, read_back, run

HEADER = "employee_id,name,email,mobile,部门,部门编码\n"
ROWS = ("E1,张三,zs@example.com,13800138000,研发中心/平台部/基础架构组,D01/D0105/D010502\n"
        'E2,李四,ls@example.com,13800138001,"研发中心 / 平台部;销售部","D01/D0105;D02"\n'
        "E3,王五,ww@example.com,13800138002,销售部,D02\n")


def read(tmp_path: Path, text: str, **options: Any) -> Any:
    (tmp_path / "employees.csv").write_text(text)
    opts = {"employees": "employees.csv", "department_path": "部门",
            "department_code": "部门编码", **options}
    return CsvConnector.from_config(opts, base_dir=tmp_path, file="orgsync.yaml").read()


def tree(data: Any) -> dict[str, tuple[str, str | None]]:
    return {k: (d.name, d.parent_key) for k, d in data.snapshot.departments.items()}


def test_codes_key_each_level(tmp_path: Path) -> None:
    """Each level is keyed by its code; the path gives names; the level above the parent."""
    data = validate(read(tmp_path, HEADER + ROWS))
    assert data.issues == []
    assert tree(data) == {
        "D01": ("研发中心", None), "D0105": ("平台部", "D01"),
        "D010502": ("基础架构组", "D0105"), "D02": ("销售部", None),
    }
    assert data.snapshot.employees["E2"].department_keys == ("D0105", "D02")


def test_a_rename_keeps_the_keys(tmp_path: Path) -> None:
    """Renaming 研发中心 in the export changes one department's name, no key."""
    before = read(tmp_path, HEADER + ROWS)
    after = read(tmp_path, HEADER + ROWS.replace("研发中心", "研发与技术中心"))
    assert set(tree(after)) == set(tree(before))
    assert {k for k in tree(after) if tree(after)[k] != tree(before)[k]} == {"D01"}
    assert after.snapshot.employees == before.snapshot.employees


def test_mismatched_levels_hold_the_row(tmp_path: Path) -> None:
    """A row whose codes do not have the path's shape is held with a clear issue."""
    data = read(tmp_path, HEADER + ROWS
                + "E4,赵六,zl@example.com,13800138003,研发中心/平台部,D01\n"
                + "E5,钱七,qq@example.com,13800138004,研发中心;销售部,D01\n"
                + "E6,孙八,sb@example.com,13800138005,销售部,\n")
    assert [str(i) for i in data.issues] == [
        "employees.csv:5: employee E4: department_keys: 'D01' has 1 level(s) but the path "
        "'研发中心/平台部' has 2; give one code per level, separated by '/' (held back)",
        "employees.csv:6: employee E5: department_keys: 'D01' has 1 code path(s) but "
        "'研发中心;销售部' has 2 department path(s); give one code path per path (held back)",
        "employees.csv:7: employee E6: department_keys: has the department path '销售部' but no "
        "department code; give one code per level (held back)",
    ]
    assert data.held_employees == {"E4", "E5", "E6"}
    assert set(tree(data)) == {"D01", "D0105", "D010502", "D02"}


def test_a_code_placed_twice_is_held(tmp_path: Path) -> None:
    """A code two rows name differently (half an export renamed) holds that department,
    and validation holds the people in it."""
    data = validate(read(tmp_path, HEADER + ROWS
                         + "E4,赵六,zl@example.com,13800138003,市场部,D02\n"))
    assert [str(i) for i in data.issues if i.key == "D02"] == [
        "department D02: key: code 'D02' is '销售部' under top level on one row and '市场部' "
        "under top level on another; one code per department (held back)"]
    assert "D02" in data.held_departments
    assert {"E2", "E3", "E4"} <= data.held_employees


def test_mapping_mode_pairs_codes_too(tmp_path: Path) -> None:
    """In mapping mode department_code is a rule like department_path (here a template)."""
    text = ("工号,姓名,手机,一级部门,二级部门,一级编码,二级编码\n"
            "0001,张三,13800138000,研发中心,平台部,D01,D0105\n")
    data = read(tmp_path, text, mapping={"employees": {"key": "工号", "name": "姓名",
                                                        "mobile": "手机"}},
                department_path="{一级部门}/{二级部门}", department_code="{一级编码}/{二级编码}")
    assert data.issues == []
    assert tree(data) == {"D01": ("研发中心", None), "D0105": ("平台部", "D01")}
    assert data.snapshot.employees["0001"].department_keys == ("D0105",)


def test_minimal_path_file(tmp_path: Path) -> None:
    """employee_id,name,email,mobile and a path column are enough (no codes either)."""
    (tmp_path / "employees.csv").write_text(
        "employee_id,name,email,mobile,部门\nE1,张三,zs@example.com,13800138000,研发中心/平台部\n")
    data = validate(CsvConnector.from_config(
        {"employees": "employees.csv", "department_path": "部门"}, base_dir=tmp_path,
        file="orgsync.yaml").read())
    assert data.issues == []
    assert data.snapshot.employees["E1"].department_keys == ("研发中心/平台部",)


def test_codes_need_a_path() -> None:
    """department_code without department_path is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=r"pairs with source\.department_path") as err:
        CsvConnector.from_config({"employees": "e.csv", "departments": "d.csv",
                                  "department_code": "编码"}, base_dir=Path("/x"), file="o.yaml")
    assert err.value.key == "source.department_code"


def test_leaders_and_orders_from_columns(tmp_path: Path) -> None:
    """department_leader flags the leader of the row's primary department, department_order
    gives its order; a second leader or another order for it is a warning (first row kept);
    a flag that is not yes/no holds the row."""
    text = ("employee_id,name,email,mobile,部门,部门编码,负责人,部门排序\n"
            "E1,张三,zs@example.com,13800138000,研发中心,D01,是,10\n"
            "E2,李四,ls@example.com,13800138001,研发中心/平台部,D01/D0105,Y,\n"
            "E3,王五,ww@example.com,13800138002,研发中心/平台部,D01/D0105,是,\n"
            "E4,赵六,zl@example.com,13800138003,研发中心,D01,否,20\n"
            "E5,钱七,qq@example.com,13800138004,销售部,D02,也许,\n"
            "E6,孙八,sb@example.com,13800138005,销售部,D02,,\n")
    data = read(tmp_path, text, columns={"employees": {"department_leader": "负责人",
                                                       "department_order": "部门排序"}})
    depts = data.snapshot.departments
    assert [(k, d.leader_key, d.order) for k, d in sorted(depts.items())] == [
        ("D01", "E1", 10), ("D0105", "E2", None), ("D02", None, None)]
    assert [str(i) for i in data.issues] == [
        "employees.csv:6: employee E5: department_leader: '也许' is not yes or no (是/否, "
        "true/false, 1/0) (held back)",
        "employees.csv:4: employee E3: department_leader: D0105 is already led by 'E2' (an "
        "earlier row) (cleared)",
        "employees.csv:5: employee E4: department_order: 20 differs from the order 10 an "
        "earlier row gives D01, which is kept (cleared)",
    ]


def test_leader_columns_need_paths() -> None:
    """department_leader/department_order columns without department_path: ConfigError."""
    with pytest.raises(ConfigError, match="sets a department from a path column") as err:
        CsvConnector.from_config({"employees": "e.csv", "departments": "d.csv",
                                  "columns": {"employees": {"department_leader": "负责人"}}},
                                 base_dir=Path("/x"), file="o.yaml")
    assert err.value.key == "source.columns.employees.department_leader"


def test_missing_path_column_names_required_and_optional(tmp_path: Path) -> None:
    """Path mode's error lists its own required columns (the path's header among them)."""
    with pytest.raises(SourceError) as caught:
        read(tmp_path, "employee_id,name,email,mobile,部门编码\n")
    assert str(caught.value) == (
        f"{tmp_path / 'employees.csv'}: missing required column 部门 (for department_path) "
        "(found: 'employee_id', 'name', 'email', 'mobile', '部门编码'); rename the column or map "
        "it with source.columns. Required columns: employee_id, name, email, mobile, 部门; "
        "optional: en_name, manager_id, job_title, employee_type, join_date, city, status, "
        "employee_no, work_station, gender, job_level, job_family, custom_employee_type, order, "
        "dotted_line_manager_ids, avatar, job_level_code, job_family_code, 部门编码, department_leader, "
        "department_order")


EXPORT = (
    "工号,姓名,邮箱,手机,部门,部门编码,负责人\n"
    "E1,张三,Zhang.San@Example.COM,86-138-1234-5678,研发中心,D01,是\n"
    "E2,李四,li.si@example.com,86 13812345671,研发中心/平台部,D01/D0105\n"
    "E3,王五,WANG.WU@example.com,8613812345672,研发中心/平台部/基础架构组,D01/D0105/D010502\n"
    "E4,赵六,zhao.liu@example.com,0086 138 1234 5676,研发中心/移动部,D01/D0107\n"
    "E5,钱七,qian.qi@example.com,+852 9123 4567,销售部,D02\n"
)


def test_a_rename_in_the_export_is_one_patch_in_feishu(sandbox: SandboxServer,
                                                       tmp_path: Path) -> None:
    """Apply; rename 研发中心 → 研发与技术中心 in the export: the plan is exactly one
    department.update (no create, delete or move); applied, Feishu has the new name.
    Mobiles in every export form and upper-case emails arrive normalised."""
    sandbox.configure(rate_scale=SCALE)
    (tmp_path / "employees.csv").write_text(EXPORT)
    cfg = config_from_dict({
        "version": 1,
        "feishu": {"base_url": sandbox.base_url, "app_id": sandbox.config.app_id,
                   "app_secret": sandbox.config.app_secret, "rate_scale": SCALE},
        "source": {"type": "csv", "employees": "employees.csv",
                   "columns": {"employees": {"employee_id": "工号", "name": "姓名",
                                             "email": "邮箱", "mobile": "手机",
                                             "department_leader": "负责人"}},
                   "department_path": "部门", "department_code": "部门编码"},
        "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}"},
    }, file="<test>", base_dir=tmp_path)
    ledger = Ledger(cfg.ledger.url)
    first = run(cfg, ledger)
    assert first.exit_code == 0
    people = read_back(cfg).users
    assert {k: (u.record.email, u.record.mobile) for k, u in people.items()} == {
        "E1": ("zhang.san@example.com", "+8613812345678"),
        "E2": ("li.si@example.com", "+8613812345671"),
        "E3": ("wang.wu@example.com", "+8613812345672"),
        "E4": ("zhao.liu@example.com", "+8613812345676"),
        "E5": ("qian.qi@example.com", "+85291234567"),
    }

    (tmp_path / "employees.csv").write_text(EXPORT.replace("研发中心", "研发与技术中心"))
    planned = asyncio.run(run_once(cfg, ledger, apply=False)).plan
    assert [(op.kind.value, op.key) for op in planned.operations] == [
        ("department.update", "D01")]
    assert planned.operations[0].payload["name"] == "研发与技术中心"
    assert run(cfg, ledger).exit_code == 0
    after = read_back(cfg).departments
    assert after["D01"].record.leader_key == "E1"
    assert {k: (d.record.name, d.record.parent_key) for k, d in after.items()} == {
        "D01": ("研发与技术中心", None), "D0105": ("平台部", "D01"),
        "D010502": ("基础架构组", "D0105"), "D0107": ("移动部", "D01"), "D02": ("销售部", None),
    }
    assert asyncio.run(run_once(cfg, ledger, apply=False)).plan.operations == ()
