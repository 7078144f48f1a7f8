"""connectors.xlsx: the CSV formats read from real .xlsx workbooks (written by openpyxl)."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import subprocess
import sys
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.styles import Font

from connectors.csvfile import CsvConnector
from connectors.registry import build_connector
from orgsync.config import SourceConfig
from orgsync.errors import ConfigError, SourceError
from orgsync.model import Department, Employee
from orgsync.synth import generate_org, write_csv

EMP_HEADER = ["employee_id", "name", "en_name", "email", "mobile", "department_ids",
              "manager_id", "job_title", "employee_type", "join_date", "city", "status"]


def connector(tmp_path: Path, **options: Any) -> Any:
    return build_connector(SourceConfig(type="xlsx", options=options, base_dir=tmp_path,
                                        file=str(tmp_path / "orgsync.yaml")))


def save_as_zh_cn(path: Path) -> None:
    """Rewrite the custom date formats to the built-in ids Excel's zh-CN locale writes
    (31 ``yyyy"年"m"月"d"日"``, 57 ``yyyy"年"m"月"``), which carry no format string."""
    data = {i.filename: zipfile.ZipFile(path).read(i.filename)
            for i in zipfile.ZipFile(path).infolist()}
    styles = data["xl/styles.xml"].decode()
    for number, code in re.findall(r'<numFmt numFmtId="(\d+)" formatCode="([^"]*)"', styles):
        builtin = "31" if "日" in code else "57" if "年" in code else number
        styles = styles.replace(f'numFmtId="{number}"', f'numFmtId="{builtin}"')
    data["xl/styles.xml"] = re.sub(r"<numFmts.*?</numFmts>", "", styles).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, content in data.items():
            out.writestr(name, content)


def roster(tmp_path: Path) -> Path:
    """花名册.xlsx as HR exports it: a title row, a two-row header with merged cells, dates
    as date cells (zh-CN ids), text and serial numbers, numbers for mobiles, a department
    merged over its people's rows, formatted empty rows at the end."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "说明"
    ws["A1"] = "这张表不是花名册"
    ws = wb.create_sheet("花名册")
    ws.append(["某某公司员工花名册 2026年1月"])
    ws.merge_cells("A1:H1")
    ws.append(["工号", "姓名", "联系方式", None, "部门", "入职日期", "类型", "城市"])
    ws.append([None, None, "手机", "邮箱", None, None, None, None])
    for column in "ABEFGH":  # each header merged over both header rows
        ws.merge_cells(f"{column}2:{column}3")
    ws.merge_cells("C2:D2")
    rows: list[list[Any]] = [
        ["E1", "张三", 13800138000, "ZS@example.com", "D1", date(2024, 3, 5), "正式", "北京"],
        ["E2", "李四", "13800138001", "ls@example.com", None, "2024/3/6", "外包", "香港"],
        ["E3", "王五", 13800138002.0, "ww@example.com", None, "2024年3月7日", None, None],
        ["E4", "赵六", "1.38E+10", "zl@example.com", "D1", 45363, None, None],
        [123456789012345678, "钱七", "13800138004", "qq@example.com", "D1", None, None, None],
    ]
    for row in rows:
        ws.append(row)
    ws.merge_cells("E4:E6")  # D1 for E1, E2 and E3
    ws["F4"].number_format = 'yyyy"年"m"月"d"日"'
    for r in range(9, 14):  # formatted, empty trailing rows
        ws.cell(row=r, column=1).font = Font(bold=True)
    departments = wb.create_sheet("部门")
    departments.append(["department_id", "name", "parent_id"])
    departments.append(["D1", "研发中心", None])
    path = tmp_path / "花名册.xlsx"
    wb.save(path)
    save_as_zh_cn(path)
    return path


class TestRoster:
    def test_title_rows_merged_headers_dates_and_numbers(self, tmp_path: Path) -> None:
        """Sheet by name, header row 3 under a title and a merged two-row header: every
        quirk reads as the CSV connector reads its text, and flags what it flags."""
        roster(tmp_path)
        conn = connector(
            tmp_path, employees="花名册.xlsx", departments="花名册.xlsx",
            sheet={"employees": "花名册", "departments": "部门"},
            header_row={"employees": 3},
            columns={"employees": {"employee_id": "工号", "name": "姓名", "mobile": "手机",
                                   "email": "邮箱", "department_ids": "部门",
                                   "join_date": "入职日期", "employee_type": "类型",
                                   "city": "城市"}})

        data = conn.read()

        assert data.snapshot.departments == {"D1": Department(key="D1", name="研发中心")}
        people = data.snapshot.employees
        assert sorted(people) == ["E1", "E2", "E3"]
        assert [(p.mobile, p.email, p.department_keys, p.join_date, p.city)
                for p in people.values()] == [
            ("+8613800138000", "zs@example.com", ("D1",), date(2024, 3, 5), "北京"),
            ("+8613800138001", "ls@example.com", ("D1",), date(2024, 3, 6), "香港"),
            ("+8613800138002", "ww@example.com", ("D1",), date(2024, 3, 7), None),
        ]
        assert people["E2"].employee_type.name == "OUTSOURCED"
        assert [str(i) for i in data.issues] == [
            "花名册.xlsx:7: employee E4: mobile: '1.38E+10' looks like a number Excel turned "
            "into scientific notation; export the column as text (held back)",
            "花名册.xlsx:8: employee 1.23456789012346E+17: key: '1.23456789012346E+17' looks "
            "like a number Excel turned into scientific notation; the digits are lost, export "
            "the column as text (held back)",
        ]
        assert data.employee_rows["E1"] == "花名册.xlsx:4"

    def test_the_same_issues_as_the_csv_of_the_same_cells(self, tmp_path: Path) -> None:
        """A cell Excel mangled is flagged in the words the CSV connector uses."""
        wb = openpyxl.Workbook()
        ws = wb.active
        assert ws is not None
        ws.append(EMP_HEADER)
        ws.append(["E1", "张三", None, None, "1.38E+10", "D1", None, None, None, None, None,
                   None])
        ws.append(["1.38E+10", "李四", None, None, "13800138001", "D1"])
        wb.save(tmp_path / "employees.xlsx")
        dept = openpyxl.Workbook()
        assert dept.active is not None
        dept.active.append(["department_id", "name", "parent_id"])
        dept.active.append(["D1", "研发中心"])
        dept.save(tmp_path / "departments.xlsx")
        with (tmp_path / "employees.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            for row in openpyxl.load_workbook(tmp_path / "employees.xlsx").active.values:  # type: ignore[union-attr]
                w.writerow(["" if c is None else c for c in row])
        (tmp_path / "departments.csv").write_text("department_id,name,parent_id\nD1,研发中心,\n",
                                                  encoding="utf-8")
        from_xlsx = connector(tmp_path, employees="employees.xlsx",
                              departments="departments.xlsx").read()
        from_csv = CsvConnector(tmp_path / "departments.csv", tmp_path / "employees.csv").read()
        assert [str(i).replace(".xlsx", "") for i in from_xlsx.issues] == \
            [str(i).replace(".csv", "") for i in from_csv.issues]
        assert len(from_xlsx.issues) == 2
        assert from_xlsx.held_rows == [dataclasses.replace(r, where=r.where.replace(
            ".csv", ".xlsx")) for r in from_csv.held_rows]


class TestSameAsCsv:
    def test_a_synthetic_org_reads_exactly_as_its_csv(self, tmp_path: Path) -> None:
        """Departments file and employees file as workbooks: the snapshot equals the CSV's."""
        org = generate_org(employees=400, departments=30)
        dept_csv, emp_csv = write_csv(org, tmp_path)
        for source in (dept_csv, emp_csv):
            wb = openpyxl.Workbook()
            ws = wb.active
            assert ws is not None
            with source.open(encoding="utf-8") as f:
                for row in csv.reader(f):
                    ws.append(row)
            wb.save(source.with_suffix(".xlsx"))
        data = connector(tmp_path, employees="employees.xlsx",
                         departments="departments.xlsx").read()
        assert data.issues == []
        assert data.snapshot == org

    def test_paths_codes_and_mapping_mode(self, tmp_path: Path) -> None:
        """department_path + department_code and the shared mapping work on a sheet."""
        wb = openpyxl.Workbook()
        ws = wb.active
        assert ws is not None
        ws.append(["工号", "姓名", "邮箱", "手机", "部门", "部门编码", "入职"])
        ws.append(["E1", "张三", "zs@example.com", 13800138000, "研发中心/平台部", "D01/D0101",
                   datetime(2024, 3, 5)])
        wb.save(tmp_path / "hr.xlsx")
        data = connector(tmp_path, employees="hr.xlsx", department_path="{部门}",
                         department_code="{部门编码}",
                         mapping={"employees": {"key": "工号", "name": "姓名", "email": "邮箱",
                                                "mobile": "手机", "join_date": "入职"}}).read()
        assert data.issues == []
        assert data.snapshot.departments["D0101"] == Department(key="D0101", name="平台部",
                                                                parent_key="D01")
        assert data.snapshot.employees["E1"] == Employee(
            key="E1", name="张三", department_keys=("D0101",), email="zs@example.com",
            mobile="+8613800138000", join_date=date(2024, 3, 5))


class TestRefusals:
    def test_bad_options_are_config_errors(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as caught:
            connector(tmp_path, employees="hr.xlsx", department_path="部门", encoding="gb18030")
        assert (caught.value.key, caught.value.remedy) == (
            "source.encoding", "remove it; choose the sheet with source.sheet and the header row "
                               "with source.header_row")
        with pytest.raises(ConfigError) as caught:
            connector(tmp_path, employees="hr.xlsx", department_path="部门", header_row=0)
        assert caught.value.key == "source.header_row"
        with pytest.raises(ConfigError) as caught:
            connector(tmp_path, employees="hr.xlsx", department_path="部门",
                      sheet={"staff": "x"})
        assert caught.value.key == "source.sheet.staff"

    def test_missing_sheet_header_or_file_is_a_source_error(self, tmp_path: Path) -> None:
        roster(tmp_path)
        cases = [({"sheet": "Sheet9"}, "no sheet named 'Sheet9': sheets 1 '说明', 2 '花名册', "
                                       "3 '部门'; check source.sheet"),
                 ({"sheet": 4}, "has 3 sheet(s), no sheet 4: sheets 1 '说明', 2 '花名册', "
                                "3 '部门'"),
                 ({"sheet": 2, "header_row": 40}, "sheet '花名册' has no header in row 40")]
        for options, message in cases:
            with pytest.raises(SourceError, match=re.escape(message)):
                connector(tmp_path, employees="花名册.xlsx", department_path="部门",
                          **options).read()
        (tmp_path / "fake.xlsx").write_text("工号,姓名\n", encoding="utf-8")
        with pytest.raises(SourceError, match="cannot read as an Excel workbook"):
            connector(tmp_path, employees="fake.xlsx", department_path="部门").read()

    def test_a_workbook_given_to_the_csv_type_names_the_xlsx_type(self, tmp_path: Path) -> None:
        roster(tmp_path)
        with pytest.raises(SourceError, match=r"for \.xlsx set source\.type: xlsx"):
            CsvConnector(None, tmp_path / "花名册.xlsx", columns={}).read()


def test_preview_source_reads_a_workbook(tmp_path: Path) -> None:
    """`orgsync preview-source` (the console script, as a process) on an xlsx config."""
    roster(tmp_path)
    (tmp_path / "orgsync.yaml").write_text(
        "version: 1\nfeishu: {app_id: x, app_secret: y}\n"
        "source:\n  type: xlsx\n  employees: 花名册.xlsx\n  sheet: 花名册\n  header_row: 3\n"
        "  department_path: 部门\n"
        "  columns: {employees: {employee_id: 工号, name: 姓名, mobile: 手机, email: 邮箱,"
        " join_date: 入职日期, city: 城市}}\n", encoding="utf-8")
    script = Path(sys.executable).with_name("orgsync")
    done = subprocess.run([str(script), "preview-source", "-c", str(tmp_path / "orgsync.yaml"),
                           "--format", "json"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(e["key"] for e in report["employees"]) == ["E1", "E2", "E3"]
