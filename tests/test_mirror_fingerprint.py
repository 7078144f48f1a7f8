"""Mirror fingerprints: unchanged people are recognised without decoding, changed ones never are."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from orgsync.bench.mirror import fill_mirror
from orgsync.diff import DiffPolicy, diff
from orgsync.errors import LedgerError
from orgsync.ledger import Ledger
from orgsync.model import Employee, EmployeeType, Status
from orgsync.plan import OpKind
from orgsync.source import SourceData
from orgsync.synth import generate_org

# Any character: marshal's form carries each value's type and length, so no value can
# alias another (the text form before it joined values with control characters).
_chars = st.characters()
_text = st.one_of(st.none(), st.text(_chars, max_size=6))
employees = st.builds(
    Employee, key=st.sampled_from(["E1", "E2"]), name=st.text(_chars, min_size=1, max_size=6),
    department_keys=st.lists(st.sampled_from(["D1", "D2", "D3"]), max_size=3).map(tuple),
    en_name=_text, email=_text, mobile=_text, manager_key=_text, job_title=_text,
    employee_no=_text, employee_type=st.sampled_from(list(EmployeeType)),
    join_date=st.one_of(st.none(), st.dates(date(2000, 1, 1), date(2030, 1, 1))),
    city=_text, status=st.sampled_from(list(Status)))


@given(employees, employees)
def test_fingerprints_are_equal_exactly_when_records_are(a: Employee, b: Employee) -> None:
    assert (a.fingerprint() == b.fingerprint()) == (a == b)


def test_fingerprint_survives_the_stored_form() -> None:
    e = Employee(key="E1", name="张三", department_keys=("D1", "D2"), en_name="San Zhang",
                 join_date=date(2026, 1, 2), employee_type=EmployeeType.INTERN)
    assert Employee.from_fields("E1", e.fields()).fingerprint() == e.fingerprint()
    assert e.fingerprint() == 1643299567704926593  # stable across processes and releases


def test_a_profile_survives_the_stored_form_and_tells_records_apart() -> None:
    e = Employee(key="E1", name="张三", department_keys=("D1",), profile={
        "work_station": "A-7-40", "gender": 1, "dotted_line_manager_keys": ["E2", "E3"],
        "custom_attrs": {"C-2": "蓝", "C-1": "\ud800"}})
    stored = Employee.from_fields("E1", e.fields())
    assert stored.fingerprint() == e.fingerprint()
    # the same values inserted in another order: the same record, the same fingerprint
    reordered = replace(e, profile={"custom_attrs": {"C-1": "\ud800", "C-2": "蓝"},
                                    "dotted_line_manager_keys": ["E2", "E3"], "gender": 1,
                                    "work_station": "A-7-40"})
    assert reordered.fingerprint() == e.fingerprint()
    for changed in ({"gender": 2}, {"dotted_line_manager_keys": ["E3", "E2"]},
                    {"custom_attrs": {"C-2": "蓝"}}, {"work_station": "A-7-41"}):
        assert replace(e, profile={**e.profile, **changed}).fingerprint() != e.fingerprint()
    assert replace(e, profile={}).fingerprint() != e.fingerprint()
    assert e.fingerprint() == 3793474246002435769  # stable across processes and releases


def test_unchanged_records_are_shared_and_changed_ones_decoded(tmp_path: Path) -> None:
    org = generate_org(employees=60, departments=6, levels=3)
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        fill_mirror(ledger, org)
        changed_key, other = sorted(org.employees)[:2]
        source = dict(org.employees)
        source[changed_key] = replace(source[changed_key], job_title="Chief Tea Officer")
        state = ledger.load_state(known=source)
        assert state.users[other].record is source[other]
        assert state.users[changed_key].record is not source[changed_key]
        assert state.users[changed_key].record == org.employees[changed_key]
        assert state.unchanged == {k for k, e in org.employees.items()
                                   if k != changed_key and e.status is Status.ACTIVE}
        plan = diff(SourceData(replace(org, employees=source)), state, DiffPolicy())
        assert [(op.kind, op.key) for op in plan.operations] == [(OpKind.USER_UPDATE, changed_key)]
        assert plan.operations[0].payload == {"job_title": "Chief Tea Officer"}

        # A row without a fingerprint (an older ledger, a partial record) is decoded.
        with ledger.engine.begin() as c:
            c.execute(text("UPDATE mirror_users SET fingerprint = NULL WHERE key = :k"),
                      {"k": other})
        state = ledger.load_state(known=source)
        assert state.users[other].record is not source[other]
        assert state.users[other].record == source[other]
        assert other not in state.unchanged
        assert changed_key not in state.unchanged
        assert diff(SourceData(replace(org, employees=source)), state,
                    DiffPolicy()).plan_id == plan.plan_id
    finally:
        ledger.close()


def test_a_mirror_row_orgsync_did_not_write_is_a_damaged_ledger(tmp_path: Path) -> None:
    """A byte flipped inside a valid page leaves SQLite nothing to notice: a lifecycle no
    orgsync writes, or a stored record that is not JSON, is the damaged-ledger error (exit
    8, the remedy) — never a traceback — and names no value read back."""
    org = generate_org(employees=12, departments=3, levels=2)
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        fill_mirror(ledger, org)
        first, second = sorted(org.employees)[:2]
        for update, value, key in (
                ("UPDATE mirror_users SET lifecycle = :v, fingerprint = NULL WHERE key = :k",
                 "\x7fgu{\x10j", first),
                ("UPDATE mirror_users SET fields = :v, fingerprint = NULL WHERE key = :k",
                 "{not json", second)):
            with ledger.engine.begin() as c:
                c.execute(text(update), {"v": value, "k": key})
            with pytest.raises(LedgerError) as caught:
                ledger.load_state(known=org.employees)
            assert "is damaged (a mirror row orgsync did not write (" in str(caught.value)
            assert "restore the ledger from your latest backup" in str(caught.value)
            assert value not in str(caught.value)
    finally:
        ledger.close()
