"""connectors.csvfile: the native CSV source, its options, and the registry that builds it."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.csvfile import CsvConnector
from connectors.registry import build_connector, known_types
from orgsync.config import SourceConfig, config_from_dict
from orgsync.errors import ConfigError, SourceError
from orgsync.model import Department, Employee, EmployeeType, Status
from orgsync.synth import generate_org, next_week, write_csv
from orgsync.validate import validate

DEPT_HEADER = "department_id,name,parent_id,leader_id,order\n"
EMP_HEADER = ("employee_id,name,en_name,email,mobile,department_ids,manager_id,job_title,"
              "employee_type,join_date,city,status\n")
ONE_DEPT = DEPT_HEADER + "D1,研发中心,,E1,10\n"


def write(tmp_path: Path, departments: str, employees: str, *,
          encoding: str = "utf-8") -> CsvConnector:
    (tmp_path / "departments.csv").write_bytes(departments.encode(encoding))
    (tmp_path / "employees.csv").write_bytes(employees.encode(encoding))
    return CsvConnector(tmp_path / "departments.csv", tmp_path / "employees.csv")


def options(**extra: object) -> dict[str, object]:
    return {"departments": "departments.csv", "employees": "employees.csv", **extra}


class TestRead:
    def test_native_row_maps_to_the_model(self, tmp_path: Path) -> None:
        """Every native column lands in its canonical field; cells are stripped; empty → None."""
        conn = write(tmp_path, DEPT_HEADER + "D1, 研发中心 ,,E1,10\nD2,平台部,D1,,\n",
                     EMP_HEADER + "E1,张三,San Zhang, zs@example.com ,+86 138-0013-8000,"
                     "D2;D1,,工程师,intern,2026-01-05,北京,在职\n")
        data = conn.read()
        assert data.issues == []
        assert data.snapshot.departments == {
            "D1": Department(key="D1", name="研发中心", leader_key="E1", order=10),
            "D2": Department(key="D2", name="平台部", parent_key="D1"),
        }
        assert data.snapshot.employees["E1"] == Employee(
            key="E1", name="张三", department_keys=("D2", "D1"), en_name="San Zhang",
            email="zs@example.com", mobile="+8613800138000", job_title="工程师",
            employee_type=EmployeeType.INTERN, join_date=date(2026, 1, 5), city="北京",
        )

    def test_leading_zeros_and_optional_columns(self, tmp_path: Path) -> None:
        """Ids and employee_no stay text (leading zeros kept); en_name/employee_no are optional."""
        conn = write(tmp_path, "department_id,name,parent_id,leader_id,order,en_name\n"
                               "0001,总部,,,,Head Office\n",
                     EMP_HEADER.rstrip("\n") + ",employee_no\n"
                     "000123,李四,,,13800138000,0001,,,1,,,,000123\n")
        data = conn.read()
        assert data.snapshot.departments["0001"].en_name == "Head Office"
        assert data.snapshot.employees["000123"].employee_no == "000123"

    @pytest.mark.parametrize(("cell", "expected"), [
        ("", EmployeeType.REGULAR), ("5", EmployeeType.CONSULTANT),
        ("Contractor", EmployeeType.CONTRACTOR), ("外包", EmployeeType.OUTSOURCED),
        ("３", EmployeeType.OUTSOURCED),
    ])
    def test_employee_type_spellings(self, tmp_path: Path, cell: str,
                                     expected: EmployeeType) -> None:
        """employee_type accepts 1-5, English and Chinese names; empty means regular."""
        conn = write(tmp_path, ONE_DEPT, EMP_HEADER + f"E1,张三,,,13800138000,D1,,,{cell},,,\n")
        assert conn.read().snapshot.employees["E1"].employee_type is expected

    def test_terminated_status(self, tmp_path: Path) -> None:
        """terminated / 离职 mark leavers."""
        conn = write(tmp_path, ONE_DEPT, EMP_HEADER + "E1,张三,,,,D1,,,,,,离职\n"
                                                      "E2,李四,,,,D1,,,,,,Terminated\n")
        emps = conn.read().snapshot.employees
        assert {e.status for e in emps.values()} == {Status.TERMINATED}

    def test_bom_crlf_and_multiline_cells(self, tmp_path: Path) -> None:
        """An Excel UTF-8 export (BOM, CRLF, a quoted multi-line cell) reads cleanly."""
        text = (EMP_HEADER + 'E1,张三,,,13800138000,D1,,"高级\r\n工程师",,,,\r\n'
                "E2,李四,,,13800138001,D1,,,,,,\r\n").replace("\n", "\r\n").replace("\r\r", "\r")
        conn = write(tmp_path, ONE_DEPT, "\ufeff" + text)
        data = conn.read()
        assert data.issues == []
        assert data.snapshot.employees["E1"].job_title == "高级\r\n工程师"
        assert set(data.snapshot.employees) == {"E1", "E2"}

    def test_gb18030_encoding_option(self, tmp_path: Path) -> None:
        """encoding: gb18030 reads Excel's zh-CN CSV export."""
        write(tmp_path, ONE_DEPT, EMP_HEADER + "E1,张三,,,13800138000,D1,,,,,,\n",
              encoding="gb18030")
        conn = CsvConnector.from_config(options(encoding="gb18030"), base_dir=tmp_path, file="c")
        assert conn.read().snapshot.employees["E1"].name == "张三"

    def test_columns_and_delimiter_options(self, tmp_path: Path) -> None:
        """columns remaps headers; delimiter: tab reads a tab-separated export."""
        (tmp_path / "departments.csv").write_text("编号\tname\tparent_id\tleader_id\torder\n"
                                                  "D1\t研发\t\t\t\n", encoding="utf-8")
        (tmp_path / "employees.csv").write_text(
            EMP_HEADER.replace(",", "\t").replace("employee_id", "工号")
            + "E1\t张三\t\t\t13800138000\tD1\t\t\t\t\t\t\n", encoding="utf-8")
        conn = CsvConnector.from_config(
            options(delimiter="tab", columns={"departments": {"department_id": "编号"},
                                              "employees": {"employee_id": "工号"}}),
            base_dir=tmp_path, file="c")
        data = conn.read()
        assert list(data.snapshot.departments) == ["D1"]
        assert list(data.snapshot.employees) == ["E1"]

    def test_round_trip_with_synth(self, tmp_path: Path) -> None:
        """write_csv → read gives back exactly the generated org (both weeks)."""
        org = generate_org()
        for snapshot in (org, next_week(org)):
            write_csv(snapshot, tmp_path)
            data = CsvConnector(tmp_path / "departments.csv", tmp_path / "employees.csv").read()
            assert data.issues == []
            assert data.snapshot == snapshot


class TestRowProblems:
    def test_bad_cells_hold_the_row_and_name_the_line(self, tmp_path: Path) -> None:
        """Bad date, type, status or order become issues at file:line; the rest proceeds."""
        conn = write(
            tmp_path, DEPT_HEADER + "D1,研发,,,ten\nD2,平台,,,20\n",
            EMP_HEADER + "E1,张三,,,13800138000,D2,,,boss,2024/3/5,,\n"
                         "E2,李四,,,13800138001,D2,,,,,,maybe\n"
                         "E3,王五,,,13800138002,D2,,,,,,\n")
        data = conn.read()
        assert [str(i) for i in data.issues] == [
            "departments.csv:2: department D1: order: 'ten' is not a non-negative whole number "
            "(held back)",
            "employees.csv:2: employee E1: employee_type: 'boss' is not an employee type (1-5, "
            "regular, intern, outsourced, contractor, consultant) (held back)",
            "employees.csv:2: employee E1: join_date: '2024/3/5' is not a date in YYYY-MM-DD form "
            "(held back)",
            "employees.csv:3: employee E2: status: 'maybe' is not active or terminated "
            "(held back)",
        ]
        assert data.held_departments == {"D1"}
        assert data.held_employees == {"E1", "E2"}
        assert list(data.snapshot.employees) == ["E3"]

    def test_duplicate_ids_hold_every_row(self, tmp_path: Path) -> None:
        """Every row of a repeated id is held; the issue names the other lines."""
        conn = write(tmp_path, ONE_DEPT,
                     EMP_HEADER + "E1,张三,,,13800138000,D1,,,,,,\n"
                                  "E2,李四,,,13800138001,D1,,,,,,\n"
                                  "E1,张三丰,,,13800138002,D1,,,,,,\n")
        data = conn.read()
        assert [str(i) for i in data.issues] == [
            "employees.csv:2: employee E1: key: employee_id 'E1' is also on line 4 (held back)",
            "employees.csv:4: employee E1: key: employee_id 'E1' is also on line 2 (held back)",
        ]
        assert data.held_employees == {"E1"}
        assert list(data.snapshot.employees) == ["E2"]

    def test_empty_id_and_blank_rows(self, tmp_path: Path) -> None:
        """A row without an id is reported (no key to hold); blank rows are skipped."""
        conn = write(tmp_path, ONE_DEPT,
                     EMP_HEADER + ",无名,,,13800138000,D1,,,,,,\n,,,,,,,,,,,\n\n")
        data = conn.read()
        assert [str(i) for i in data.issues] == [
            "employees.csv:2: employee: key: employee_id is empty (held back)"]
        assert data.held_employees == set()

    def test_extra_cells_hold_the_row(self, tmp_path: Path) -> None:
        """A row longer than the header (an unquoted comma) is held; short rows are padded."""
        conn = write(tmp_path, ONE_DEPT,
                     EMP_HEADER + "E1,张,三,,,13800138000,D1,,,,,,\nE2,李四,,,13800138001,D1\n")
        data = conn.read()
        assert data.held_employees == {"E1"}
        assert "has 13 cells but the header has 12" in data.issues[0].reason
        assert data.snapshot.employees["E2"].status is Status.ACTIVE


    def test_validation_issues_point_at_the_row(self, tmp_path: Path) -> None:
        """Issues found by validate() after a CSV read name the file and line of the record."""
        conn = write(tmp_path, ONE_DEPT, EMP_HEADER + "E1,张三,,,13800138000,D1,,,,,,\n"
                                                      "E42,李四,,,12345,D1,,,,,,\n")
        data = validate(conn.read())
        assert [str(i) for i in data.issues] == [
            "employees.csv:3: employee E42: mobile: '12345' is not a valid mobile number "
            "(11 digits starting with 1, or +<country code><digits>) (held back)",
        ]
        assert data.employee_rows["E1"] == "employees.csv:2"


class TestQuoteFreeFiles:
    """A file without a quote character is split line by line instead of going through
    the csv reader (``connectors.csvfile._plain_lines``): it must read exactly the same."""

    def test_padding_blank_rows_and_line_numbers(self, tmp_path: Path) -> None:
        """Cells padded with spaces, a tab, a full-width space or a no-break space are
        stripped; blank and whitespace-only rows are skipped but counted in line numbers;
        CRLF line ends and a last line without one read as the reader reads them."""
        text = (EMP_HEADER + " E1 ,\u3000张三\u3000,\tSan Zhang\t,\xa0zs@example.com\xa0,"
                "13800138000 ,D1, , \u3000,intern ,\t2026-01-05,北京,\n"
                "\n \u3000, ,\t\n"
                "E2,李四,,,13800138001,D1,,,,,,maybe\n"
                "E1,张三丰,,,13800138002,D1,,,,,,").replace("\n", "\r\n")
        data = write(tmp_path, ONE_DEPT, text).read()
        assert [str(i) for i in data.issues] == [
            "employees.csv:5: employee E2: status: 'maybe' is not active or terminated "
            "(held back)",
            "employees.csv:2: employee E1: key: employee_id 'E1' is also on line 6 (held back)",
            "employees.csv:6: employee E1: key: employee_id 'E1' is also on line 2 (held back)",
        ]
        assert [(r.key, r.email, r.mobile, r.where) for r in data.held_rows] == [
            ("E2", None, "13800138001", "employees.csv:5"),
            ("E1", None, "13800138002", "employees.csv:6"),
            ("E1", "zs@example.com", "+8613800138000", "employees.csv:2"),
        ]

    def test_stripped_cells_reach_the_record(self, tmp_path: Path) -> None:
        """Every padded cell of a quote-free row arrives stripped, empty ones as None."""
        text = (EMP_HEADER + " E1 ,\u3000张三\u3000,\tSan Zhang\t,\xa0zs@example.com\xa0,"
                "13800138000 ,D1, , \u3000,intern ,\t2026-01-05,北京,\r\n")
        data = write(tmp_path, ONE_DEPT, text).read()
        assert data.issues == []
        assert data.snapshot.employees == {"E1": Employee(
            key="E1", name="张三", department_keys=("D1",), en_name="San Zhang",
            email="zs@example.com", mobile="+8613800138000",
            employee_type=EmployeeType.INTERN, join_date=date(2026, 1, 5), city="北京")}
        assert data.employee_rows == {"E1": "employees.csv:2"}

    def test_a_lone_carriage_return_ends_a_line(self, tmp_path: Path) -> None:
        """Mixed line ends (a lone CR, as old Mac exports end lines) split rows and count
        lines as the csv reader does."""
        text = EMP_HEADER + "E1,张三,,,13800138000,D1,,,,,,\rE2,李四,,,13800138001,D1,,,,,,\n"
        data = write(tmp_path, ONE_DEPT, text).read()
        assert data.issues == []
        assert data.employee_rows == {"E1": "employees.csv:2", "E2": "employees.csv:3"}

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(["a", "张", " ", "\t", "\u3000", "\xa0", "\x85", "\u2028",
                                     "\x0b", "\x1c", "\0", "\ufeff", ",", ";", "|", "\n", "\r",
                                     "\r\n", "\r\n"]), max_size=30).map("".join),
           st.sampled_from(",;\t|"))
    def test_reads_as_the_csv_reader(self, text: str, delimiter: str) -> None:
        """Any quote-free text gives the header and rows (first line numbers, cells) the csv
        reader gives, its blank rows skipped."""
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = next(reader, None)
        rows, line = [], reader.line_num
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((line + 1, cells))
            line = reader.line_num
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "employees.csv"
            path.write_bytes(text.encode())
            conn = CsvConnector(None, path, delimiter=delimiter, encoding="utf-8")
            if header is None:
                with pytest.raises(SourceError, match="the file is empty"):
                    conn._rows(path, "employees")
                return
            read_header, read_rows = conn._rows(path, "employees")
            assert (read_header, list(read_rows)) == (header, rows)

    def test_a_cell_past_the_field_size_limit_is_malformed(self, tmp_path: Path) -> None:
        """A cell longer than the csv reader's field size limit aborts the read with the
        reader's own error, quotes or not."""
        conn = write(tmp_path, ONE_DEPT, EMP_HEADER + "E1," + "张" * 131_073 + ",,,,D1,,,,,,\n")
        with pytest.raises(SourceError, match=r"employees\.csv:2: malformed CSV \(utf-8-sig, "
                                              r"delimiter ','\): field larger than field limit"):
            conn.read()

    def test_an_empty_header_line(self, tmp_path: Path) -> None:
        """An empty first line is a header without columns, as the csv reader reads it."""
        conn = write(tmp_path, ONE_DEPT, "\n" + EMP_HEADER)
        with pytest.raises(SourceError, match=r"missing required columns .*\(found: \)"):
            conn.read()


class TestWholeFileFailures:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file aborts the read, naming the file and the option."""
        conn = CsvConnector(tmp_path / "nope.csv", tmp_path / "employees.csv")
        with pytest.raises(SourceError, match=r"nope\.csv: file not found \(source\.departments\)"):
            conn.read()

    def test_missing_required_column(self, tmp_path: Path) -> None:
        """A missing required column aborts, naming it, what was found, and which columns
        are required and which optional."""
        conn = write(tmp_path, ONE_DEPT, EMP_HEADER.replace("mobile", "phone"))
        with pytest.raises(SourceError) as caught:
            conn.read()
        assert str(caught.value) == (
            f"{tmp_path / 'employees.csv'}: missing required column mobile (found: "
            "'employee_id', 'name', 'en_name', 'email', 'phone', 'department_ids', 'manager_id', "
            "'job_title', 'employee_type', 'join_date', 'city', 'status'); rename the column or "
            "map it with source.columns. Required columns: employee_id, name, email, mobile, "
            "department_ids; optional: en_name, manager_id, job_title, employee_type, join_date, "
            "city, status, employee_no, work_station, gender, job_level, job_family, "
            "custom_employee_type, order, dotted_line_manager_ids, avatar, job_level_code, job_family_code")

    def test_minimal_files(self, tmp_path: Path) -> None:
        """employee_id,name,email,mobile,department_ids (and department_id,name,parent_id)
        is enough: the optional columns read as empty."""
        conn = write(tmp_path, "department_id,name,parent_id\nD1,研发部,\n",
                     "employee_id,name,email,mobile,department_ids\n"
                     "E1,张三,zs@example.com,13800138000,D1\n")
        data = validate(conn.read())
        assert data.issues == []
        assert data.snapshot.departments == {"D1": Department(key="D1", name="研发部")}
        assert data.snapshot.employees == {"E1": Employee(
            key="E1", name="张三", department_keys=("D1",), email="zs@example.com",
            mobile="+8613800138000")}

    def test_duplicate_header(self, tmp_path: Path) -> None:
        """A required column that appears twice is ambiguous and aborts."""
        conn = write(tmp_path, ONE_DEPT, EMP_HEADER.rstrip("\n") + ",mobile\n")
        with pytest.raises(SourceError, match="column 'mobile' appears 2 times"):
            conn.read()

    def test_wrong_encoding_suggests_the_right_one(self, tmp_path: Path) -> None:
        """A GBK file read as UTF-8 aborts and suggests encoding: gb18030."""
        conn = write(tmp_path, ONE_DEPT, EMP_HEADER + "E1,张三,,,13800138000,D1,,,,,,\n",
                     encoding="gb18030")
        with pytest.raises(SourceError, match=r"cannot decode as utf-8-sig.*set source\.encoding: "
                                              r"gb18030"):
            conn.read()

    def test_empty_file(self, tmp_path: Path) -> None:
        """A file without even a header aborts."""
        conn = write(tmp_path, "", EMP_HEADER)
        with pytest.raises(SourceError, match="the file is empty"):
            conn.read()


class TestOptions:
    def test_relative_paths_resolve_against_the_config_dir(self, tmp_path: Path) -> None:
        """departments/employees are relative to the config file's directory."""
        conn = CsvConnector.from_config(options(), base_dir=tmp_path, file="c.yaml")
        assert conn.departments == tmp_path / "departments.csv"

    @pytest.mark.parametrize(("opts", "key", "text"), [
        ({"employees": "e.csv"}, "source.departments", "is required"),
        (options(delimeter=";"), "source.delimeter", "did you mean 'delimiter'?"),
        (options(delimiter=";;"), "source.delimiter", "not a single-character delimiter"),
        (options(encoding="klingon"), "source.encoding", "unknown encoding 'klingon'"),
        (options(columns={"employees": {"employe_id": "工号"}}),
         "source.columns.employees.employe_id", "did you mean 'employee_id'?"),
        (options(columns={"staff": {}}), "source.columns.staff", "unknown file"),
    ])
    def test_bad_options(self, opts: dict[str, object], key: str, text: str) -> None:
        """Each bad option is a ConfigError naming source.<option>."""
        with pytest.raises(ConfigError, match=text) as err:
            CsvConnector.from_config(opts, base_dir=Path("/x"), file="orgsync.yaml")
        assert err.value.key == key
        assert err.value.file == "orgsync.yaml"


class TestRegistry:
    def test_builds_csv_from_config(self, tmp_path: Path) -> None:
        """build_connector turns a csv source section into a CsvConnector."""
        cfg = config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
                                "source": {"type": "csv", **options()}}, base_dir=tmp_path)
        conn = build_connector(cfg.source)
        assert isinstance(conn, CsvConnector)
        assert conn.employees == tmp_path / "employees.csv"

    def test_unknown_type_names_the_known_ones(self) -> None:
        """An unknown source.type is a ConfigError listing the known types."""
        source = SourceConfig(type="cvs", options={}, base_dir=Path("/x"), file="o.yaml")
        with pytest.raises(ConfigError, match=r"did you mean 'csv'.*known types: csv") as err:
            build_connector(source)
        assert err.value.key == "source.type"
        assert "csv" in known_types()
