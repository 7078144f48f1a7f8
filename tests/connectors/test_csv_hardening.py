"""connectors.csvfile hardening: encodings, delimiters, Excel damage, department paths, mapping."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from connectors.csvfile import CsvConnector
from orgsync.errors import ConfigError, SourceError
from orgsync.model import EmployeeType, Status
from orgsync.synth import generate_org, write_csv
from orgsync.validate import validate

EMP_HEADER = ("employee_id,name,en_name,email,mobile,department_ids,manager_id,job_title,"
              "employee_type,join_date,city,status")
PATH_HEADER = EMP_HEADER.replace("department_ids", "部门")


def connector(tmp_path: Path, files: dict[str, bytes], **options: Any) -> CsvConnector:
    """Write ``files`` into ``tmp_path`` and build a csv connector from ``options``."""
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    opts = {"employees": "employees.csv", **options}
    if "departments.csv" in files:
        opts.setdefault("departments", "departments.csv")
    return CsvConnector.from_config(opts, base_dir=tmp_path, file="orgsync.yaml")


PATHS = (PATH_HEADER + "\n"
         "E1,张三,,,13800138000,研发中心/平台部/基础架构组,,,,,,\n"
         'E2,李四,,,13800138001,"研发中心 / 平台部;销售部",E1,,,,,\n'
         "E3,王五,,,13800138002,销售部,E1,,,,,\n")


class TestEncodingsAndDelimiters:
    @pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
    def test_auto_encoding(self, tmp_path: Path, encoding: str) -> None:
        """encoding: auto reads UTF-8 with or without BOM and GB18030 (Excel zh-CN) alike."""
        conn = connector(tmp_path, {"employees.csv": PATHS.encode(encoding)},
                         encoding="auto", department_path="部门")
        data = conn.read()
        assert data.issues == []
        assert data.snapshot.employees["E1"].name == "张三"

    def test_utf16_tab_export(self, tmp_path: Path) -> None:
        """Excel's "Unicode text" (UTF-16 with BOM, tab-separated) with auto/auto."""
        text = PATHS.replace(",", "\t").replace('"研发中心 / 平台部;销售部"', "研发中心/平台部;销售部")
        conn = connector(tmp_path, {"employees.csv": text.encode("utf-16")},
                         encoding="auto", delimiter="auto", department_path="部门")
        data = conn.read()
        assert data.issues == []
        assert data.snapshot.employees["E2"].department_keys == ("研发中心/平台部", "销售部")

    def test_semicolon_delimiter_with_quoted_multiline_cells(self, tmp_path: Path) -> None:
        """delimiter: auto picks ';' (de/fr Excel); quoted cells keep ';' and line breaks."""
        text = (PATH_HEADER.replace(",", ";") + "\r\n"
                'E1;"Zhang; San";;;13800138000;销售部;;"Senior\r\nEngineer";;;;\r\n'
                "E2;李四;;;13800138001;销售部;;;;;;\r\n")
        conn = connector(tmp_path, {"employees.csv": text.encode()}, delimiter="auto",
                         department_path="部门")
        emps = conn.read().snapshot.employees
        assert (emps["E1"].name, emps["E1"].job_title) == ("Zhang; San", "Senior\r\nEngineer")
        assert set(emps) == {"E1", "E2"}

    def test_undecodable_file_with_auto(self, tmp_path: Path) -> None:
        """Bytes no candidate encoding reads abort the read, naming what was tried."""
        conn = connector(tmp_path, {"employees.csv": PATH_HEADER.encode() + b"\nE1,\x80\xff\n"},
                         encoding="auto", department_path="部门")
        with pytest.raises(SourceError, match=r"cannot decode as utf-8-sig or gb18030"):
            conn.read()

    def test_auto_reads_gb18030_and_refuses_big5_it_would_misread(self, tmp_path: Path) -> None:
        """A zh-CN export (GB18030) of 200 generated people is read. Big5 bytes decode as
        GB18030 too, as mojibake: auto refuses that file, naming the candidates (most
        plausible first) and the remedy; the explicit encoding reads it."""
        write_csv(generate_org(employees=200, departments=20, levels=4), tmp_path / "gb")
        for name in ("departments.csv", "employees.csv"):
            path = tmp_path / "gb" / name
            path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))
        gb = CsvConnector.from_config({"departments": "departments.csv", "employees":
                                       "employees.csv", "encoding": "auto"},
                                      base_dir=tmp_path / "gb", file="orgsync.yaml")
        data = gb.read()
        assert (len(data.snapshot.employees), data.issues) == (200, [])

        text = (PATH_HEADER.replace("部门", "部門") + "\n" + "".join(
            f"E{i},{name},,,1380013800{i},營運處/資訊部,,資深工程師,,,台北,\n"
            for i, name in enumerate(("陳志明", "林淑芬", "黃建國", "張雅婷", "李宗翰"))))
        conn = connector(tmp_path, {"employees.csv": text.encode("big5")},
                         encoding="auto", department_path="部門")
        with pytest.raises(SourceError) as err:
            conn.read()
        assert str(err.value) == (
            f"{tmp_path / 'employees.csv'}: encoding: auto cannot tell this file's encoding with "
            "confidence: it is not UTF-8, and the share of its non-ASCII letters that are common "
            "hanzi reads as gb18030, 32%; as big5, 100%. Nothing was read. Set source.encoding "
            "to the encoding the file was saved in, one of big5, gb18030 (most plausible first)")
        big5 = connector(tmp_path, {}, encoding="big5", department_path="部門")
        assert big5.read().snapshot.employees["E0"].name == "陳志明"


class TestExcelDamage:
    def test_scientific_notation_is_an_error(self, tmp_path: Path) -> None:
        """Ids and mobiles that Excel turned into 1.38E+10 hold the row; leading zeros survive."""
        text = (PATH_HEADER + ",employee_no\n"
                "000123,张三,,,13800138000,销售部,,,,,,,000123\n"
                "E2,李四,,,1.38E+10,销售部,,,,,,,\n"
                "1.23457E+11,王五,,,13800138002,销售部,,,,,,,\n"
                "E4,赵六,,,13800138003,销售部,1.2E+5,,,,,,7.1E+3\n")
        data = validate(connector(tmp_path, {"employees.csv": text.encode()},
                                  department_path="部门").read())
        assert [str(i) for i in data.issues] == [
            "employees.csv:4: employee 1.23457E+11: key: '1.23457E+11' looks like a number Excel "
            "turned into scientific notation; the digits are lost, export the column as text "
            "(held back)",
            "employees.csv:3: employee E2: mobile: '1.38E+10' looks like a number Excel turned "
            "into scientific notation; export the column as text (held back)",
            "employees.csv:5: employee E4: employee_no: '7.1E+3' looks like a number Excel "
            "turned into scientific notation; the digits are lost, export the column as text "
            "(held back)",
            "employees.csv:5: employee E4: manager_key: '1.2E+5' looks like a number Excel "
            "turned into scientific notation; the digits are lost, export the column as text "
            "(held back)",
        ]
        assert data.snapshot.employees["000123"].employee_no == "000123"

    def test_number_like_ids_that_excel_did_not_touch_are_kept_whole(self, tmp_path: Path) -> None:
        """Ids that start like a number get the exact check; the record is otherwise intact."""
        text = (PATH_HEADER + ",employee_no\n"
                "1E5A,张三,,,13800138000,销售部,7ELEVEN,,,,,,00012\n"
                "7ELEVEN,李四,,,13800138001,销售部,,,,,,,0E\n")
        data = validate(connector(tmp_path, {"employees.csv": text.encode()},
                                  department_path="部门").read())
        assert data.issues == []
        first, second = data.snapshot.employees["1E5A"], data.snapshot.employees["7ELEVEN"]
        assert (first.name, first.manager_key, first.employee_no) == ("张三", "7ELEVEN", "00012")
        assert (second.name, second.employee_no) == ("李四", "0E")


class TestDepartmentPaths:
    def test_tree_from_paths(self, tmp_path: Path) -> None:
        """department_path builds the tree; spaces around '/' are ignored; ';' = several."""
        data = connector(tmp_path, {"employees.csv": PATHS.encode()},
                         department_path="部门").read()
        depts = data.snapshot.departments
        assert {k: (d.name, d.parent_key) for k, d in depts.items()} == {
            "研发中心": ("研发中心", None),
            "研发中心/平台部": ("平台部", "研发中心"),
            "研发中心/平台部/基础架构组": ("基础架构组", "研发中心/平台部"),
            "销售部": ("销售部", None),
        }
        assert data.snapshot.employees["E2"].department_keys == ("研发中心/平台部", "销售部")
        assert validate(data).issues == []

    def test_custom_separator(self, tmp_path: Path) -> None:
        """path_separator: '>' reads 'HQ > R&D'."""
        text = PATH_HEADER + "\nE1,张三,,,13800138000,HQ > R/D,,,,,,\n"
        data = connector(tmp_path, {"employees.csv": text.encode()}, department_path="部门",
                         path_separator=">").read()
        assert sorted(data.snapshot.departments) == ["HQ", "HQ>R/D"]
        errors = validate(data).errors()  # Feishu rejects '/' in a name
        assert [(i.key, i.field) for i in errors] == [("HQ>R/D", "name"),
                                                     ("E1", "department_keys")]


HR_EXPORT = ("工号,姓名,手机,邮箱,一级部门,二级部门,用工类型,入职日期,直属上级,状态\n"
             "0001,张三,138 0013 8000, ZS@Example.com ,研发中心,平台部,正式员工,2024/3/5,,在职\n"
             "0002,李四,+1 (415) 555-2671,ls@example.com,研发中心,,实习生,05.03.2024,0001,在职\n"
             "0003,王五,13800138002,ww@example.com,销售部,,合同工,45356,0001,离职\n"
             "0004,赵六,12345,zl@example.com,销售部,,临时工,3/5/2024,0001,在职\n")
MAPPING = {"employees": {
    "key": "工号", "name": "姓名", "mobile": "手机",
    "email": {"from": "邮箱", "transforms": ["lower"]},
    "manager_key": "直属上级", "join_date": "入职日期",
    "employee_type": {"from": "用工类型", "map": {"正式员工": "regular", "实习生": "intern",
                                                "合同工": "contractor"}},
    "status": "状态", "city": {"value": "北京"},
}}


class TestMappingMode:
    def test_hr_export_through_the_shared_mapping(self, tmp_path: Path) -> None:
        """Headers, templates, value maps, dates and E.164 mobiles through source.mapping."""
        conn = connector(tmp_path, {"employees.csv": HR_EXPORT.encode("gb18030")},
                         encoding="auto", mapping=MAPPING, department_path="{一级部门}/{二级部门}")
        data = conn.read()
        e1, e2, e3 = (data.snapshot.employees[k] for k in ("0001", "0002", "0003"))
        assert (e1.mobile, e1.email, e1.employee_type, e1.join_date, e1.city) == (
            "+8613800138000", "zs@example.com", EmployeeType.REGULAR, date(2024, 3, 5), "北京")
        assert e1.department_keys == ("研发中心/平台部",)
        assert (e2.mobile, e2.join_date, e2.department_keys, e2.manager_key) == (
            "+14155552671", date(2024, 3, 5), ("研发中心",), "0001")
        assert (e3.status, e3.join_date, e3.employee_type) == (
            Status.TERMINATED, date(2024, 3, 5), EmployeeType.CONTRACTOR)
        assert [str(i) for i in data.issues] == [
            "employees.csv:5: employee 0004: mobile: '12345' is not a valid mobile number (11 "
            "digits starting with 1, or +<country code><digits>) (held back)",
            "employees.csv:5: employee 0004: join_date: '3/5/2024' is ambiguous (day/month or "
            "month/day?); name the format, e.g. transforms: [{date: ['%d/%m/%Y']}] (held back)",
            "employees.csv:5: employee 0004: employee_type: '临时工' is not in the value map "
            "(known: '正式员工', '实习生', '合同工') (held back)",
        ]
        assert data.held_employees == {"0004"}

    def test_a_rule_naming_a_missing_column_aborts(self, tmp_path: Path) -> None:
        """A mapping that reads a header the file lacks is a SourceError, not empty fields."""
        mapping = {"employees": {**MAPPING["employees"], "name": "名字"}}
        conn = connector(tmp_path, {"employees.csv": HR_EXPORT.encode()}, mapping=mapping,
                         department_path="一级部门")
        with pytest.raises(SourceError, match=r"source.mapping for name reads column '名字', "
                                              r"which the file does not have"):
            conn.read()

    def test_departments_file_with_mapping(self, tmp_path: Path) -> None:
        """With a departments file, mapping.departments maps its headers too."""
        depts = "编码,名称,上级\nD1,总部,\nD2,研发,D1\n"
        emps = "工号,姓名,手机,部门\n0001,张三,13800138000,D2\n"
        conn = connector(tmp_path, {"departments.csv": depts.encode(),
                                    "employees.csv": emps.encode()},
                         mapping={"departments": {"key": "编码", "name": "名称",
                                                  "parent_key": "上级"},
                                  "employees": {"key": "工号", "name": "姓名", "mobile": "手机",
                                                "department_keys": "部门"}})
        data = validate(conn.read())
        assert data.issues == []
        assert data.snapshot.departments["D2"].parent_key == "D1"
        assert data.snapshot.employees["0001"].department_keys == ("D2",)


class TestOptions:
    @pytest.mark.parametrize(("options", "key", "text"), [
        ({"mapping": MAPPING, "columns": {}, "department_path": "x"}, "source.columns",
         "cannot be combined with source.mapping"),
        ({"mapping": MAPPING}, "source.departments", "is required"),
        ({"department_path": "部门", "departments": "d.csv"}, "source.department_path",
         "cannot be combined with a departments file"),
        ({"mapping": {"staff": {}}, "department_path": "x"}, "source.mapping.staff",
         "unknown table"),
        ({"mapping": {"employees": {"nmae": "x", "key": "k"}}, "department_path": "x"},
         "source.mapping.employees.nmae", "did you mean 'name'"),
        ({"department_path": "部门", "path_separator": ";"}, "source.path_separator",
         "cannot separate department paths"),
        ({"department_path": "部门", "delimiter": "auto", "encoding": "nope"}, "source.encoding",
         "unknown encoding"),
    ])
    def test_bad_options(self, options: dict[str, Any], key: str, text: str) -> None:
        """Each bad option is a ConfigError naming source.<key>."""
        with pytest.raises(ConfigError, match=text) as err:
            CsvConnector.from_config({"employees": "e.csv", **options}, base_dir=Path("/x"),
                                     file="o.yaml")
        assert err.value.key == key
