"""connectors.contact: one mobile and email rule for every connector and mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.contact import ContactProblem, normalize_email, normalize_mobile
from connectors.csvfile import CsvConnector
from connectors.mapping import map_record, rules
from orgsync.validate import mobile_problem, validate

#: (cell as an HR export writes it, region, E.164)
MOBILES = [
    ("13812345678", "CN", "+8613812345678"),
    ("86-138-1234-5678", "CN", "+8613812345678"),
    ("86 13812345671", "CN", "+8613812345671"),
    ("8613812345672", "CN", "+8613812345672"),
    ("0086 138 1234 5676", "CN", "+8613812345676"),
    ("+86 138-1234-5670", "CN", "+8613812345670"),
    ("+86 (138) 1234.5673", "CN", "+8613812345673"),
    ("138.1234.5674", "CN", "+8613812345674"),
    ("１３８ １２３４ ５６７５", "CN", "+8613812345675"),
    ("＋８６１３８１２３４５６７９", "CN", "+8613812345679"),
    ("+8613812345677", "US", "+8613812345677"),
    ("+1 (415) 555-0100", "CN", "+14155550100"),
    ("(415) 555-0100", "US", "+14155550100"),
    ("+852 9123 4567", "CN", "+85291234567"),
    ("00852 9123 4567", "CN", "+85291234567"),
    ("00852-91234567", "CN", "+85291234567"),
    ("+44 20 7946 0958", "CN", "+442079460958"),
]


@pytest.mark.parametrize(("cell", "region", "e164"), MOBILES)
def test_mobiles_as_hr_exports_write_them(cell: str, region: str, e164: str) -> None:
    """Every form becomes E.164, and validation accepts what the normaliser returns."""
    assert normalize_mobile(cell, region) == e164
    assert mobile_problem(e164) is None


@pytest.mark.parametrize(("cell", "reason"), [
    ("1.38E+10", "'1.38E+10' looks like a number Excel turned into scientific notation; "
                 "export the column as text"),
    ("12345", "'12345' is not a valid mobile number (11 digits starting with 1, or "
              "+<country code><digits>)"),
    ("abc", "'abc' is not a valid mobile number (11 digits starting with 1, or "
            "+<country code><digits>)"),
    ("+86 10 1234 5678", "'+86 10 1234 5678' is not a valid mainland China mobile number "
                         "(+86 then 11 digits starting with 1)"),
    ("+1 555", "'+1 555' is not a possible phone number"),
])
def test_problems_quote_the_cell_as_written(cell: str, reason: str) -> None:
    """A cell that is no usable mobile is refused, quoting the cell exactly."""
    with pytest.raises(ContactProblem) as caught:
        normalize_mobile(cell)
    assert str(caught.value) == reason


def test_emails_are_lower_cased() -> None:
    """Emails are compared and sent lower-cased; full-width letters are folded first."""
    assert normalize_email("Zhang.Wei@Example.COM") == "zhang.wei@example.com"
    assert normalize_email("ｌｉ@example.com") == "li@example.com"


HEADER = "employee_id,name,email,mobile,department_ids\n"


def _native(tmp_path: Path, rows: str) -> CsvConnector:
    (tmp_path / "departments.csv").write_text("department_id,name,parent_id\nD1,研发部,\n")
    (tmp_path / "employees.csv").write_text(HEADER + rows)
    return CsvConnector(tmp_path / "departments.csv", tmp_path / "employees.csv")


def test_native_and_mapping_mode_agree(tmp_path: Path) -> None:
    """The default CSV mode and the shared mapping give the same mobiles and emails."""
    cells = [cell for cell, region, _ in MOBILES if region == "CN"]
    rows = "".join(f"E{i},员工{i},User{i}@Example.COM,{cell},D1\n" for i, cell in enumerate(cells))
    data = _native(tmp_path, rows).read()  # (several cells are one number: no validation)
    assert data.issues == []
    native = {k: (e.email, e.mobile) for k, e in data.snapshot.employees.items()}
    table = rules({"key": "id", "email": "mail", "mobile": "tel"}, "employee")
    mapped = {f"E{i}": (m.values["email"], m.values["mobile"]) for i, cell in enumerate(cells)
              for m in [map_record({"id": f"E{i}", "mail": f"User{i}@Example.COM", "tel": cell},
                                   table)]}
    assert native == mapped
    assert native["E1"] == ("user1@example.com", "+8613812345678")


def test_native_mode_holds_a_bad_mobile_quoting_the_cell(tmp_path: Path) -> None:
    """The default mode holds a bad mobile (or Excel's 1.38E+10) with the cell quoted."""
    data = validate(_native(tmp_path, "E1,张三,,1.38E+10,D1\nE2,李四,,138-1234,D1\n").read())
    assert [str(i) for i in data.issues] == [
        "employees.csv:2: employee E1: mobile: '1.38E+10' looks like a number Excel turned into "
        "scientific notation; export the column as text (held back)",
        "employees.csv:3: employee E2: mobile: '138-1234' is not a valid mainland China mobile "
        "number (+86 then 11 digits starting with 1) (held back)",
    ]
