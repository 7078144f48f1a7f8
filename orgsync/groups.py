"""User groups from HR: the ``groups:`` config section and the rules that compute members.

Each group has a key (its name in the config and the ledger), a Feishu name, a custom
``group_id`` (the key unless ``id`` is given) and a member rule, evaluated every run on the
validated snapshot (:func:`evaluate`). A rule is a mapping whose keys all have to hold:

* ``department: D01`` (or a list): everyone in that department's subtree;
  ``direct: true`` next to it: only the department's own members;
* ``reports_to: E0001``: that manager's whole reporting line (not the manager);
* ``is_manager: true``: anyone someone reports to;
* ``source_group: eng`` (or a list): the people in that group of the source (LDAP group
  objects, nested groups flattened); a source group that is missing or empty is a failed
  read for the groups that use it, which are then left as they are;
* any employee field (``city: 北京``, ``employee_type: intern``, ``job_title``…): equal to
  the value, or one of a list; ``">=P7"``, ``"P7+"``, ``"<2024-01-01"``, ``"!=北京"`` compare
  in natural order (``P10`` after ``P9``);
* ``all: [rules]``, ``any: [rules]``, ``not: rule``.

Rules are evaluated as set operations over per-field indexes, on people numbered in key
order (:class:`Population`), each distinct rule once per run: 200 groups over 100k people
cost a few set unions of small ints each, not a rule call per person and group.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter, itemgetter
from typing import Any

from orgsync.model import Department, Employee, EmployeeType
from orgsync.options import Section, describe

MAX_GROUPS = 500
"""Groups per tenant, normal and dynamic together (feishu-api-more.md §4, 42016)."""
MAX_GROUP_MEMBERS = 100_000
"""Users per normal group (42012)."""
NAME_MAX = 100
DESCRIPTION_MAX = 500
GROUP_ID_MAX = 64
_GROUP_ID = re.compile(r"^[A-Za-z0-9]+$")
_COMPARE = re.compile(r"^(>=|<=|!=|>|<)\s*(.+)$")
_STRUCTURAL = ("department", "direct", "reports_to", "is_manager", "source_group", "all", "any",
               "not")
_NOT_FIELDS = frozenset({"key", "department_keys", "manager_key", "status", "mobile"})
FIELDS = tuple(f.name for f in fields(Employee) if f.name not in _NOT_FIELDS)
"""Employee fields a rule may compare."""

Keys = frozenset[str]
Ids = frozenset[int]
"""People as their positions in :attr:`Population.keys` (sets of small ints are several
times cheaper to build, combine and digest than sets of keys)."""


class Population:
    """The people a rule picks from, numbered in key order, with the indexes rules share
    (built on first use) and the results of the rules evaluated on it: a rule several
    groups share (``not: {is_manager: false}``, a department subtree) is evaluated once.
    ``keys`` (default: all of ``employees``) are the people taken; ``manager_keys``, when
    they are a part of a larger population, gives the keys anyone in that one reports to
    (``is_manager`` asks it: a manager's reports need not be taken)."""

    def __init__(self, employees: Mapping[str, Employee],
                 departments: Mapping[str, Department],
                 groups: Mapping[str, frozenset[str]] | None = None, *,
                 keys: Iterable[str] | None = None,
                 manager_keys: Callable[[], Iterable[str | None]] | None = None) -> None:
        self.keys: list[str] = sorted(employees if keys is None else keys)
        """Every person's key, in order: a position in :data:`Ids` indexes it."""
        self._records = list(map(employees.__getitem__, self.keys))
        self.groups = groups or {}
        self.all: Ids = frozenset(range(len(self.keys)))
        self._children: dict[str, list[str]] = {}
        for dept in departments.values():
            if dept.parent_key:
                self._children.setdefault(dept.parent_key, []).append(dept.key)
        self._values: dict[str, list[Any]] = {}
        self._indexes: dict[str, dict[Any, list[int]]] = {}
        self._departments: dict[str, list[int]] | None = None
        self._reports: dict[str, list[int]] | None = None
        self._managers: Ids | None = None
        self._manager_keys = manager_keys
        self._results: dict[str, Ids] = {}

    def values(self, name: str) -> list[Any]:
        """Everyone's ``name`` field, by position."""
        found = self._values.get(name)
        if found is None:
            found = self._values[name] = list(map(attrgetter(name), self._records))
        return found

    def index(self, name: str) -> dict[Any, list[int]]:
        """Field value (as text, a number or an ISO date) → the people holding it."""
        found = self._indexes.get(name)
        if found is None:
            # grouped by raw value first: _plain then runs per distinct value, not per person
            raw: defaultdict[Any, list[int]] = defaultdict(list)
            for i, v in enumerate(self.values(name)):
                raw[v].append(i)
            found = {}
            for value, ids in raw.items():
                found.setdefault(_plain(value), []).extend(ids)
            self._indexes[name] = found
        return found

    def in_departments(self) -> dict[str, list[int]]:
        """Department key → its own members (the people with it among their departments)."""
        if self._departments is None:
            found: defaultdict[str, list[int]] = defaultdict(list)
            for i, depts in enumerate(self.values("department_keys")):
                for d in depts:
                    found[d].append(i)
            self._departments = dict(found)
        return self._departments

    def ids(self, keys: Iterable[str]) -> Ids:
        """The positions of those of ``keys`` who are in the population (found by bisection
        in the sorted keys: no 100k-entry dict for a few hundred managers)."""
        order, found = self.keys, []
        for k in keys:
            i = bisect_left(order, k)
            if i < len(order) and order[i] == k:
                found.append(i)
        return frozenset(found)

    def keys_of(self, ids: Iterable[int]) -> Keys:
        """The keys of the people at ``ids``."""
        return frozenset(map(self.keys.__getitem__, ids))

    def in_order(self, ids: Iterable[int], *, ordered: bool = False) -> Sequence[str]:
        """The keys of the people at ``ids``, sorted (positions follow the keys' order);
        ``ordered``: ``ids`` is a list already in ascending order."""
        order = ids if ordered and isinstance(ids, list) else sorted(ids)
        if len(order) < 2:
            return [self.keys[i] for i in order]
        return itemgetter(*order)(self.keys)  # type: ignore[no-any-return]  # one C call

    def result(self, rule: str, evaluate: Callable[[Population], Ids]) -> Ids:
        """``evaluate``'s result, computed once per ``rule`` (the rule's written form)."""
        found = self._results.get(rule)
        if found is None:
            found = self._results[rule] = evaluate(self)
        return found

    def subtree(self, department: str) -> list[str]:
        """``department`` and every department below it (cycle-safe)."""
        out, seen, todo = [], set(), [department]
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                out.append(d)
                todo.extend(self._children.get(d, ()))
        return out

    def managers(self) -> Ids:
        """The people someone reports to: someone taken, or, with ``manager_keys`` given,
        someone of the larger population this one is a part of."""
        if self._managers is None:
            bosses = set(self._manager_keys() if self._manager_keys is not None
                         else self.values("manager_key"))
            self._managers = self.ids(k for k in bosses if k)
        return self._managers

    def reports(self) -> dict[str, list[int]]:
        """Manager key → their direct reports."""
        if self._reports is None:
            reports: defaultdict[Any, list[int]] = defaultdict(list)
            for i, manager in enumerate(self.values("manager_key")):
                reports[manager].append(i)
            reports.pop(None, None)
            reports.pop("", None)
            self._reports = dict(reports)
        return self._reports


Rule = Callable[[Population], Ids]


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """One managed group as configured."""

    key: str
    name: str
    group_id: str
    description: str | None
    rule: Rule = field(compare=False)
    source: str = ""
    """The rule as written, for ``explain`` and messages."""
    source_groups: tuple[str, ...] = ()
    """The source groups the rule reads (each must come back non-empty)."""
    local: bool = False
    """The rule picks each person by their own record, the department tree and whether
    anyone reports to them (no ``reports_to``, no ``source_group``): a plan may evaluate it
    on the people it changes alone (:func:`orgsync.group_plan.plan_groups`)."""


@dataclass(frozen=True)
class GroupsConfig:
    """The ``groups:`` section."""

    define: tuple[GroupSpec, ...] = ()
    max_removal_fraction: float = 0.20
    """A plan removing more than this share of a guarded group's members is held."""
    guard_min_members: int = 50
    """Groups with at least this many members are guarded."""


def evaluate(spec: GroupSpec, population: Population) -> Keys:
    """The keys of ``population`` that ``spec``'s rule puts in the group."""
    return population.keys_of(spec.rule(population))


# --------------------------------------------------------------------------- config


def parse_groups(s: Section) -> GroupsConfig:
    """Read the ``groups:`` section (every problem a ConfigError naming the key)."""
    fraction = s.number("max_removal_fraction", GroupsConfig.max_removal_fraction, maximum=1.0)
    min_members = s.number("guard_min_members", GroupsConfig.guard_min_members, minimum=1)
    define = s.section("define")
    specs: list[GroupSpec] = []
    names: dict[str, str] = {}
    ids: dict[str, str] = {}
    for key in list(define.data):
        if not isinstance(key, str) or not key.strip():
            raise define.error(str(key), "a group key must be non-empty text")
        spec = _parse_group(define.section(key), key)
        for seen, value, what in ((names, spec.name, "name"), (ids, spec.group_id, "id")):
            if value in seen:
                raise define.error(key, f"{what} {value!r} is also group {seen[value]!r}'s",
                                   f"give each group its own {what}: Feishu refuses a "
                                   f"duplicate (47009 / 47005)")
            seen[value] = key
        specs.append(spec)
    define.done()
    if len(specs) > MAX_GROUPS:
        raise s.error("define", f"{len(specs)} groups, over Feishu's {MAX_GROUPS} per tenant",
                      f"define at most {MAX_GROUPS} groups (42016)")
    return GroupsConfig(tuple(specs), float(fraction), int(min_members))


def _parse_group(g: Section, key: str) -> GroupSpec:
    name = g.string("name")
    if len(name) > NAME_MAX:
        raise g.error("name", f"longer than Feishu's {NAME_MAX} characters",
                      "shorten the name (42013)")
    description = g.string("description", None)
    if description is not None and len(description) > DESCRIPTION_MAX:
        raise g.error("description", f"longer than Feishu's {DESCRIPTION_MAX} characters",
                      "shorten it (42014)")
    group_id = g.string("id", None)
    if group_id is None:
        if not _GROUP_ID.match(key) or len(key) > GROUP_ID_MAX:
            raise g.error("id", f"is needed: the key {key!r} is no valid Feishu group id",
                          f"add 'id:' of up to {GROUP_ID_MAX} letters and digits (42002)")
        group_id = key
    elif not _GROUP_ID.match(group_id) or len(group_id) > GROUP_ID_MAX:
        raise g.error("id", f"{group_id!r} is no valid Feishu group id",
                      f"use up to {GROUP_ID_MAX} letters and digits, no spaces (42002)")
    raw = g.raw("members")
    if raw is None:
        raise g.missing("members", "add 'members:' with a rule, e.g. {department: D01}")
    refs: list[str] = []
    rule = _rule(raw, g, "members", refs)
    g.done()
    return GroupSpec(key, name, group_id, description, rule, source=_shown(raw),
                     source_groups=tuple(dict.fromkeys(refs)), local=_local(raw))


def _local(raw: Any) -> bool:
    """Whether a rule (as written, already checked) is :attr:`GroupSpec.local`."""
    if isinstance(raw, Mapping):
        return all(name not in _NONLOCAL and _local(value) for name, value in raw.items())
    if isinstance(raw, list):
        return all(_local(value) for value in raw)
    return True


#: Rules whose verdict on a person depends on other people's records (a reporting line
#: through them) or on what the source's groups hold (not mirrored).
_NONLOCAL = frozenset({"reports_to", "source_group"})


def _rule(raw: Any, s: Section, key: str, refs: list[str]) -> Rule:
    """A rule from its config form (``key`` is where it is written, for errors)."""
    if not isinstance(raw, Mapping) or not raw:
        raise s.error(key, f"a rule must be a non-empty mapping, got {describe(raw)}",
                      "write e.g. {department: D01} or {all: [{city: 北京}, {is_manager: true}]}")
    parts: list[Rule] = []
    direct = raw.get("direct", False)
    if not isinstance(direct, bool) or ("direct" in raw and "department" not in raw):
        raise s.error(f"{key}.direct", "is true or false, next to 'department:'")
    for name, value in raw.items():
        where = f"{key}.{name}"
        if name == "direct":
            continue
        if name == "department":
            parts.append(_departments(_texts(value, s, where), direct))
        elif name == "source_group":
            names = _texts(value, s, where)
            refs.extend(names)
            parts.append(_source_groups(names))
        elif name == "reports_to":
            parts.append(_reporting_line(_texts(value, s, where)))
        elif name == "is_manager":
            if not isinstance(value, bool):
                raise s.error(where, f"expected true or false, got {describe(value)}")
            parts.append(_managers(value))
        elif name in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise s.error(where, f"expected a non-empty list of rules, got {describe(value)}")
            subs = [_rule(v, s, f"{where}[{i}]", refs) for i, v in enumerate(value)]
            parts.append(_all(subs) if name == "all" else _any(subs))
        elif name == "not":
            parts.append(_not(_rule(value, s, where, refs)))
        elif name in FIELDS:
            parts.append(_field(name, value, s, where))
        else:
            raise s.error(where, f"unknown rule {name!r}",
                          "one of " + ", ".join((*_STRUCTURAL, *FIELDS)))
    if len(parts) == 1:
        return _once(repr(raw), parts[0])
    # each condition once too: {city: 北京, employee_type: intern} and {city: 北京,
    # is_manager: true} share the set of 北京's people
    conditions = [name for name in raw if name != "direct"]
    return _once(repr(raw), _all(_once(repr({name: raw[name], "direct": direct}
                                             if name == "department" else {name: raw[name]}),
                                       part) for name, part in zip(conditions, parts, strict=True)))


def _once(written: str, evaluate: Rule) -> Rule:
    """``evaluate``, computed once per population for the rule written ``written``."""
    return lambda p: p.result(written, evaluate)


def _texts(value: Any, s: Section, where: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str | int) and not isinstance(v, bool)
                             for v in values):
        raise s.error(where, f"expected a key or a list of keys, got {describe(value)}")
    return tuple(str(v) for v in values)


def _field(name: str, value: Any, s: Section, where: str) -> Rule:
    values = value if isinstance(value, list) else [value]
    tests: list[Callable[[Any], bool]] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise s.error(where, f"expected a value or a list of values, got {describe(v)}")
        tests.append(_test(name, v, s, where))

    def rule(p: Population) -> Ids:
        index = p.index(name)
        return frozenset().union(*(ids for held, ids in index.items()
                                   if held is not None and any(t(held) for t in tests)))
    return rule


def _test(name: str, value: str | int | float, s: Section, where: str) -> Callable[[Any], bool]:
    text = str(value).strip()
    op, operand = "==", text
    if (m := _COMPARE.match(text)) is not None:
        op, operand = m.group(1), m.group(2).strip()
    elif text.endswith("+") and len(text) > 1:
        op, operand = ">=", text[:-1].strip()
    want: Any = operand
    if name == "employee_type":
        want = _employee_type(operand, s, where)
    wanted = _natural(want)
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
    check = compare[op]
    return lambda held: check(_natural(held), wanted)


def _employee_type(text: str, s: Section, where: str) -> int:
    if text.isdigit() and int(text) in {t.value for t in EmployeeType}:
        return int(text)
    try:
        return int(EmployeeType[text.upper()])
    except KeyError:
        raise s.error(where, f"{text!r} is no employee type",
                      "1-5 or " + ", ".join(t.name.lower() for t in EmployeeType)) from None


def _natural(value: Any) -> tuple[tuple[int, Any], ...]:
    """Natural order: digits as numbers (``P9`` < ``P10``), the rest as text."""
    return tuple((0, int(part)) if part.isdigit() else (1, part)
                 for part in re.split(r"(\d+)", str(value).strip().casefold()) if part)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _departments(keys: tuple[str, ...], direct: bool) -> Rule:
    def rule(p: Population) -> Ids:
        index = p.in_departments()
        depts = keys if direct else [d for k in keys for d in p.subtree(k)]
        return frozenset().union(*(index.get(d, ()) for d in depts))
    return rule


def _reporting_line(managers: tuple[str, ...]) -> Rule:
    def rule(p: Population) -> Ids:
        reports, keys = p.reports(), p.keys
        found: set[int] = set()
        todo = [r for m in managers for r in reports.get(m, ())]
        while todo:  # a manager cycle ends: everyone is visited once
            i = todo.pop()
            if i not in found:
                found.add(i)
                todo.extend(reports.get(keys[i], ()))
        return frozenset(found) - p.ids(managers)
    return rule


def _source_groups(names: tuple[str, ...]) -> Rule:
    return lambda p: p.ids(frozenset().union(*(p.groups.get(n, ()) for n in names)))


def _managers(wanted: bool) -> Rule:
    return lambda p: p.managers() if wanted else p.all - p.managers()


def _all(rules: Iterable[Rule]) -> Rule:
    subs = tuple(rules)

    def rule(p: Population) -> Ids:
        found = sorted((r(p) for r in subs), key=len)  # the smallest first: cheapest
        return found[0].intersection(*found[1:])
    return rule


def _any(rules: Iterable[Rule]) -> Rule:
    subs = tuple(rules)
    return lambda p: frozenset().union(*(r(p) for r in subs))


def _not(sub: Rule) -> Rule:
    return lambda p: p.all - sub(p)


def _shown(raw: Any) -> str:
    if isinstance(raw, Mapping):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in raw.items()) + "}"
    if isinstance(raw, list):
        return "[" + ", ".join(_shown(v) for v in raw) + "]"
    return str(raw)
