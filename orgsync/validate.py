"""Validation: hold back the records Feishu would reject, clear the fields it would.

:func:`validate` takes what a connector read and returns a clean snapshot plus a
report. Records with an *error* are held back individually (their keys join the
held sets, so the diff engine leaves them untouched in Feishu); records with a
*warning* proceed with the offending field cleared. The run goes on either way.

Limits come from Feishu's contact API (``reference/feishu-api.md`` §1, §5.1, §6):
names ≤ 255 characters without ``/``, at most 25 department levels, 1–50
departments per user, ``user_id`` ≤ 64 characters without whitespace,
``job_title`` and ``city`` ≤ 100, mobiles in mainland or ``+<country code>``
form, an email for every non-+86 mobile (44020), unique email / mobile /
``employee_no`` (41001, 41002, 44051).

The custom-id *format* of keys is not checked here: :mod:`orgsync.identity`
maps keys Feishu would reject deterministically.

Everything is linear in the number of records (100k employees take about 0.3 s,
half that when the ledger says most of them are unchanged); the issue list is
sorted, so the same input gives the same report. Issues get the record's source
row (``employees.csv:17``) when the connector recorded it in
:attr:`SourceData.employee_rows` / ``department_rows``.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

from orgsync.model import Department, Employee, EmployeeType, Snapshot, Status
from orgsync.source import EntityKind, Issue, SourceData

MAX_NAME = 255
MAX_EN_NAME = 255
MAX_DEPTH = 25
MAX_USER_DEPARTMENTS = 50
MAX_USER_KEY = 64
MAX_JOB_TITLE = 100
MAX_CITY = 100
MAX_EMPLOYEE_NO = 255

_MAINLAND = re.compile(r"1\d{10}")
_PLUS86 = re.compile(r"\+861\d{10}")
_E164 = re.compile(r"\+[1-9]\d{1,14}")
_EXCEL_NUMBER = re.compile(r"[+-]?\d(?:\.\d+)?[eE]\+?\d+")
# Deliberately simple (and fast): ASCII local part, a dotted domain.
_EMAIL = re.compile(r"[A-Za-z0-9_%+'-]+(?:\.[A-Za-z0-9_%+'-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_WHITESPACE = re.compile(r"\s")
_GOOD_KEY = re.compile(rf"\S{{1,{MAX_USER_KEY}}}")
# Mainland with or without +86, or any other country code (E.164, at most 15 digits).
_GOOD_MOBILE = re.compile(r"(?:\+86)?1\d{10}|\+(?!86)[1-9]\d{1,14}")
_EMPLOYEE_TYPES = frozenset(EmployeeType)
_SHOW_OTHERS = 5
_R = TypeVar("_R", Department, Employee)


def validate(data: SourceData, *, applied: AbstractSet[str] = frozenset()) -> SourceData:
    """Return a new :class:`SourceData` holding only the records that pass.

    ``data`` is not modified. The result's issues are ``data``'s plus the new
    ones, sorted; its held sets are ``data``'s plus every key held back here.
    Records whose key is already in ``data``'s held sets are dropped silently
    (the connector reported them).

    ``applied``: employees whose record is exactly what Feishu holds (the ledger's
    fingerprints say so). Feishu accepted those values, so the per-value rules
    are not run again for them, and a manager cycle, which needs a changed link,
    is looked for from the others only. What involves other records (duplicates,
    departments, held managers) is checked for everyone.
    """
    issues: list[Issue] = []
    held_departments = set(data.held_departments)
    held_employees = set(data.held_employees)
    departments = _without(data.snapshot.departments, held_departments)
    employees = _without(data.snapshot.employees, held_employees)

    dept_errors = _department_errors(departments, held_departments)
    issues.extend(dept_errors)
    held_departments.update(i.key for i in dept_errors if i.key is not None)
    passing_departments = _without(departments, held_departments)

    emp_errors = _employee_errors(employees, departments, held_departments, applied)
    bad_employees = {i.key for i in emp_errors if i.key is not None}
    issues.extend(emp_errors)
    held_employees.update(bad_employees)
    passing_employees = _without(employees, bad_employees)

    held_managers: dict[str, str] = {}
    manager_issues, passing_employees = _resolve_managers(
        passing_employees, employees, data.held_employees, held_managers, applied
    )
    issues.extend(manager_issues)
    held_employees.update(i.key for i in manager_issues if i.held and i.key is not None)
    dotted_issues, passing_employees = _resolve_dotted_lines(passing_employees, employees,
                                                             data.held_employees)
    issues.extend(dotted_issues)

    held_leaders: dict[str, str] = {}
    dept_warnings, passing_departments = _department_warnings(
        passing_departments, passing_employees, employees, held_employees, held_leaders
    )
    issues.extend(dept_warnings)

    if data.department_rows or data.employee_rows:
        issues = [
            i if i.where else dataclasses.replace(i, where=data.where(i.entity, i.key))
            for i in issues
        ]
    issues = sorted([*data.issues, *issues], key=Issue.sort_key)
    return SourceData(
        snapshot=Snapshot(passing_departments, passing_employees),
        issues=issues,
        held_departments=held_departments,
        held_employees=held_employees,
        department_rows=data.department_rows,
        employee_rows=data.employee_rows,
        held_managers=held_managers,
        held_leaders=held_leaders,
        out_of_scope_employees=data.out_of_scope_employees,
        out_of_scope_departments=data.out_of_scope_departments,
        out_of_scope_active=data.out_of_scope_active,
        profile_fields=data.profile_fields,
        catalogs=data.catalogs,
        groups=data.groups,
        custom_attrs=data.custom_attrs,
    )


def _without(records: dict[str, _R], keys: set[str]) -> dict[str, _R]:
    """A copy of ``records`` without ``keys`` (a plain copy when none is there)."""
    if keys.isdisjoint(records):
        return dict(records)
    return {k: r for k, r in records.items() if k not in keys}


# --- departments ---------------------------------------------------------------------------


def _dept_error(key: str, field: str | None, reason: str) -> Issue:
    return Issue("department", key, field, reason, "error")


def _department_errors(departments: dict[str, Department], held_in: set[str]) -> list[Issue]:
    """Errors for departments: own values, siblings, dangling parents, cycles, depth.

    A held department holds its whole subtree: Feishu cannot create a child under
    a parent that orgsync may not create.
    """
    out: list[Issue] = []
    for key, d in departments.items():
        out.extend(_name_errors("department", key, "name", d.name))
        if d.en_name is not None and len(d.en_name) > MAX_EN_NAME:
            out.append(_dept_error(key, "en_name", _too_long(d.en_name, MAX_EN_NAME)))
        parent = d.parent_key
        if parent is not None and parent not in departments:
            if parent in held_in:
                reason = f"parent department '{parent}' is held back"
            else:
                reason = f"parent department '{parent}' does not exist in the source"
            out.append(_dept_error(key, "parent_key", reason))
    out.extend(_sibling_name_errors(departments))

    bad = {i.key for i in out if i.key is not None}
    children: dict[str | None, list[str]] = defaultdict(list)
    for key, d in departments.items():
        parent = d.parent_key if d.parent_key in departments else None
        children[parent].append(key)

    # Walk down from the top; anything never reached hangs from a cycle.
    reached: set[str] = set()
    queue: deque[tuple[str, int]] = deque((k, 1) for k in children[None])
    while queue:
        key, depth = queue.popleft()
        reached.add(key)
        parent = departments[key].parent_key
        if parent is not None and parent in bad and key not in bad:
            out.append(_dept_error(key, "parent_key", f"parent department '{parent}' is held back"))
            bad.add(key)
        elif depth > MAX_DEPTH and key not in bad:
            out.append(_dept_error(
                key, "parent_key",
                f"is {depth} levels deep; Feishu allows at most {MAX_DEPTH}",
            ))
            bad.add(key)
        queue.extend((c, depth + 1) for c in children.get(key, ()))

    if len(reached) < len(departments):
        unreached = [k for k in departments if k not in reached]
        cycles = _cycles(unreached, {k: departments[k].parent_key for k in unreached}.get)
        for cycle in cycles:
            text = " → ".join([*cycle, cycle[0]])
            out.extend(
                _dept_error(k, "parent_key", f"is part of a department cycle: {text}")
                for k in cycle
            )
        in_cycle = {k for c in cycles for k in c}
        bad.update(in_cycle)
        below: deque[str] = deque(in_cycle)
        while below:
            key = below.popleft()
            for child in children.get(key, ()):
                if child not in in_cycle and child not in reached:
                    reached.add(child)
                    if child not in bad:
                        bad.add(child)
                        out.append(_dept_error(
                            child, "parent_key", f"parent department '{key}' is held back"
                        ))
                    below.append(child)
    return out


def _sibling_name_errors(departments: dict[str, Department]) -> list[Issue]:
    """Every department sharing its name with a sibling: we cannot know which is right."""
    by_name: dict[tuple[str | None, str], list[str]] = defaultdict(list)
    for key, d in departments.items():
        if d.name:
            by_name[(d.parent_key, d.name)].append(key)
    out: list[Issue] = []
    for (_, name), keys in by_name.items():
        if len(keys) > 1:
            for key in keys:
                others = _name_others(keys, key)
                out.append(_dept_error(
                    key, "name", f"name '{name}' is also used by sibling department {others}"
                ))
    return out


def _department_warnings(
    departments: dict[str, Department],
    passing_employees: dict[str, Employee],
    all_employees: dict[str, Employee],
    held_employees: set[str],
    held_leaders: dict[str, str],
) -> tuple[list[Issue], dict[str, Department]]:
    """Warnings that clear a field: duplicate sibling ``order``, unusable leader.

    A leader who is held back goes to ``held_leaders`` (department → leader) too.
    """
    out: list[Issue] = []
    fixed: dict[str, Department] = {}

    by_parent: dict[str | None, list[str]] = defaultdict(list)
    for key, d in departments.items():
        if d.order is not None:
            by_parent[d.parent_key].append(key)
    for keys in by_parent.values():
        seen: dict[int | None, str] = {}
        for key in sorted(keys):
            d = departments[key]
            first = seen.setdefault(d.order, key)
            if first != key:
                out.append(Issue(
                    "department", key, "order",
                    f"order {d.order} is also used by sibling department '{first}'", "warning",
                ))
                fixed[key] = dataclasses.replace(d, order=None)

    for key, d in departments.items():
        leader = d.leader_key
        if leader is not None and (
            leader not in passing_employees
            or passing_employees[leader].status is not Status.ACTIVE
        ):
            why = _unusable_person(leader, all_employees, held_employees)
            kept = _is_held(leader, all_employees, held_employees)
            if kept:
                held_leaders[key] = leader
            out.append(Issue("department", key, "leader_key", f"leader {why}", "warning",
                             kept=kept))
            fixed[key] = dataclasses.replace(fixed.get(key, d), leader_key=None)

    # Deputies and HRBPs: someone unusable is left out (the others stay); deputies need
    # a main leader (feishu-api-more.md §1.12: leaders holds exactly one main leader).
    for key, d in departments.items():
        if not (d.deputy_leader_keys or d.hrbp_keys):
            continue
        d = fixed.get(key, d)
        kept_lists: dict[str, tuple[str, ...]] = {}
        for field_name, role in (("deputy_leader_keys", "deputy leader"), ("hrbp_keys", "HRBP")):
            people: tuple[str, ...] = getattr(d, field_name)
            usable = []
            for person in dict.fromkeys(people):
                p = passing_employees.get(person)
                if p is None or p.status is not Status.ACTIVE:
                    why = _unusable_person(person, all_employees, held_employees)
                    out.append(Issue("department", key, field_name, f"{role} {why}", "warning"))
                elif not (field_name == "deputy_leader_keys" and person == d.leader_key):
                    usable.append(person)
            if tuple(usable) != people:
                kept_lists[field_name] = tuple(usable)
        deputies = kept_lists.get("deputy_leader_keys", d.deputy_leader_keys)
        if deputies and d.leader_key is None:
            out.append(Issue("department", key, "deputy_leader_keys",
                             "deputy leaders need a main leader (leader_id) in Feishu",
                             "warning"))
            kept_lists["deputy_leader_keys"] = ()
        if kept_lists:
            fixed[key] = dataclasses.replace(
                d, deputy_leader_keys=kept_lists.get("deputy_leader_keys", d.deputy_leader_keys),
                hrbp_keys=kept_lists.get("hrbp_keys", d.hrbp_keys))

    if not fixed:
        return out, departments
    return out, {k: fixed.get(k, d) for k, d in departments.items()}


# --- employees -----------------------------------------------------------------------------


def _emp_error(key: str, field: str | None, reason: str) -> Issue:
    return Issue("employee", key, field, reason, "error")


def _employee_errors(
    employees: dict[str, Employee],
    departments: dict[str, Department],
    held_departments: set[str],
    applied: AbstractSet[str] = frozenset(),
) -> list[Issue]:
    """Errors for employees' own values, departments and duplicates (the own values of
    ``applied`` records are not checked again, see :func:`validate`).

    Terminated employees only get the key checks: the diff uses them as leavers.
    The loop is written for the common case — a valid record costs a few lookups,
    three regex matches and no allocation the garbage collector tracks — and is
    the only pass over the records: at 10⁵ records every pass costs tens of
    milliseconds in cache misses alone. Problems are worded on a slow path.
    """
    out: list[Issue] = []
    # Values and their keys in parallel lists: duplicates are rare, so one set()
    # per field tells whether the slow grouping below is needed at all.
    values: dict[str, tuple[list[str], list[str]]] = {
        "email": ([], []), "mobile": ([], []), "employee_no": ([], []),
    }
    emails, email_keys = values["email"]
    mobiles, mobile_keys = values["mobile"]
    numbers, number_keys = values["employee_no"]
    active = Status.ACTIVE
    types = _EMPLOYEE_TYPES
    good_key = _GOOD_KEY.fullmatch
    good_mobile = _GOOD_MOBILE.fullmatch
    good_email = _EMAIL.fullmatch

    for key, e in employees.items():
        if key in applied:  # Feishu holds these values: only what other records may clash with
            number, mobile, email = e.employee_no, e.mobile, e.email
            if number is not None:
                numbers.append(number)
                number_keys.append(key)
            if mobile is not None:
                mobiles.append(mobile if mobile[0] == "+" else "+86" + mobile)
                mobile_keys.append(key)
            if email is not None:
                emails.append(email if email.islower() else email.lower())
                email_keys.append(key)
            dks = e.department_keys
            if len(dks) != 1 or dks[0] not in departments or dks[0] in held_departments:
                out.extend(_department_ref_errors(key, dks, departments, held_departments))
            continue
        if good_key(key) is None:
            out.extend(_key_errors(key))
        if e.status is not active:
            continue
        name, en_name, job_title, city, number = e.name, e.en_name, e.job_title, e.city, e.employee_no
        if (
            not name or len(name) > MAX_NAME or e.employee_type not in types
            or (en_name is not None and len(en_name) > MAX_EN_NAME)
            or (job_title is not None and len(job_title) > MAX_JOB_TITLE)
            or (city is not None and len(city) > MAX_CITY)
            or (number is not None and len(number) > MAX_EMPLOYEE_NO)
        ):
            out.extend(_field_errors(key, e))
        if number is not None:
            numbers.append(number)
            number_keys.append(key)

        mobile = e.mobile
        international = False
        if mobile is not None and good_mobile(mobile):
            if mobile[0] == "+":
                international = not mobile.startswith("+86")
            else:
                mobile = "+86" + mobile
            mobiles.append(mobile)
            mobile_keys.append(key)
        else:
            out.append(_mobile_error(key, mobile))

        email = e.email
        if email is None:
            if international:
                out.append(_emp_error(
                    key, "email",
                    f"is missing; Feishu requires an email for the non-mainland mobile '{mobile}'",
                ))
        elif good_email(email) is None:
            out.append(_emp_error(key, "email", f"'{email}' is not a valid email address"))
        else:
            emails.append(email if email.islower() else email.lower())
            email_keys.append(key)

        dks = e.department_keys
        if len(dks) != 1 or dks[0] not in departments or dks[0] in held_departments:
            out.extend(_department_ref_errors(key, dks, departments, held_departments))

    for field, (vals, keys) in values.items():
        if len(set(vals)) != len(vals):
            out.extend(_duplicate_errors(field, vals, keys))
    return out


def _duplicate_errors(field: str, vals: list[str], keys: list[str]) -> list[Issue]:
    """An error for every key whose ``field`` value another key has too."""
    holders: dict[str, list[str]] = defaultdict(list)
    for value, key in zip(vals, keys, strict=True):
        holders[value].append(key)
    out = []
    for value, same in holders.items():
        if len(same) > 1:
            for key in same:
                others = _name_others(same, key)
                out.append(_emp_error(
                    key, field, f"{field} '{value}' is also used by employee {others}"
                ))
    return out


def _mobile_error(key: str, mobile: str | None) -> Issue:
    if mobile is None:
        return _emp_error(key, "mobile", "is missing; Feishu requires a mobile number")
    return _emp_error(key, "mobile", mobile_problem(mobile) or "is not valid")


def _field_errors(key: str, e: Employee) -> list[Issue]:
    out = _name_errors("employee", key, "name", e.name)
    for field, value, limit in (
        ("en_name", e.en_name, MAX_EN_NAME),
        ("job_title", e.job_title, MAX_JOB_TITLE),
        ("city", e.city, MAX_CITY),
        ("employee_no", e.employee_no, MAX_EMPLOYEE_NO),
    ):
        if value is not None and len(value) > limit:
            out.append(_emp_error(key, field, _too_long(value, limit)))
    if e.employee_type not in _EMPLOYEE_TYPES:
        out.append(_emp_error(
            key, "employee_type", f"{e.employee_type!r} is not a Feishu employee type (1 to 5)"
        ))
    return out


def _key_errors(key: str) -> list[Issue]:
    out = []
    if not key:
        out.append(_emp_error(key, "key", "is empty"))
    if len(key) > MAX_USER_KEY:
        out.append(_emp_error(
            key, "key", f"is {len(key)} characters; Feishu user ids allow at most {MAX_USER_KEY}"
        ))
    if _WHITESPACE.search(key):
        out.append(_emp_error(key, "key", "contains whitespace; Feishu user ids cannot"))
    return out


def _department_ref_errors(
    key: str, dks: tuple[str, ...], departments: dict[str, Department], held: set[str]
) -> list[Issue]:
    out: list[Issue] = []
    if not dks:
        out.append(_emp_error(
            key, "department_keys", "is empty; Feishu needs at least one department"
        ))
    elif len(dks) > MAX_USER_DEPARTMENTS:
        out.append(_emp_error(
            key, "department_keys",
            f"lists {len(dks)} departments; Feishu allows at most {MAX_USER_DEPARTMENTS}",
        ))
    for dk in dks:
        if dk in held:
            out.append(_emp_error(key, "department_keys", f"department '{dk}' is held back"))
        elif dk not in departments:
            out.append(_emp_error(
                key, "department_keys", f"department '{dk}' does not exist in the source"
            ))
    if len(set(dks)) != len(dks):
        out.append(_emp_error(key, "department_keys", "lists the same department twice"))
    return out


def _resolve_managers(
    passing: dict[str, Employee], all_employees: dict[str, Employee], held_before: set[str],
    held_managers: dict[str, str], applied: AbstractSet[str] = frozenset(),
) -> tuple[list[Issue], dict[str, Employee]]:
    """Clear unusable managers (warning) and hold manager cycles (error).

    A manager who is held back (not gone) goes to ``held_managers`` too. Cycles are
    looked for from the links not in ``applied`` (a cycle of applied links alone would
    be in Feishu already, which refuses them).
    """
    out: list[Issue] = []
    active = Status.ACTIVE
    # One pass: the links to someone unusable (themself, absent, not active, held back),
    # and the changed links, where a cycle would have to start.
    broken: list[tuple[str, Employee]] = []
    starts: list[str] = []
    for k, e in passing.items():
        m = e.manager_key
        if m is None or e.status is not active:
            continue
        if k not in applied:
            starts.append(k)
        if m == k or (boss := passing.get(m)) is None or boss.status is not active:
            broken.append((k, e))
    fixed: dict[str, Employee] = {}
    for key, e in broken:
        manager = str(e.manager_key)
        kept = False
        if manager == key:
            reason = "is the employee themself"
        else:
            reason = f"manager {_unusable_person(manager, all_employees, held_before)}"
            kept = _is_held(manager, all_employees, held_before)
            if kept:
                held_managers[key] = manager
        out.append(Issue("employee", key, "manager_key", reason, "warning", kept=kept))
        fixed[key] = dataclasses.replace(e, manager_key=None)
    if fixed:
        passing = {**passing, **fixed}

    def manager_of(key: str) -> str | None:
        e = passing.get(key)
        return e.manager_key if e is not None and e.status is active else None

    cycles = _cycles(starts, manager_of)
    if not cycles:
        return out, passing
    in_cycle: set[str] = set()
    for cycle in cycles:
        text = " → ".join([*cycle, cycle[0]])
        out.extend(
            _emp_error(k, "manager_key", f"is part of a manager cycle: {text}") for k in cycle
        )
        in_cycle.update(cycle)
    result: dict[str, Employee] = {}
    for key, e in passing.items():
        if key in in_cycle:
            continue
        if e.manager_key in in_cycle:
            out.append(Issue(
                "employee", key, "manager_key", f"manager '{e.manager_key}' is held back",
                "warning", kept=True,
            ))
            held_managers[key] = e.manager_key
            e = dataclasses.replace(e, manager_key=None)
        result[key] = e
    return out, result


# --- shared helpers ------------------------------------------------------------------------


def mobile_problem(mobile: str, *, written: str | None = None) -> str | None:
    """Why Feishu would reject ``mobile`` (41004), or ``None`` when it is acceptable.

    Accepted: mainland ``1xxxxxxxxxx`` or ``+861xxxxxxxxxx``, or any other
    ``+<country code><number>`` of at most 15 digits (E.164). The reason quotes
    ``written`` (the source cell ``mobile`` was normalised from), else ``mobile``.
    """
    if _MAINLAND.fullmatch(mobile) or _PLUS86.fullmatch(mobile):
        return None
    cell = mobile if written is None else written
    if _EXCEL_NUMBER.fullmatch(mobile):
        return (
            f"'{cell}' looks like a number Excel turned into scientific notation;"
            " export the column as text"
        )
    if mobile.startswith("+86"):
        return (
            f"'{cell}' is not a valid mainland China mobile number"
            " (+86 then 11 digits starting with 1)"
        )
    if mobile.startswith("+"):
        if _E164.fullmatch(mobile):
            return None
        return (
            f"'{cell}' is not a valid international number"
            " (+<country code><digits>, at most 15 digits)"
        )
    return (
        f"'{cell}' is not a valid mobile number"
        " (11 digits starting with 1, or +<country code><digits>)"
    )


def normalize_mobile(mobile: str) -> str:
    """E.164 form of an acceptable mobile: mainland numbers get ``+86``."""
    return "+86" + mobile if _MAINLAND.fullmatch(mobile) else mobile


def _name_errors(kind: EntityKind, key: str, field: str, name: str) -> list[Issue]:
    if not name:
        return [Issue(kind, key, field, "is empty; Feishu requires a name", "error")]
    out = []
    if len(name) > MAX_NAME:
        out.append(Issue(kind, key, field, _too_long(name, MAX_NAME), "error"))
    if kind == "department" and "/" in name:
        out.append(Issue(kind, key, field, f"'{name}' contains '/', which Feishu rejects", "error"))
    return out


def _too_long(value: str, limit: int) -> str:
    return f"'{value[:20]}…' is {len(value)} characters; Feishu allows at most {limit}"


def _name_others(keys: list[str], key: str) -> str:
    others = sorted(k for k in keys if k != key)
    shown = ", ".join(f"'{k}'" for k in others[:_SHOW_OTHERS])
    if len(others) > _SHOW_OTHERS:
        shown += f" and {len(others) - _SHOW_OTHERS} more"
    return shown


def _is_held(key: str, employees: dict[str, Employee], held: set[str]) -> bool:
    """True when ``key`` is a person the source has but holds back (not one who left)."""
    e = employees.get(key)
    return key in held if e is None else e.status is Status.ACTIVE


_DOTTED = "dotted_line_manager_keys"


def _resolve_dotted_lines(passing: dict[str, Employee], all_employees: dict[str, Employee],
                          held: set[str]) -> tuple[list[Issue], dict[str, Employee]]:
    """Leave out dotted-line managers who are unusable (the person themself, absent, not
    active, held back) and the links that close a cycle of dotted-line links (each a
    warning; the person proceeds with the others).

    A cycle is cut at its last link in key order (a depth-first walk from the keys in
    order): the same source cuts it the same way every run.
    """
    people = {k: e for k, e in passing.items() if e.profile.get(_DOTTED)}
    if not people:
        return [], passing
    out: list[Issue] = []
    links: dict[str, list[str]] = {}
    for key in sorted(people):
        kept = []
        for boss in people[key].profile[_DOTTED]:
            b = passing.get(boss)
            if boss == key:
                out.append(Issue("employee", key, _DOTTED, "is the employee themself", "warning"))
            elif b is None or b.status is not Status.ACTIVE:
                out.append(Issue("employee", key, _DOTTED, "dotted-line manager "
                                 + _unusable_person(boss, all_employees, held), "warning"))
            else:
                kept.append(boss)
        links[key] = kept
    state: dict[str, int] = {}  # 1 on the walk's path, 2 done
    for start in sorted(links):
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(list(links[start])))]  # iterative: chains may be long
        while stack:
            key, bosses = stack[-1]
            boss = next(bosses, None)
            if boss is None:
                state[key] = 2
                stack.pop()
            elif state.get(boss) == 1:
                links[key].remove(boss)
                out.append(Issue("employee", key, _DOTTED,
                                 f"dotted-line manager '{boss}' would close a cycle of "
                                 "dotted-line links", "warning"))
            elif boss not in state:
                state[boss] = 1
                stack.append((boss, iter(list(links.get(boss, ())))))
    fixed = {k: dataclasses.replace(people[k], profile=_with_dotted(people[k], kept))
             for k, kept in links.items() if kept != list(people[k].profile[_DOTTED])}
    return out, {**passing, **fixed} if fixed else passing


def _with_dotted(e: Employee, keys: list[str]) -> dict[str, Any]:
    profile = {k: v for k, v in e.profile.items() if k != _DOTTED}
    if keys:
        profile[_DOTTED] = keys
    return profile


def _unusable_person(key: str, employees: dict[str, Employee], held: set[str]) -> str:
    """Why ``key`` cannot be referenced as a manager or leader."""
    e = employees.get(key)
    if e is None:
        if key in held:
            return f"'{key}' is held back"
        return f"'{key}' does not exist in the source"
    if e.status is not Status.ACTIVE:
        return f"'{key}' is {e.status}"
    return f"'{key}' is held back"


def _cycles(keys: Iterable[str], parent_of: Callable[[str], str | None]) -> list[list[str]]:
    """Cycles in a functional graph (each node has at most one parent), linear time.

    ``parent_of`` gives a node's parent (None at a root) for every node reachable
    from ``keys``. Each cycle is rotated to start at its smallest key; cycles are
    sorted.
    """
    walk_of: dict[str, int] = {}  # node -> the walk that first reached it
    cycles: list[list[str]] = []
    path: list[str] = []  # reused: one list per walk would wake the garbage collector
    for walk, start in enumerate(keys):
        if start in walk_of:
            continue
        node: str | None = start
        path.clear()
        while node is not None and node not in walk_of:
            walk_of[node] = walk
            path.append(node)
            node = parent_of(node)
        if node is not None and walk_of[node] == walk:
            cycle = path[path.index(node):]
            i = cycle.index(min(cycle))
            cycles.append(cycle[i:] + cycle[:i])
    cycles.sort()
    return cycles
