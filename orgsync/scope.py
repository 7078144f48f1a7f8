"""Who orgsync manages at all: the ``scope:`` rules, applied to every source's read.

A rule is a mapping of conditions, all of which must hold::

    scope:
      exclude:
        - {name: outsourced, employee_type: outsourced}
        - {name: hong-kong, city: 香港}
        - {department: D07}                         # the department D07 and its subtree
        - {department_path: 集团/香港子公司}          # the same, by names from the root
        - {email_domain: 'partner\\.com|vendor\\.cn'}  # a regex, whole domain, any case
        - {join_date: {from: 2026-07-01}}           # from / until, both inclusive
        - {all: [{city: 深圳}, {not: {employee_type: regular}}]}
      include: [...]       # when given, only people some include rule matches

A person is in scope when an include rule matches (or there are none) and no
exclude rule does. Conditions on a person's department look at their primary
department. The same rules run on the canonical records of every source (CSV, xlsx,
LDAP, HRIS), after the read and before validation: LDAP's ``match`` and HRIS's
``params`` still filter at the server, ``scope`` filters what came back.

Departments are decided by the department conditions only: person conditions are
*unknown* for a department (three-valued logic: ``not`` of unknown is unknown), and
an unknown rule neither excludes a department nor keeps one out; the ancestors of an
included department are in scope (they hold it). A department out of scope is never
created; a department in scope under one an exclude rule took out is held, with the
remedy, and so is a person in scope who is also a member of a department out of it.

Out of scope is not gone: the records are taken out of the snapshot and held, so the
diff never freezes, deletes or strips them, and links to them are kept as for
anyone held. A managed person who leaves scope is *released* (``user.release``: no
Feishu call; the ledger keeps their row, marked released) and later runs leave them
be; coming back into scope re-adopts the same account. A managed department that leaves
scope is released too (``department.release``: its ledger row goes), and matched again by
its id (:mod:`orgsync.takeover`) when it comes back. The reason always names the
rule: ``out of scope by rule 'outsourced' (scope.exclude[0])``.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from connectors.mapping import EMPLOYEE_TYPES
from orgsync.model import Department, Employee, Snapshot, Status
from orgsync.options import Section
from orgsync.source import Issue, SourceData

#: A condition's verdict: True, False, or None (unknown: a person field asked of a department)
Verdict = bool | None
_FIELDS = ("employee_type", "city", "department", "department_path", "email_domain",
           "join_date")
_COMBINATORS = ("all", "any", "not")
_NO_INCLUDE = "out of scope: no include rule matches"


@dataclass(frozen=True, slots=True)
class Subject:
    """What a rule looks at: a person (``employee``) or a department alone."""

    department: str | None  # the person's primary department, or the department itself
    employee: Employee | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: a label and its test."""

    label: str  # "'outsourced' (scope.exclude[0])" or "scope.exclude[1]"
    test: Callable[[Subject, _Tree], Verdict]


@dataclass(frozen=True, slots=True)
class ScopeConfig:
    """The ``scope`` section: include and exclude rules (none: everyone is in scope)."""

    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()

    @property
    def active(self) -> bool:
        """Whether any rule is configured."""
        return bool(self.include or self.exclude)


@dataclass(frozen=True, slots=True)
class _Tree:
    """The source's departments: ancestry and name paths, for subtree conditions."""

    departments: Mapping[str, Department]

    def chain(self, key: str | None) -> list[str]:
        """``key`` and its ancestors, nearest first (a cycle stops the walk)."""
        out: list[str] = []
        while key is not None and key not in out:
            out.append(key)
            d = self.departments.get(key)
            key = d.parent_key if d is not None else None
        return out

    def path(self, key: str) -> str:
        """Names from the root, ``/``-joined."""
        return "/".join(self.departments[k].name if k in self.departments else k
                        for k in reversed(self.chain(key)))


# ---------------------------------------------------------------- parsing


def parse_scope(s: Section) -> ScopeConfig:
    """The ``scope`` section; ConfigError naming the rule's key for a bad one."""
    include = _rules(s, "include")
    exclude = _rules(s, "exclude")
    return ScopeConfig(include, exclude)


def _rules(s: Section, key: str) -> tuple[Rule, ...]:
    raw = s.raw(key)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise s.error(key, "expected a list of rules",
                      f"e.g. {key}: [{{employee_type: outsourced}}, {{city: 香港}}]")
    rules = []
    for i, item in enumerate(raw):
        where = f"{key}[{i}]"
        name = item.get("name") if isinstance(item, Mapping) else None
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise s.error(f"{where}.name", "expected the rule's name as text")
        test = _condition(s, where, item, named=True)
        label = f"'{name.strip()}' ({s.key(where)})" if name else s.key(where)
        rules.append(Rule(label, test))
    return tuple(rules)


def _condition(s: Section, where: str, spec: Any, *, named: bool = False
               ) -> Callable[[Subject, _Tree], Verdict]:
    """A rule mapping → its test (all its conditions must hold)."""
    if not isinstance(spec, Mapping) or not spec:
        raise s.error(where, "expected a rule: a mapping of conditions",
                      "e.g. {employee_type: outsourced}, {city: 香港}, {department: D07}, "
                      "{any: [...]}, {not: {...}}")
    tests: list[Callable[[Subject, _Tree], Verdict]] = []
    for field_name, value in spec.items():
        at = f"{where}.{field_name}"
        if field_name == "name" and named:
            continue
        if field_name in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise s.error(at, "expected a non-empty list of rules")
            parts = [_condition(s, f"{at}[{i}]", v) for i, v in enumerate(value)]
            tests.append(_all(parts) if field_name == "all" else _any(parts))
        elif field_name == "not":
            tests.append(_not(_condition(s, at, value)))
        elif field_name in _FIELDS:
            tests.append(_field(s, at, str(field_name), value))
        else:
            known = ", ".join((*_FIELDS, *_COMBINATORS, *(("name",) if named else ())))
            raise s.error(at, "unknown condition", f"known: {known}")
    return tests[0] if len(tests) == 1 else _all(tests)


def _all(parts: Sequence[Callable[[Subject, _Tree], Verdict]]
         ) -> Callable[[Subject, _Tree], Verdict]:
    return _combined(parts, decisive=False)


def _any(parts: Sequence[Callable[[Subject, _Tree], Verdict]]
         ) -> Callable[[Subject, _Tree], Verdict]:
    return _combined(parts, decisive=True)


def _combined(parts: Sequence[Callable[[Subject, _Tree], Verdict]], *, decisive: bool
              ) -> Callable[[Subject, _Tree], Verdict]:
    """``all`` (one False decides) or ``any`` (one True decides); otherwise unknown if a
    part is unknown (Kleene's logic)."""
    def test(x: Subject, t: _Tree) -> Verdict:
        verdicts = [p(x, t) for p in parts]
        return decisive if decisive in verdicts else None if None in verdicts else not decisive
    return test


def _not(inner: Callable[[Subject, _Tree], Verdict]) -> Callable[[Subject, _Tree], Verdict]:
    def test(x: Subject, t: _Tree) -> Verdict:
        verdict = inner(x, t)
        return None if verdict is None else not verdict
    return test


def _texts(s: Section, at: str, value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str | int) and str(v).strip() for v in values):
        raise s.error(at, f"expected a value or a list of values, got {value!r}")
    return tuple(unicodedata.normalize("NFKC", str(v)).strip() for v in values)


def _field(s: Section, at: str, name: str, value: Any) -> Callable[[Subject, _Tree], Verdict]:
    if name == "employee_type":
        types = set()
        for text in _texts(s, at, value):
            found = EMPLOYEE_TYPES.get(text.lower())
            if found is None:
                raise s.error(at, f"'{text}' is not an employee type",
                              "1-5, regular, intern, outsourced, contractor, consultant "
                              "(正式, 实习, 外包, 劳务, 顾问)")
            types.add(found)
        return _person(lambda e: e.employee_type in types)
    if name == "city":
        cities = set(_texts(s, at, value))
        return _person(lambda e: e.city is not None
                       and unicodedata.normalize("NFKC", e.city).strip() in cities)
    if name == "department":
        codes = set(_texts(s, at, value))
        return lambda x, t: None if x.department is None else \
            not codes.isdisjoint(t.chain(x.department))
    if name == "department_path":
        paths = [p.strip("/") for p in _texts(s, at, value)]
        return lambda x, t: None if x.department is None else any(
            (full := t.path(x.department)) == p or full.startswith(p + "/") for p in paths)
    if name == "email_domain":
        try:
            pattern = re.compile(str(value), re.IGNORECASE)
        except re.error as exc:
            raise s.error(at, f"not a regular expression: {exc}",
                          "e.g. email_domain: 'partner\\.com|vendor\\.cn'") from None
        return _person(lambda e: e.email is not None and "@" in e.email
                       and pattern.fullmatch(e.email.rpartition("@")[2]) is not None)
    # join_date
    if not isinstance(value, Mapping) or not value or set(value) - {"from", "until"}:
        raise s.error(at, "expected {from: DATE, until: DATE} (either may be left out)",
                      "e.g. join_date: {from: 2026-07-01}")
    bounds: dict[str, date] = {}
    for bound, raw in value.items():
        try:
            bounds[bound] = raw if isinstance(raw, date) else date.fromisoformat(str(raw))
        except ValueError:
            raise s.error(f"{at}.{bound}", f"'{raw}' is not a date", "write YYYY-MM-DD") \
                from None
    low, high = bounds.get("from", date.min), bounds.get("until", date.max)
    return _person(lambda e: e.join_date is not None and low <= e.join_date <= high)


def _person(check: Callable[[Employee], bool]) -> Callable[[Subject, _Tree], Verdict]:
    """A condition on a person's own fields: unknown for a department."""
    return lambda x, t: None if x.employee is None else check(x.employee)


# ---------------------------------------------------------------- applying


def out_of_scope(scope: ScopeConfig, subject: Subject, tree: _Tree) -> str | None:
    """Why ``subject`` is out of scope, or None when it is in.

    A person needs an include rule that matches; a department is kept out only by
    include rules that all say no for sure (an unknown one does not decide).
    """
    for rule in scope.exclude:
        if rule.test(subject, tree) is True:
            return f"out of scope by rule {rule.label}"
    if scope.include:
        verdicts = [r.test(subject, tree) for r in scope.include]
        if (True not in verdicts) if subject.employee is not None else \
                all(v is False for v in verdicts):
            names = ", ".join(r.label for r in scope.include)
            return f"{_NO_INCLUDE} ({names})"
    return None


def apply_scope(scope: ScopeConfig, data: SourceData) -> SourceData:
    """``data`` with what is out of scope taken out of the snapshot and held (see the
    module docstring); :attr:`SourceData.out_of_scope_employees` and ``…_departments`` say why, by key."""
    if not scope.active:
        return data
    tree = _Tree(data.snapshot.departments)
    dept_reasons: dict[str, str] = {}
    for key in sorted(tree.departments):
        reason = out_of_scope(scope, Subject(key), tree)
        if reason is not None:
            dept_reasons[key] = reason
    # An included department's ancestors hold it: only an exclude rule keeps them out.
    missed = {k for k, why in dept_reasons.items() if why.startswith(_NO_INCLUDE)}
    for key in sorted(tree.departments.keys() - dept_reasons.keys()):
        for holder in tree.chain(key)[1:]:
            if holder in missed:
                del dept_reasons[holder]
                missed.discard(holder)
    issues = list(data.issues)
    orphans: set[str] = set()
    for key in sorted(tree.departments.keys() - dept_reasons.keys()):
        above = next((k for k in tree.chain(key)[1:] if k in dept_reasons), None)
        if above is not None:
            orphans.add(key)
            issues.append(Issue(
                "department", key, "parent_key",
                f"is in scope but {above} above it is not ({dept_reasons[above]}); Feishu "
                f"cannot hold it without its parent: bring {above} into scope or take {key} "
                "out of it (scope.include / scope.exclude)", "error",
                data.where("department", key)))
    people: dict[str, Employee] = {}
    person_reasons: dict[str, str] = {}
    held: set[str] = set()  # in scope, but a member of a department that is not
    for key, e in data.snapshot.employees.items():
        primary = e.department_keys[0] if e.department_keys else None
        reason = out_of_scope(scope, Subject(primary, e), tree)
        if reason is not None:
            person_reasons[key] = reason
            continue
        outside = next((d for d in e.department_keys if d in dept_reasons), None)
        if outside is None:
            people[key] = e
            continue
        held.add(key)
        issues.append(Issue(
            "employee", key, "department_keys",
            f"is in scope but their department {outside} is not ({dept_reasons[outside]}); "
            f"orgsync cannot place them there: take them out of scope or bring {outside} "
            "into it (scope.include / scope.exclude)", "error", data.where("employee", key)))
    departments = {k: d for k, d in tree.departments.items() if k not in dept_reasons}
    return dataclasses.replace(
        data, snapshot=Snapshot(departments, people), issues=issues,
        held_departments=data.held_departments | dept_reasons.keys() | orphans,
        held_employees=data.held_employees | person_reasons.keys() | held,
        out_of_scope_departments=dept_reasons, out_of_scope_employees=person_reasons,
        out_of_scope_active=sum(1 for k in person_reasons
                                if data.snapshot.employees[k].status is Status.ACTIVE))
