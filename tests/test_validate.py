"""orgsync.validate: hold back what Feishu would reject, clear what it would not accept."""

from __future__ import annotations

from typing import Any

import pytest

from orgsync.model import Department, Employee, EmployeeType, Snapshot, Status
from orgsync.source import Issue, SourceData
from orgsync.synth import generate_org
from orgsync.validate import MAX_DEPTH, mobile_problem, validate

_counter = iter(range(10_000_000))


def dept(key: str, name: str | None = None, parent: str | None = None, **kw: Any) -> Department:
    return Department(key=key, name=name if name is not None else f"部门{key}", parent_key=parent,
                      **kw)


def emp(key: str, *depts: str, **kw: Any) -> Employee:
    n = next(_counter)
    kw.setdefault("name", f"员工{key}")
    kw.setdefault("mobile", f"+86139{n:08d}")
    kw.setdefault("email", f"user{n}@example.com")
    return Employee(key=key, department_keys=depts or ("D1",), **kw)


def run(depts: list[Department], emps: list[Employee], *,
        held_departments: frozenset[str] = frozenset(),
        held_employees: frozenset[str] = frozenset()) -> SourceData:
    return validate(SourceData(Snapshot.of(depts, emps), held_departments=set(held_departments),
                               held_employees=set(held_employees)))


def reasons(data: SourceData, key: str | None = None) -> list[str]:
    return [f"{i.field}: {i.reason} ({i.severity})" for i in data.issues
            if key is None or i.key == key]


class TestClean:
    def test_clean_org_passes_untouched(self) -> None:
        """A valid org comes back identical, with no issues and nothing held."""
        org = generate_org()
        out = validate(SourceData(org))
        assert out.issues == []
        assert out.snapshot == org
        assert out.held_departments == set()
        assert out.held_employees == set()

    def test_input_is_not_modified(self) -> None:
        """validate() returns a new SourceData; the input keeps its records and issues."""
        data = SourceData(Snapshot.of([dept("D1", name="")], []))
        validate(data)
        assert list(data.snapshot.departments) == ["D1"]
        assert data.issues == []
        assert data.held_departments == set()

    def test_connector_held_records_are_dropped_silently(self) -> None:
        """A key already held by the connector is removed without a second issue."""
        data = SourceData(Snapshot.of([dept("D1")], [emp("E1")]), held_employees={"E1"})
        out = validate(data)
        assert out.snapshot.employees == {}
        assert out.held_employees == {"E1"}
        assert out.issues == []


class TestDepartments:
    def test_empty_name_is_held(self) -> None:
        """A department without a name is held back."""
        out = run([dept("D1", name="")], [])
        assert reasons(out) == ["name: is empty; Feishu requires a name (error)"]
        assert out.held_departments == {"D1"}
        assert out.snapshot.departments == {}

    def test_slash_in_name_is_held(self) -> None:
        """Feishu rejects '/' in department names (43029)."""
        out = run([dept("D1", name="研发/测试")], [])
        assert reasons(out) == ["name: '研发/测试' contains '/', which Feishu rejects (error)"]

    def test_name_length_limit(self) -> None:
        """255 characters pass, 256 are held back."""
        out = run([dept("D1", name="部" * 255), dept("D2", name="部" * 256)], [])
        assert out.held_departments == {"D2"}
        assert "is 256 characters; Feishu allows at most 255" in reasons(out)[0]

    def test_dangling_parent_holds_the_subtree(self) -> None:
        """A missing parent holds the department and everything below it."""
        out = run([dept("D1", parent="NOPE"), dept("D2", parent="D1"), dept("D3", parent="D2"),
                   dept("D4")], [])
        assert out.held_departments == {"D1", "D2", "D3"}
        assert reasons(out) == [
            "parent_key: parent department 'NOPE' does not exist in the source (error)",
            "parent_key: parent department 'D1' is held back (error)",
            "parent_key: parent department 'D2' is held back (error)",
        ]
        assert list(out.snapshot.departments) == ["D4"]

    def test_parent_held_by_connector(self) -> None:
        """A parent the connector held back holds its children too."""
        out = run([dept("D2", parent="D1")], [], held_departments=frozenset({"D1"}))
        assert reasons(out) == ["parent_key: parent department 'D1' is held back (error)"]
        assert out.held_departments == {"D1", "D2"}

    def test_cycle_names_every_member(self) -> None:
        """Each member of a department cycle gets an error naming the cycle; hangers-on are held."""
        out = run([dept("D3", parent="D1"), dept("D1", parent="D2"), dept("D2", parent="D3"),
                   dept("D4", parent="D2"), dept("D5")], [])
        cycle = "is part of a department cycle: D1 → D2 → D3 → D1"
        assert reasons(out) == [
            f"parent_key: {cycle} (error)", f"parent_key: {cycle} (error)",
            f"parent_key: {cycle} (error)",
            "parent_key: parent department 'D2' is held back (error)",
        ]
        assert out.held_departments == {"D1", "D2", "D3", "D4"}

    def test_self_parent_is_a_cycle(self) -> None:
        """A department that is its own parent is a cycle of one."""
        out = run([dept("D1", parent="D1")], [])
        assert reasons(out) == ["parent_key: is part of a department cycle: D1 → D1 (error)"]

    def test_depth_limit(self) -> None:
        """25 levels pass; the 26th level is held back (43019)."""
        chain = [dept("L1")] + [dept(f"L{i}", parent=f"L{i - 1}") for i in range(2, MAX_DEPTH + 3)]
        out = run(chain, [])
        assert out.held_departments == {f"L{MAX_DEPTH + 1}", f"L{MAX_DEPTH + 2}"}
        assert reasons(out, f"L{MAX_DEPTH + 1}") == [
            "parent_key: is 26 levels deep; Feishu allows at most 25 (error)"]

    def test_duplicate_sibling_names_hold_all(self) -> None:
        """Siblings sharing a name are all held (we cannot know which is right); cousins may."""
        out = run([dept("P"), dept("A", "平台部", "P"), dept("B", "平台部", "P"),
                   dept("Q"), dept("C", "平台部", "Q")], [])
        assert out.held_departments == {"A", "B"}
        assert reasons(out, "A") == [
            "name: name '平台部' is also used by sibling department 'B' (error)"]

    def test_duplicate_sibling_order_is_cleared_for_later_keys(self) -> None:
        """The first key keeps a repeated sibling order; the others lose it with a warning."""
        out = run([dept("A", order=10), dept("B", order=10), dept("C", order=20)], [])
        assert out.snapshot.departments["A"].order == 10
        assert out.snapshot.departments["B"].order is None
        assert reasons(out) == [
            "order: order 10 is also used by sibling department 'A' (warning)"]
        assert out.held_departments == set()

    @pytest.mark.parametrize(("leader", "status", "why"), [
        ("E9", Status.ACTIVE, "leader 'E9' does not exist in the source"),
        ("E2", Status.TERMINATED, "leader 'E2' is terminated"),
    ])
    def test_unusable_leader_is_cleared(self, leader: str, status: Status, why: str) -> None:
        """A leader who is unknown or not active is cleared with a warning."""
        out = run([dept("D1", leader_key=leader)], [emp("E2", status=status)])
        assert out.snapshot.departments["D1"].leader_key is None
        assert reasons(out, "D1") == [f"leader_key: {why} (warning)"]

    def test_held_leader_is_set_aside_for_the_diff(self) -> None:
        """A leader whose own record is held back leaves the record, but the link is kept
        for the diff to restore (held_leaders), and the issue says so."""
        out = run([dept("D1", leader_key="E1")], [emp("E1", mobile="12345")])
        assert out.snapshot.departments["D1"].leader_key is None
        assert out.held_leaders == {"D1": "E1"}
        assert "leader_key: leader 'E1' is held back (warning)" in reasons(out, "D1")
        issue = next(i for i in out.issues if i.key == "D1")
        assert str(issue).endswith("(link kept)")


class TestEmployees:
    @pytest.mark.parametrize("mobile", [
        "13800138000", "+8613800138000", "+41446681800", "+12025550123", "+447911123456",
    ])
    def test_valid_mobiles(self, mobile: str) -> None:
        """Mainland numbers with or without +86 and E.164 numbers are accepted."""
        assert mobile_problem(mobile) is None

    @pytest.mark.parametrize(("mobile", "reason"), [
        ("12345", "'12345' is not a valid mobile number"),
        ("23800138000", "'23800138000' is not a valid mobile number"),
        ("+86123", "'+86123' is not a valid mainland China mobile number"),
        ("+8623800138000", "'+8623800138000' is not a valid mainland China mobile number"),
        ("+1234567890123456", "'+1234567890123456' is not a valid international number"),
        ("1.38123E+10", "'1.38123E+10' looks like a number Excel turned into scientific notation"),
    ])
    def test_invalid_mobiles_are_held(self, mobile: str, reason: str) -> None:
        """Mobiles Feishu rejects (41004) hold the employee, with the value named."""
        out = run([dept("D1")], [emp("E1", mobile=mobile)])
        assert out.held_employees == {"E1"}
        assert reasons(out)[0].startswith(f"mobile: {reason}")
        assert str(out.issues[0]).startswith(f"employee E1: mobile: {reason}")
        assert str(out.issues[0]).endswith("(held back)")

    def test_missing_mobile_is_held(self) -> None:
        """Feishu requires a mobile."""
        out = run([dept("D1")], [emp("E1", mobile=None)])
        assert reasons(out) == ["mobile: is missing; Feishu requires a mobile number (error)"]

    def test_foreign_mobile_needs_email(self) -> None:
        """A non-+86 mobile without an email is held (Feishu 44020)."""
        out = run([dept("D1")], [emp("E1", mobile="+41446681800", email=None),
                                 emp("E2", mobile="+41446681801")])
        assert out.held_employees == {"E1"}
        assert reasons(out) == ["email: is missing; Feishu requires an email for the "
                                "non-mainland mobile '+41446681800' (error)"]

    @pytest.mark.parametrize("email", ["not-an-email", "a@b", "a b@example.com", "张三@example.com",
                                       "a@@example.com", ".a@example.com"])
    def test_bad_email_is_held(self, email: str) -> None:
        """A malformed email holds the employee."""
        out = run([dept("D1")], [emp("E1", email=email)])
        assert reasons(out) == [f"email: '{email}' is not a valid email address (error)"]

    def test_name_required_and_limited(self) -> None:
        """An empty or over-long name holds the employee."""
        out = run([dept("D1")], [emp("E1", name=""), emp("E2", name="名" * 256),
                                 emp("E3", name="名" * 255)])
        assert out.held_employees == {"E1", "E2"}

    @pytest.mark.parametrize(("field", "value", "limit"), [
        ("job_title", "职" * 101, 100), ("en_name", "a" * 256, 255), ("city", "城" * 101, 100),
    ])
    def test_field_lengths(self, field: str, value: str, limit: int) -> None:
        """Fields over Feishu's length limits hold the employee."""
        out = run([dept("D1")], [emp("E1", **{field: value})])
        assert reasons(out) == [
            f"{field}: '{value[:20]}…' is {len(value)} characters; Feishu allows at most {limit}"
            " (error)"]

    def test_department_rules(self) -> None:
        """No department, more than 50, unknown or held departments hold the employee."""
        many = [dept(f"D{i}") for i in range(1, 52)]
        out = run([*many, dept("X", parent="NOPE")], [
            Employee(key="E0", name="零", department_keys=(), mobile="13800000000"),
            emp("E1", *[f"D{i}" for i in range(1, 52)]),
            emp("E2", "D1", "D99"),
            emp("E3", "X"),
            emp("E4", "D1", "D2"),
        ])
        assert out.held_employees == {"E0", "E1", "E2", "E3"}
        assert reasons(out, "E0") == [
            "department_keys: is empty; Feishu needs at least one department (error)"]
        assert reasons(out, "E1") == [
            "department_keys: lists 51 departments; Feishu allows at most 50 (error)"]
        assert reasons(out, "E2") == [
            "department_keys: department 'D99' does not exist in the source (error)"]
        assert reasons(out, "E3") == ["department_keys: department 'X' is held back (error)"]

    def test_duplicate_department_in_list(self) -> None:
        """Listing the same department twice is held (Feishu would reject the orders)."""
        out = run([dept("D1")], [emp("E1", "D1", "D1")])
        assert reasons(out) == ["department_keys: lists the same department twice (error)"]

    @pytest.mark.parametrize(("field", "a", "b", "shown"), [
        ("email", "Li.Lei@Example.com", "li.lei@example.com", "li.lei@example.com"),
        ("mobile", "13800138000", "+8613800138000", "+8613800138000"),
        ("employee_no", "007", "007", "007"),
    ])
    def test_duplicates_hold_every_holder(self, field: str, a: str, b: str, shown: str) -> None:
        """Active employees sharing an email/mobile/employee_no are all held, naming the other."""
        out = run([dept("D1")], [emp("E1", **{field: a}), emp("E2", **{field: b}), emp("E3")])
        assert out.held_employees == {"E1", "E2"}
        assert reasons(out, "E1") == [
            f"{field}: {field} '{shown}' is also used by employee 'E2' (error)"]
        assert reasons(out, "E2") == [
            f"{field}: {field} '{shown}' is also used by employee 'E1' (error)"]

    def test_terminated_do_not_count_as_duplicates(self) -> None:
        """A leaver's email does not clash with an active employee's."""
        out = run([dept("D1")], [emp("E1", email="a@example.com"),
                                 emp("E2", email="a@example.com", status=Status.TERMINATED)])
        assert out.issues == []

    def test_employee_type_range(self) -> None:
        """An employee type outside 1..5 is held."""
        bad = emp("E1", employee_type=7)
        out = run([dept("D1")], [bad, emp("E2", employee_type=EmployeeType.CONSULTANT)])
        assert reasons(out) == ["employee_type: 7 is not a Feishu employee type (1 to 5) (error)"]

    @pytest.mark.parametrize(("key", "reason"), [
        ("E" * 65, "is 65 characters; Feishu user ids allow at most 64"),
        ("E 1", "contains whitespace; Feishu user ids cannot"),
    ])
    def test_user_key_rules(self, key: str, reason: str) -> None:
        """User keys must be ≤ 64 characters without whitespace — for leavers too."""
        out = run([dept("D1")], [emp(key), emp(key + "x", status=Status.TERMINATED)])
        assert out.held_employees == {key, key + "x"}
        assert reasons(out, key) == [f"key: {reason} (error)"]

    def test_terminated_pass_with_minimal_checks(self) -> None:
        """A terminated employee with bad fields passes through as a leaver."""
        leaver = Employee(key="E1", name="", department_keys=(), mobile="bad",
                          status=Status.TERMINATED)
        out = run([dept("D1")], [leaver])
        assert out.issues == []
        assert out.snapshot.employees == {"E1": leaver}


class TestManagers:
    @pytest.mark.parametrize(("manager", "why"), [
        ("E9", "manager 'E9' does not exist in the source"),
        ("E2", "manager 'E2' is terminated"),
        ("E1", "is the employee themself"),
        ("E3", "manager 'E3' is held back"),
    ])
    def test_unusable_manager_is_cleared(self, manager: str, why: str) -> None:
        """Unknown, terminated, held or self managers are cleared with a warning."""
        out = run([dept("D1")], [emp("E1", manager_key=manager),
                                 emp("E2", status=Status.TERMINATED), emp("E3", mobile="1")])
        assert out.snapshot.employees["E1"].manager_key is None
        assert "E1" not in out.held_employees
        assert reasons(out, "E1") == [f"manager_key: {why} (warning)"]
        held = manager == "E3"  # a held manager is set aside for the diff; the others are gone
        assert out.held_managers == ({"E1": "E3"} if held else {})
        assert str(next(i for i in out.issues if i.key == "E1")).endswith(
            "(link kept)" if held else "(cleared)")

    def test_manager_cycle_holds_members_and_clears_their_reports(self) -> None:
        """Every member of a manager cycle is held; people reporting into it lose the manager."""
        out = run([dept("D1")], [emp("E1", manager_key="E2"), emp("E2", manager_key="E3"),
                                 emp("E3", manager_key="E1"), emp("E4", manager_key="E2"),
                                 emp("E5", manager_key="E4")])
        assert out.held_employees == {"E1", "E2", "E3"}
        cycle = "manager_key: is part of a manager cycle: E1 → E2 → E3 → E1 (error)"
        assert reasons(out, "E1") == [cycle]
        assert reasons(out, "E4") == ["manager_key: manager 'E2' is held back (warning)"]
        assert out.held_managers == {"E4": "E2"}
        assert out.snapshot.employees["E5"].manager_key == "E4"


class TestReport:
    def test_issue_order_is_sorted_and_deterministic(self) -> None:
        """Departments come first, then employees by key; the same input gives the same list."""
        d = [dept("D2", name=""), dept("D1", name="a/b"), dept("D3")]
        e = [emp("E2", "D3", mobile="1"), emp("E1", "D3", name="")]
        first = run(d, e).issues
        assert [(i.entity, i.key) for i in first] == [
            ("department", "D1"), ("department", "D2"), ("employee", "E1"), ("employee", "E2")]
        assert [i.reason for i in run(list(reversed(d)), list(reversed(e))).issues] == [
            i.reason for i in first]

    def test_issue_str_names_position_record_and_outcome(self) -> None:
        """str(Issue) reads like a compiler message."""
        issue = Issue("employee", "E0042", "mobile", "'12345' is not a valid mobile number",
                      "error", "employees.csv:17")
        assert str(issue) == ("employees.csv:17: employee E0042: mobile: '12345' is not a valid "
                              "mobile number (held back)")
        assert str(Issue("employee", None, "key", "employee_id is empty", "error")) == (
            "employee: key: employee_id is empty (held back)")


def test_large_org_validates_cleanly() -> None:
    """100k employees in 5k departments validate with no issue (speed: see orgsync.bench)."""
    org = generate_org(employees=100_000, departments=5000, levels=6)
    result = validate(SourceData(org))
    assert result.issues == []
    assert len(result.snapshot.employees) == 100_000


class TestApplied:
    """Records Feishu already holds (``applied``, by the ledger's fingerprints): their own
    values are not checked again; what involves other records still is."""

    def test_own_values_of_applied_records_are_not_checked_again(self) -> None:
        odd = emp("E1", mobile="12345")  # Feishu holds it, so Feishu accepted it
        data = SourceData(Snapshot.of([dept("D1")], [odd, emp("E2", mobile="999")]))
        out = validate(data, applied={"E1"})
        assert "E1" in out.snapshot.employees
        assert [(i.key, i.field) for i in out.issues] == [("E2", "mobile")]
        assert out.held_employees == {"E2"}

    def test_a_changed_record_clashing_with_an_applied_one_is_still_caught(self) -> None:
        data = SourceData(Snapshot.of([dept("D1")], [
            emp("E1", email="same@example.com"), emp("E2", email="SAME@example.com")]))
        out = validate(data, applied={"E1"})
        assert out.held_employees == {"E1", "E2"}

    def test_a_mobile_clash_is_caught_across_the_plus86_spellings(self) -> None:
        data = SourceData(Snapshot.of([dept("D1")], [
            emp("E1", mobile="13800138000"), emp("E2", mobile="+8613800138000")]))
        out = validate(data, applied={"E1"})
        assert out.held_employees == {"E1", "E2"}
        assert reasons(out, "E2") == [
            "mobile: mobile '+8613800138000' is also used by employee 'E1' (error)"]

    def test_a_missing_department_is_still_caught_for_an_applied_record(self) -> None:
        out = validate(SourceData(Snapshot.of([dept("D1")], [emp("E1", "D9")])),
                       applied={"E1"})
        assert reasons(out, "E1") == [
            "department_keys: department 'D9' does not exist in the source (error)"]

    def test_a_cycle_closed_by_a_changed_link_is_found(self) -> None:
        people = [emp("E1", manager_key="E2"), emp("E2", manager_key="E3"),
                  emp("E3", manager_key="E1")]
        out = validate(SourceData(Snapshot.of([dept("D1")], people)), applied={"E1", "E2"})
        assert out.held_employees == {"E1", "E2", "E3"}
