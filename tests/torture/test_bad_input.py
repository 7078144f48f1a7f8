"""Bad input, property-based: hostile CSV records and config documents never crash orgsync.

Every CSV outcome is either a clean :class:`OrgsyncError` naming the file, or data whose
every issue names the record's position, the field and why. Every config outcome is a
valid config or a :class:`ConfigError` naming the key. Default: 50 examples per property;
``TORTURE=full``: 500.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.csvfile import CsvConnector
from orgsync.config import config_from_dict
from orgsync.diff import diff
from orgsync.errors import ConfigError, OrgsyncError
from orgsync.state import DirectoryState
from orgsync.validate import validate
from tests.torture.harness import full, report

EXAMPLES = 500 if full() else 50
COLUMNS = ["employee_id", "name", "en_name", "email", "mobile", "department_ids", "manager_id",
           "job_title", "employee_type", "join_date", "city", "status"]
TRIED: dict[str, int] = {"csv": 0, "config": 0}

HOSTILE = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=3000),  # very long
    st.text(alphabet=st.characters(max_codepoint=0x1F, min_codepoint=0), max_size=8),  # controls
    st.sampled_from(["研发/平台", "a/b/c", "/", "😀👩‍💻", "=1+2", "+86 138", "-3", "@SUM(A1)",
                     "=HYPERLINK(\"http://x\")", "1.38E+10", "\u202eevil", "\ufeffbom", "",
                     "NULL", "' OR 1=1 --", "(cn=*)", "\\", "\"", "\r\n", "2026-02-30",
                     "13800138000", "+8613800138000", "a@b.c", "regular", "active",
                     "terminated", "D1", "D1;D2", "E1"]),
)
GOOD_ROW = ["E1", "张三", "Zhang San", "e1@example.com", "+8613800000001", "D1", "", "工程师",
            "regular", "2026-01-05", "北京", "active"]


@st.composite
def employee_files(draw: st.DrawFn) -> tuple[bytes, int]:
    """An employees.csv: a good row plus hostile rows, some lines in GB18030 (mixed encodings)."""
    rows = [GOOD_ROW]
    for i in range(draw(st.integers(1, 6))):
        row = [draw(HOSTILE) if draw(st.booleans()) else GOOD_ROW[c].replace("1", str(i + 2))
               for c in range(len(COLUMNS))]
        rows.append(row)
    out = bytearray()
    for n, row in enumerate([COLUMNS, *rows]):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row)
        text = buf.getvalue()
        mixed = n > 0 and draw(st.integers(0, 9)) == 0
        out += text.encode("gb18030" if mixed else "utf-8", "replace")
    return bytes(out), len(rows)


DEPARTMENTS = "department_id,name,parent_id,leader_id,order\nD1,研发部,,,1\nD2,a/b 部,D1,,2\n"


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(employee_files())
def test_hostile_csv_records_are_rejected_by_name_never_crash(case: tuple[bytes, int]) -> None:
    """Hostile CSV cells: an OrgsyncError naming the file, or issues naming row, field and why."""
    content, _ = case
    TRIED["csv"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "employees.csv").write_bytes(content)
        (base / "departments.csv").write_text(DEPARTMENTS, encoding="utf-8")
        conn = CsvConnector.from_config({"employees": "employees.csv",
                                         "departments": "departments.csv"},
                                        base_dir=base, file="orgsync.yaml")
        try:
            data = validate(conn.read())
        except OrgsyncError as exc:
            refusal: str | None = str(exc)
        else:
            refusal = None
        if refusal is not None:
            assert "employees.csv" in refusal or "departments.csv" in refusal, refusal
            return
        for issue in data.issues:
            assert issue.where, issue
            assert issue.where.split(":")[0].endswith(".csv"), issue
            assert issue.reason.strip(), issue
            if issue.held:
                assert issue.field, issue  # a rejection names the field
        plan = diff(data, DirectoryState())  # whatever passed must plan without error
        for op in plan.operations:
            for value in op.payload.values():
                if isinstance(value, str):
                    assert not any(ord(ch) < 0x20 for ch in value), (op.op_id, value)

KEYS = ["version", "feishu", "feishu.app_id", "feishu.app_secret", "feishu.base_url",
        "feishu.timeout", "feishu.max_retries", "feishu.rate_scale", "source", "source.type",
        "source.employees", "source.departments", "ledger", "ledger.url", "sync",
        "sync.leaver_action", "sync.concurrency", "safety", "safety.max_source_shrink",
        "logging", "logging.format", "lifecycle", "lifecycle.grace_days", "nonsense"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                   st.floats(allow_nan=True), HOSTILE, st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


def _base() -> dict[str, Any]:
    return {"version": 1, "feishu": {"app_id": "cli_x", "app_secret": "s3cr3t-value-xyz"},
            "source": {"type": "csv", "departments": "d.csv", "employees": "e.csv"}}


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3))
def test_hostile_config_is_a_config_error_naming_the_key(edits: list[tuple[str, Any]]) -> None:
    """Any value at any key: a valid config or a ConfigError naming the key (never the secret)."""
    TRIED["config"] += 1
    doc = _base()
    for dotted, value in edits:
        section, _, key = dotted.partition(".")
        if key:
            if not isinstance(doc.get(section), dict):
                doc[section] = {}
            doc[section][key] = value
        else:
            doc[section] = value
    try:
        config_from_dict(doc, file="orgsync.yaml", base_dir=Path("/tmp"), env={})
    except ConfigError as exc:
        error: ConfigError | None = exc
    else:
        error = None
    if error is not None:
        assert error.key, str(error)
        assert error.key in str(error)
        assert "s3cr3t-value-xyz" not in str(error)


@pytest.fixture(scope="module", autouse=True)
def _report_inputs_tried() -> Iterator[None]:
    """After this module's properties ran, report how many hostile inputs they tried."""
    yield
    if TRIED["csv"] or TRIED["config"]:
        report("bad_input", csv_files=TRIED["csv"], configs=TRIED["config"])
