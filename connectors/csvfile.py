"""``type: csv`` — orgsync's native two-file CSV format.

``departments.csv``: ``department_id,name,parent_id`` (+ optional ``leader_id,
order,en_name``); an empty ``parent_id`` means top level.

``employees.csv``: ``employee_id,name,email,mobile,department_ids`` (+ optional
``en_name,manager_id,job_title,employee_type,join_date,city,status,
employee_no``; an absent optional column reads as empty cells: a minimal file
works). ``department_ids`` is ``;``-separated, primary first;
``employee_type`` is 1–5 or regular / intern / outsourced / contractor /
consultant (正式 / 实习 / 外包 / 劳务 / 顾问), empty = regular; ``join_date`` is
``YYYY-MM-DD``; ``status`` is active / terminated (在职 / 离职), empty = active.
Mobiles and emails go through :mod:`connectors.contact` (E.164, lower case), the
rule every connector and mode shares.

Options (config ``source`` section): ``departments`` and ``employees`` (paths,
relative to the config file), ``columns`` (``{departments: {canonical: "Their
Header"}, employees: {…}}``), ``delimiter`` (default ``,``) and ``encoding``
(default ``utf-8-sig``: with or without a BOM).

Everything is read as text, so leading zeros survive; cells are stripped and
empty cells become ``None``. A file that cannot be read or decoded, or that lacks
a required column, raises :class:`~orgsync.errors.SourceError` — never a partial
org. A bad *row* (empty id, duplicate id, bad date, type, status or order) becomes
an :class:`~orgsync.source.Issue` at ``file:line`` and its key is held. Ids,
``employee_no`` and mobiles that Excel turned into scientific notation
(``1.38E+10``: the digits are gone) are such bad cells.

Hardening options: ``encoding: auto`` tries UTF-8 (with or without BOM), UTF-16
(by its BOM) and GB18030, in that order, and refuses a file whose GB18030
reading is not decisively plausible (:mod:`connectors.encoding`: a Big5 export
decodes as GB18030 too, as mojibake); ``delimiter: auto`` picks the most
frequent of ``,`` ``;`` tab ``|`` in the header line. ``department_path: <header>``
instead of a ``departments`` file names a column of department paths
(``研发中心/平台部/基础架构组``, split on ``path_separator``, default ``/``; several
paths ``;``-separated, primary first): the department tree is built from the
paths, each department keyed by its path — so a renamed department is a new
one. ``department_code: <header>`` pairs the path with a column of codes in the
same shape (``D01/D0105/D010502``): each level is then keyed by its code, named
by the path, and a rename is a patch. A row whose codes do not match its path
level for level is held; a code two rows place differently holds that
department. Optional columns ``department_leader`` (yes/no, 是/否: the person
leads their primary department) and ``department_order`` (that department's
order), renamed through ``columns.employees`` like the others, set leaders and
orders; a second, different claim on one department is a warning, the first
row wins.

``mapping`` replaces the native columns with the shared declarative field
mapping (:mod:`connectors.mapping`): ``mapping.employees`` (and
``mapping.departments`` with a departments file) map headers or templates to
canonical fields; without a departments file ``department_path`` is the rule
(``部门`` or ``"{一级部门}/{二级部门}"``) that gives each person's path, and
``department_code`` the rule for its codes (same shape).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import difflib
import io
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol, Self, TypeVar

from connectors.contact import EXCEL_NUMBER, ContactProblem, normalize_email, normalize_mobile
from connectors.encoding import CHOSEN, decode_legacy_cjk
from connectors.mapping import (
    FieldRule,
    Level,
    Mapped,
    MappingProblem,
    collect,
    department_from,
    departments_from_levels,
    employee_from,
    map_record,
    parse_rule,
    parse_rules,
    path_levels,
    profile_fields,
)
from connectors.source_options import mobile_region
from orgsync.errors import SourceError
from orgsync.feishu.schema import CATALOG_CODES, CODE_PARSE, PROFILE
from orgsync.gcpause import paused_gc
from orgsync.identity import Identity
from orgsync.model import CUSTOM_ATTRS, NO_PROFILE, Department, Employee, EmployeeType, Snapshot, Status
from orgsync.options import Section
from orgsync.source import EntityKind, Issue, SourceData

# canonical column -> required? (an absent optional column reads as empty cells)
DEPARTMENT_COLUMNS: dict[str, bool] = {
    "department_id": True, "name": True, "parent_id": True, "leader_id": False, "order": False,
    "en_name": False, "deputy_leader_ids": False, "hrbp_ids": False,
}
EMPLOYEE_COLUMNS: dict[str, bool] = {
    "employee_id": True, "name": True, "en_name": False, "email": True, "mobile": True,
    "department_ids": True, "manager_id": False, "job_title": False, "employee_type": False,
    "join_date": False, "city": False, "status": False, "employee_no": False,
    # then one optional column per profile field
    **{f.column or f.name: False for f in PROFILE if f.name != CUSTOM_ATTRS},
    # and the stable codes of job levels / families (renames, orgsync.catalogs)
    **dict.fromkeys(CATALOG_CODES.values(), False),
}
_BASE_EMPLOYEE_COLUMNS = list(EMPLOYEE_COLUMNS).index("employee_no") + 1
_PLAIN_WIDTH = len(EMPLOYEE_COLUMNS)  # then path mode's 4 columns, then custom.<name> ones
CUSTOM = "custom."  # a column custom.<attribute name>: a custom profile attribute's value
#: (position in a row's values, field, parser, the values it parsed by their text): a
#: column repeats a few values over 10⁵ rows (a gender, a job level), so each text is
#: parsed once (``orgsync.bench``)
_ProfileColumn = tuple[int, str, Callable[[str], Any] | None, dict[str, Any]]
_PROFILE_COLUMNS: dict[str, _ProfileColumn] = {
    column: (at, name, parse, {}) for at, (column, (name, parse)) in enumerate(zip(
        list(EMPLOYEE_COLUMNS)[_BASE_EMPLOYEE_COLUMNS:],
        [*((f.name, f.parse) for f in PROFILE if f.name != CUSTOM_ATTRS),
         *((code, CODE_PARSE) for code in CATALOG_CODES.values())], strict=True),
        start=_BASE_EMPLOYEE_COLUMNS)}
# employees.csv without a departments file: paths (and optionally codes) instead of ids,
# and the leader flag and order of the person's primary department: a row's last 4 values
PATH_EMPLOYEE_COLUMNS: dict[str, bool] = {
    **EMPLOYEE_COLUMNS, "department_ids": False, "department_path": True,
    "department_code": False, "department_leader": False, "department_order": False,
}
# path mode's columns about the person's primary department (see _with_claims)
_PATH_ONLY = ("department_leader", "department_order")
_DELIMITERS = ",;\t|"

_TYPES: dict[str, EmployeeType] = {
    **{str(int(t)): t for t in EmployeeType},
    **{t.name.lower(): t for t in EmployeeType},
    "正式": EmployeeType.REGULAR, "实习": EmployeeType.INTERN, "外包": EmployeeType.OUTSOURCED,
    "劳务": EmployeeType.CONTRACTOR, "顾问": EmployeeType.CONSULTANT,
}
_STATUSES = {"active": Status.ACTIVE, "terminated": Status.TERMINATED,
             "在职": Status.ACTIVE, "离职": Status.TERMINATED}
_FLAGS = {"是": True, "否": False, "yes": True, "no": False, "y": True, "n": False,
          "true": True, "false": False, "1": True, "0": False}
_REGULAR, _ACTIVE = EmployeeType.REGULAR, Status.ACTIVE  # enum attribute lookups are slow
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LIST_SEPARATOR = re.compile(r"[;；]")
_EXCEL_DIGITS = frozenset("0123456789+-")


def _mangled(value: str) -> bool:
    """True for Excel's scientific notation (``1.38E+10``): the digits are lost for good."""
    return value[0] in _EXCEL_DIGITS and ("E" in value or "e" in value) and bool(
        EXCEL_NUMBER.fullmatch(value))


def _excel_problem(value: str) -> str:
    return (f"'{value}' looks like a number Excel turned into scientific notation; the digits "
            "are lost, export the column as text")


@dataclass(frozen=True)
class CsvConnector:
    """Reads ``departments.csv`` and ``employees.csv`` (see the module docstring)."""

    type_name: ClassVar[str] = "csv"

    departments: Path | None
    employees: Path
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    path_separator: str = "/"
    mapping: Mapping[str, Mapping[str, FieldRule]] | None = None
    department_path: FieldRule | None = None
    department_code: FieldRule | None = None
    mobile_region: str = "CN"

    @classmethod
    def from_config(cls, options: Mapping[str, Any], *, base_dir: Path, file: str) -> Self:
        """Validate the ``source`` options; ConfigError with key ``source.<option>``."""
        opts = Section(options, name="source", file=file, base_dir=base_dir)
        own = cls._own_options(opts)

        def path(key: str) -> Path:
            found = opts.path(key)
            if found is None:
                raise opts.missing(key, f"the path of the CSV file, e.g. {key}: hr/{key}.csv "
                                        "(relative to the config file)")
            return found

        delimiter = opts.string("delimiter", ",", strip=False)
        if delimiter in ("tab", "\\t"):
            delimiter = "\t"
        if delimiter != "auto" and (len(delimiter) != 1 or delimiter in "\r\n\""):
            raise opts.error("delimiter", f"{delimiter!r} is not a single-character delimiter",
                             "use ',', ';', '|', 'tab' or 'auto'")
        encoding = opts.string("encoding", "utf-8-sig")
        try:
            if encoding != "auto":
                codecs.lookup(encoding)
        except LookupError:
            raise opts.error("encoding", f"unknown encoding {encoding!r}",
                             "e.g. utf-8-sig (default), gb18030, utf-16, auto") from None
        separator = opts.string("path_separator", "/", strip=False)
        if not separator.strip() or separator in ";；":
            raise opts.error("path_separator", f"{separator!r} cannot separate department paths",
                             "e.g. '/', '>' or '\\'")
        region = mobile_region(opts)
        has_paths = opts.raw("department_path") is not None
        departments = None if has_paths and opts.raw("departments") is None \
            else path("departments")
        if opts.raw("department_code") is not None and not has_paths:
            raise opts.error("department_code", "pairs with source.department_path",
                             "set department_path too, or remove department_code")
        mapping, department_path, department_code = _parse_mapping(opts,
                                                                   departments is not None)
        columns = _parse_columns(opts)
        path_only = sorted(set(columns.get("employees", {})) & set(_PATH_ONLY))
        if path_only and not has_paths:
            raise opts.error(f"columns.employees.{path_only[0]}",
                             "sets a department from a path column",
                             "use it with source.department_path, or set the leader and order "
                             "in the departments file")
        if mapping is None and has_paths:
            if departments is not None:
                raise opts.error("department_path", "cannot be combined with a departments file",
                                 "remove one of them")
            named = {"department_path": opts.string("department_path")}
            if opts.raw("department_code") is not None:
                named["department_code"] = opts.string("department_code")
            columns = {**columns, "employees": {**columns.get("employees", {}), **named}}
        connector = cls(
            departments=departments, employees=path("employees"), columns=columns,
            delimiter=delimiter, encoding=encoding, path_separator=separator, mapping=mapping,
            department_path=department_path, department_code=department_code,
            mobile_region=region, **own,
        )
        opts.done()
        return connector

    @classmethod
    def _own_options(cls, opts: Section) -> dict[str, Any]:
        """A subclass's own options (read before the shared ones), as constructor
        arguments; the CSV connector has none."""
        return {}

    def read(self) -> SourceData:
        """Read both files; SourceError if either cannot be read as a whole."""
        with paused_gc():
            return self._read()

    def _read(self) -> SourceData:
        if self.mapping is not None:
            return self._read_mapped(self.mapping)
        issues: list[Issue] = []
        held_depts: set[str] = set()
        held_emps: set[str] = set()
        dept_rows: dict[str, str] = {}
        emp_rows: dict[str, str] = {}
        held_rows: list[Identity] = []
        region = self.mobile_region
        if self.departments is None:
            emp_table = self._table(self.employees, "employees", PATH_EMPLOYEE_COLUMNS)
            chains: list[list[Level]] = []
            claims: list[_Claim] = []
            coded = "department_code" in emp_table.index
            employees = _collect(emp_table, "employee",
                                 _path_employee(self.path_separator, coded, region, chains,
                                                claims, _custom(emp_table),
                                                _profile_columns(emp_table)),
                                 issues, held_emps, emp_rows, held_rows)
            departments = _path_departments(chains, issues, held_depts)
            departments = _with_claims(departments, claims, employees, emp_rows, issues)
        else:
            dept_table = self._table(self.departments, "departments", DEPARTMENT_COLUMNS)
            emp_table = self._table(self.employees, "employees", EMPLOYEE_COLUMNS)
            departments = _collect(dept_table, "department", _department, issues, held_depts,
                                   dept_rows)
            custom, profile_columns = _custom(emp_table), _profile_columns(emp_table)

            def employee(row: _Values, key: str, problems: _Problems) -> Employee:
                # (a partial() with keywords would build a dict of them for every row)
                return _employee(row, key, problems, region, custom, profile_columns)

            employees = _collect(emp_table, "employee", employee, issues, held_emps, emp_rows,
                                 held_rows)
        return SourceData(Snapshot(departments, employees), issues, held_depts, held_emps,
                          dept_rows, emp_rows, held_rows=held_rows,
                          profile_fields=frozenset(f.name for f in PROFILE
                                                   if (f.column or f.name) in emp_table.index)
                          | ({CUSTOM_ATTRS} if _custom(emp_table) else set()))

    def _read_mapped(self, mapping: Mapping[str, Mapping[str, FieldRule]]) -> SourceData:
        """The ``mapping`` mode: rows as ``{header: cell}`` through the shared field mapping."""
        rules = mapping["employees"]
        extra = [r for r in (self.department_path, self.department_code) if r is not None]
        people = self._mapped_rows(self.employees, "employees", rules, extra)
        chains: list[list[Level]] = []
        if self.department_path is not None:
            for row, mapped, _ in people:
                code = self.department_code
                try:
                    levels = _levels(_joined(self.department_path.value(row)),
                                     _joined(code.value(row)) if code else None,
                                     code is not None, self.path_separator)
                except MappingProblem as exc:
                    mapped.problems.append(("department_keys", str(exc)))
                    continue
                chains.extend(levels)
                mapped.values["department_keys"] = tuple(c[-1][0] for c in levels if c)
        employees = collect(((where, m) for _, m, where in people), "employee")
        issues = list(employees.issues)
        held_departments: set[str] = set()
        dept_rows: dict[str, str] = {}
        if self.departments is not None:
            rows = self._mapped_rows(self.departments, "departments", mapping["departments"], [])
            collected = collect(((where, m) for _, m, where in rows), "department")
            departments = {k: department_from(m.values, k) for k, m in collected.records.items()}
            issues = [*collected.issues, *issues]
            held_departments, dept_rows = collected.held, collected.where
        else:
            departments = _path_departments(chains, issues, held_departments)
        snapshot = Snapshot(departments,
                            {k: employee_from(m.values, k) for k, m in employees.records.items()})
        return SourceData(snapshot, issues, held_departments, employees.held, dept_rows,
                          employees.where, held_rows=employees.held_rows,
                          profile_fields=profile_fields(rules))

    def _mapped_rows(self, path: Path, option: str, rules: Mapping[str, FieldRule],
                     extra: list[FieldRule]) -> list[tuple[dict[str, str | None], Mapped, str]]:
        header, rows = self._rows(path, option)
        names = [h.strip().lstrip("\ufeff") for h in header]
        known = set(names)
        for name, rule in [*rules.items(), *(("department_path", r) for r in extra)]:
            missing = sorted(r for r in rule.roots() if r not in known)
            if missing:
                found = ", ".join(repr(n) for n in names)
                raise SourceError(f"{path}: source.mapping for {name} reads column "
                                  f"'{missing[0]}', which the file does not have (found: {found})")
        out = []
        width = len(names)
        for line, cells in rows:
            row = {n: (cells[i].strip() or None) if i < len(cells) else None
                   for i, n in enumerate(names)}
            mapped = map_record(row, rules, region=self.mobile_region)
            if len(cells) > width:
                mapped.problems.append((None, f"has {len(cells)} cells but the header has "
                                              f"{width} (an unquoted delimiter inside a value?)"))
            out.append((row, mapped, f"{path.name}:{line}"))
        return out

    def _rows(self, path: Path, option: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
        """The header and an iterator over the non-blank rows (with their first line
        numbers) of one file; malformed CSV raises SourceError, here or while iterating."""
        text, encoding = _decode(path, option, self.encoding)
        delimiter = _sniff(text) if self.delimiter == "auto" else self.delimiter
        lines = _plain_lines(text)
        header, rows = (_split_rows(lines, delimiter) if lines is not None
                        else _csv_rows(path, text, encoding, delimiter))
        if header is None:
            raise SourceError(f"{path}: the file is empty (no header row); check "
                              f"source.{option}")
        return header, rows

    def _table(self, path: Path, option: str, columns: dict[str, bool]) -> _Table:
        header, rows = self._rows(path, option)
        if option == "employees":  # custom.<attribute> columns go last (orgsync.custom_attrs)
            columns = {**columns, **dict.fromkeys(
                (n for h in header if (n := h.strip().lstrip("\ufeff")).startswith(CUSTOM)),
                False)}
        rename = self.columns.get(option, {})
        delimiter = "," if self.delimiter == "auto" else self.delimiter
        index = _column_index(path, header, columns, rename, delimiter)
        return _Table(path.name, list(columns), index, len(header), rows)


def _csv_rows(path: Path, text: str, encoding: str, delimiter: str
              ) -> tuple[list[str] | None, Iterator[tuple[int, list[str]]]]:
    """:meth:`CsvConnector._rows` by the csv reader: the header (None when the text is
    empty) and the rows; malformed CSV raises SourceError, here or while iterating."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def malformed(exc: csv.Error) -> SourceError:
        return SourceError(f"{path}:{reader.line_num}: malformed CSV ({encoding}, delimiter "
                           f"{delimiter!r}): {exc}")

    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise malformed(exc) from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        line = reader.line_num
        try:
            for cells in reader:
                if cells and (cells[0].strip() or any(c.strip() for c in cells)):
                    yield line + 1, cells
                line = reader.line_num
        except csv.Error as exc:
            raise malformed(exc) from None

    return header, rows()


def _plain_lines(text: str) -> list[str] | None:
    """The lines of a text the csv reader would read as one row a line, each row the
    line split at the delimiter; None for any other text (the csv reader reads it).

    Such a text has no quote character (nothing is quoted, so no cell holds a line
    break or a delimiter), ends its lines all with LF or all with CRLF (``csv`` ends a
    line at CR, LF or CRLF), and has no line longer than the reader's field size limit
    (whose error the reader raises). Splitting costs half the reader's time.
    """
    if '"' in text:
        return None
    if "\r" in text:
        crlf = text.count("\r\n")
        if crlf != text.count("\r") or crlf != text.count("\n"):
            return None
        lines = text.split("\r\n")
    else:
        lines = text.split("\n")
    return lines if max(map(len, lines)) <= csv.field_size_limit() else None


def _split_rows(lines: list[str], delimiter: str
                ) -> tuple[list[str] | None, Iterator[tuple[int, list[str]]]]:
    """:meth:`CsvConnector._rows` of :func:`_plain_lines`' lines: the header (None when
    the text is empty; no cell when its line is, as the reader reads an empty line)."""
    first = lines[0]
    header = first.split(delimiter) if first else ([] if len(lines) > 1 else None)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, line in enumerate(itertools.islice(lines, 1, None), 2):
            cells = line.split(delimiter)
            if cells[0].strip() or any(c.strip() for c in cells):
                yield number, cells

    return header, rows()


def _custom(table: _Table) -> tuple[str, ...]:
    """The custom attributes the employees table has a ``custom.<name>`` column for."""
    return tuple(c.removeprefix(CUSTOM) for c in table.columns if c.startswith(CUSTOM))


def _profile_columns(table: _Table) -> tuple[_ProfileColumn, ...]:
    """The profile columns the employees table has: a row reads only those."""
    return tuple(c for name, c in _PROFILE_COLUMNS.items() if name in table.index)


@dataclass(frozen=True)
class _Table:
    name: str
    columns: list[str]  # the canonical columns, in the order parsers receive their values
    index: dict[str, int]  # canonical column -> position, for the columns present
    width: int
    rows: Iterator[tuple[int, list[str]]]  # (first line, cells), read once

    def picker(self) -> _Picker:
        """Cells → the raw values of :attr:`columns`, for a row padded to at least
        the header's width plus one empty cell, which absent columns read.
        """
        return itemgetter(*(self.index.get(c, -1) for c in self.columns))


_T = TypeVar("_T")


class _Picker(Protocol):
    """:meth:`_Table.picker`'s type: raw cells (str) or stripped ones (str | None) alike."""

    def __call__(self, cells: Sequence[_T], /) -> tuple[_T, ...]: ...


_R = TypeVar("_R", Department, Employee)
_Problems = list[tuple[str | None, str]]  # (canonical field, reason)
_Values = Sequence[str | None]  # a row's stripped cells (empty → None), in _Table.columns order


def _collect(
    table: _Table, entity: EntityKind, parse: Callable[[_Values, str, _Problems], _R],
    issues: list[Issue], held: set[str], rows: dict[str, str],
    held_rows: list[Identity] | None = None,
) -> dict[str, _R]:
    """Parse every row; hold rows with problems and every row of a repeated id.

    The id is the first canonical column. ``rows`` receives each kept record's
    position (``file:line``); ``held_rows`` (people) the identifying values of every
    held row (see :attr:`SourceData.held_rows`).
    """
    id_column = table.columns[0]
    ident = _identifier(table) if held_rows is not None else None
    sink: list[Identity] = held_rows if held_rows is not None else []
    pick = table.picker()
    width = table.width
    name = table.name
    pad: list[None] = [None] * (width + 1)
    repeated: dict[str, list[int]] = {}
    records: dict[str, _R] = {}
    bad: list[str] = []  # keys whose row has problems
    problems: _Problems = []  # reused: most rows have none
    for line, cells in table.rows:
        n = len(cells)
        stripped = [c.strip() or None for c in cells]
        if n < width:
            stripped += pad[n:]
        else:
            stripped.append(None)  # the cell absent columns read (see _Table.picker)
        values = pick(stripped)
        key = values[0]
        where = f"{name}:{line}"
        if key is None:
            issues.append(Issue(entity, None, "key", f"{id_column} is empty", "error", where))
            if ident is not None:
                sink.append(ident(values, where, False))
            continue
        if key in rows:  # every row seen is in ``rows`` until the end
            repeated.setdefault(key, [_line(rows[key])]).append(line)
            if ident is not None:
                sink.append(ident(values, where, True))
            continue
        rows[key] = where
        record = parse(values, key, problems)
        if n > width:  # an unquoted delimiter shifted the cells: none can be trusted
            problems.append((None, (
                f"has {n} cells but the header has {width} (an unquoted delimiter inside a value?)"
            )))
        if problems:
            issues.extend(Issue(entity, key, f, reason, "error", where) for f, reason in problems)
            if ident is not None:
                sink.append(ident(values, where, all(f != "key" for f, _ in problems)))
            problems.clear()
            bad.append(key)
        else:
            records[key] = record
    for key in bad:
        del rows[key]
        held.add(key)
    for key, lines in repeated.items():
        first = records.pop(key, None)
        at = rows.pop(key, "")
        held.add(key)
        if ident is not None and isinstance(first, Employee):  # the later rows are in already
            sink.append(Identity(key, first.email, first.mobile, at))
        for line in lines:
            others = ", ".join(str(n) for n in lines if n != line)
            issues.append(Issue(
                entity, key, "key",
                f"{id_column} '{key}' is also on line{'s' if len(lines) > 2 else ''} {others}",
                "error", f"{name}:{line}",
            ))
    return records


def _identifier(table: _Table) -> Callable[[_Values, str, bool], Identity]:
    """Row values → the row's :class:`Identity` (id, email, mobile as written)."""
    at = {c: i for i, c in enumerate(table.columns)}
    email, mobile = at.get("email"), at.get("mobile")

    def identity(values: _Values, where: str, usable: bool) -> Identity:
        return Identity(values[0], values[email] if email is not None else None,
                        values[mobile] if mobile is not None else None, where, usable=usable)
    return identity


def _line(where: str) -> int:
    """The line number of a ``file:line`` position."""
    return int(where.rpartition(":")[2])


def _department(row: _Values, key: str, problems: _Problems) -> Department:
    """One row of DEPARTMENT_COLUMNS."""
    _, name, parent, leader, raw_order, en_name, raw_deputies, raw_hrbps = row
    order = _order(raw_order, "order", problems)
    deputies, hrbps = _keys(raw_deputies), _keys(raw_hrbps)
    for field_name, value in (("key", key), ("parent_key", parent), ("leader_key", leader),
                              *(("deputy_leader_keys", k) for k in deputies),
                              *(("hrbp_keys", k) for k in hrbps)):
        if value is not None and _mangled(value):
            problems.append((field_name, _excel_problem(value)))
    return Department(key=key, name=name or "", parent_key=parent, leader_key=leader,
                      order=order, en_name=en_name, deputy_leader_keys=deputies, hrbp_keys=hrbps)


def _keys(cell: str | None) -> tuple[str, ...]:
    """A ``;``-separated cell of keys (empty: none)."""
    if cell is None:
        return ()
    return tuple(k for k in (p.strip() for p in _LIST_SEPARATOR.split(cell)) if k)


def _order(raw: str | None, field_name: str, problems: _Problems) -> int | None:
    """A department order cell as a number; a problem on ``field_name`` if it is none."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", raw)
    if text.isdigit():
        return int(text)
    problems.append((field_name, f"'{raw}' is not a non-negative whole number"))
    return None


def _employee(row: _Values, key: str, problems: _Problems, region: str = "CN",
              custom: tuple[str, ...] = (),
              profile_columns: tuple[_ProfileColumn, ...] = ()) -> Employee:
    """One row of EMPLOYEE_COLUMNS (the first values of a row), then the ``custom``
    attributes' cells (their names); ``region`` reads mobiles written without a country
    code, ``profile_columns`` are the profile columns the file has."""
    (_, name, en_name, email, mobile, depts, manager, job_title, raw_type, raw_date, city,
     raw_status, number) = row[:_BASE_EMPLOYEE_COLUMNS]
    etype = _REGULAR
    if raw_type is not None:
        # The common spellings hit directly; NFKC and case folding only for the rest.
        found = _TYPES.get(raw_type) or _TYPES.get(unicodedata.normalize("NFKC", raw_type).lower())
        if found is None:
            problems.append(("employee_type", (
                f"'{raw_type}' is not an employee type (1-5, regular, intern, outsourced,"
                " contractor, consultant)"
            )))
        else:
            etype = found

    joined: date | None = None
    if raw_date is not None:
        joined = _DATES.get(raw_date) or _iso_date(raw_date)
        if joined is None:
            problems.append(("join_date", f"'{raw_date}' is not a date in YYYY-MM-DD form"))

    status = _ACTIVE
    if raw_status is not None:
        found_status = _STATUSES.get(raw_status) or _STATUSES.get(raw_status.lower())
        if found_status is None:
            problems.append(("status", f"'{raw_status}' is not active or terminated"))
        else:
            status = found_status

    if mobile is not None:
        try:
            mobile = normalize_mobile(mobile, region)
        except ContactProblem as exc:
            problems.append(("mobile", str(exc)))
    if email is not None:
        email = normalize_email(email)
    depts = depts or ""
    if ";" in depts or "；" in depts:
        dept_keys = tuple(d.strip() for d in _LIST_SEPARATOR.split(depts) if d.strip())
    else:
        dept_keys = (depts,) if depts else ()
    # Excel's scientific notation starts like a number and has an exponent mark: the
    # exact check only runs for id-like values that look so (inline: once per row).
    digits = _EXCEL_DIGITS
    if ((key[0] in digits and ("E" in key or "e" in key))
            or (number is not None and number[0] in digits and ("E" in number or "e" in number))
            or (manager is not None and manager[0] in digits
                and ("E" in manager or "e" in manager))
            or (("E" in depts or "e" in depts) and any(d[0] in digits for d in dept_keys))):
        for field_name, value in (("key", key), ("employee_no", number),
                                  ("manager_key", manager),
                                  *(("department_keys", d) for d in dept_keys)):
            if value is not None and _mangled(value):
                problems.append((field_name, _excel_problem(value)))
    profile = _profile(row, problems, profile_columns) if profile_columns else {}
    if custom:
        values = {n: v for n, v in zip(custom, row[_PLAIN_WIDTH:], strict=False) if v}
        if values:
            profile[CUSTOM_ATTRS] = values
    employee = _new_employee(Employee)
    _init_employee(employee, key=key, name=name or "", department_keys=dept_keys,
                   en_name=en_name, email=email, mobile=mobile, manager_key=manager,
                   job_title=job_title, employee_no=number, employee_type=etype,
                   join_date=joined, city=city, status=status, profile=profile or NO_PROFILE)
    return employee


# Employee(**fields) itself: calling a class with keywords packs them into a dict on
# CPython 3.11 (type.__call__ has no vectorcall), while its __init__ called directly
# takes them as they are; the same object for half the cost (~0.04 s per 10⁵ rows).
_new_employee, _init_employee = Employee.__new__, Employee.__init__


def _profile(row: _Values, problems: _Problems,
             columns: tuple[_ProfileColumn, ...]) -> dict[str, Any]:
    """The profile fields of a row that have a value (a bad one is a problem), from the
    ``columns`` its table has (:func:`_profile_columns`)."""
    profile: dict[str, Any] = {}
    for at, name, parse, parsed in columns:
        raw = row[at]
        if raw is None:
            continue
        value = parsed.get(raw, _UNPARSED)
        if value is _UNPARSED:
            try:
                value = parse(raw) if parse is not None else raw
            except ValueError as exc:
                problems.append((name, str(exc)))
                continue
            if type(value) in _SHAREABLE:  # records share it: never a list
                if len(parsed) >= 50_000:  # bounded, as _DATES
                    parsed.clear()
                parsed[raw] = value
        if value is not None:
            profile[name] = value
    return profile


_UNPARSED: Final = object()
_SHAREABLE: Final = frozenset({str, int, type(None)})


#: Dates already parsed, by their text: an export repeats a few thousand distinct dates
#: over 10⁵ rows. Bounded (see :func:`_iso_date`).
_DATES: dict[str, date] = {}


def _iso_date(raw: str) -> date | None:
    """``YYYY-MM-DD`` (full-width digits too) as a date, remembered in ``_DATES``; None
    when it is not one."""
    text = raw if raw.isascii() else unicodedata.normalize("NFKC", raw)
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        return None
    if len(_DATES) >= 50_000:  # a century of days: only a strange source gets here
        _DATES.clear()
    _DATES[raw] = parsed
    return parsed


#: (primary department, person, leads it, its order) from a path-mode row
_Claim = tuple[str, str, bool, int | None]


def _path_employee(separator: str, coded: bool, region: str, chains: list[list[Level]],
                   claims: list[_Claim], custom: tuple[str, ...] = (),
                   profile_columns: tuple[_ProfileColumn, ...] = ()
                   ) -> Callable[[_Values, str, _Problems], Employee]:
    """``_employee`` for files whose ``department_path`` column (and ``department_code``
    when ``coded``) replaces ``department_ids``: a row of PATH_EMPLOYEE_COLUMNS, whose
    last four values are the path, the codes, the leader flag and the order.

    The levels of every path read are appended to ``chains`` (the tree is built from
    them); a leader flag or order, to ``claims`` (see :func:`_with_claims`).
    """
    ids = list(PATH_EMPLOYEE_COLUMNS).index("department_ids")

    def parse(row: _Values, key: str, problems: _Problems) -> Employee:
        path, codes, raw_flag, raw_order = row[_PLAIN_WIDTH:_PLAIN_WIDTH + 4]
        try:
            levels = _levels(path, codes, coded, separator)
        except MappingProblem as exc:
            problems.append(("department_keys", str(exc)))
            levels = []
        chains.extend(levels)
        leads = False
        if raw_flag is not None:
            flag = _FLAGS.get(unicodedata.normalize("NFKC", raw_flag).lower())
            if flag is None:
                problems.append(("department_leader", f"'{raw_flag}' is not yes or no (是/否, "
                                                      "true/false, 1/0)"))
            leads = bool(flag)
        order = _order(raw_order, "department_order", problems)
        if levels and levels[0] and (leads or order is not None):
            claims.append((levels[0][-1][0], key, leads, order))
        keys = ";".join(c[-1][0] for c in levels if c)
        return _employee([*row[:ids], keys or None, *row[ids + 1:_PLAIN_WIDTH],
                          *row[_PLAIN_WIDTH + 4:]], key, problems, region, custom,
                         profile_columns)

    return parse


def _with_claims(departments: dict[str, Department], claims: list[_Claim],
                 employees: Mapping[str, Employee], rows: Mapping[str, str],
                 issues: list[Issue]) -> dict[str, Department]:
    """Path mode's leaders and orders: a person flagged ``department_leader`` leads their
    primary department, ``department_order`` is its order. Only rows that were read
    (not held) count; a second, different claim on a department is a warning on its
    row and the first one is kept.
    """
    leaders: dict[str, str] = {}
    orders: dict[str, int] = {}
    for dept, person, leads, order in claims:
        if person not in employees or dept not in departments:
            continue
        if leads:
            first = leaders.setdefault(dept, person)
            if first != person:
                issues.append(Issue("employee", person, "department_leader",
                                    f"{dept} is already led by '{first}' (an earlier row)",
                                    "warning", rows.get(person)))
        if order is not None:
            given = orders.setdefault(dept, order)
            if given != order:
                issues.append(Issue("employee", person, "department_order",
                                    f"{order} differs from the order {given} an earlier row "
                                    f"gives {dept}, which is kept", "warning",
                                    rows.get(person)))
    if not leaders and not orders:
        return departments
    return {k: dataclasses.replace(d, leader_key=leaders.get(k), order=orders.get(k))
            if k in leaders or k in orders else d for k, d in departments.items()}


def _levels(path: str | None, codes: str | None, coded: bool, separator: str
            ) -> list[list[Level]]:
    """The levels of a row's path cell (:func:`connectors.mapping.path_levels`);
    MappingProblem when ``coded`` and the row has a path but no codes."""
    if path is None:
        return []
    if coded and codes is None:
        raise MappingProblem(f"has the department path '{path}' but no department code; give "
                             "one code per level")
    return path_levels(path, codes if coded else None, separator)


def _joined(value: Any) -> str | None:
    """A mapped path or code value as one cell (a list's items ``;``-separated)."""
    texts = [str(v) for v in (value if isinstance(value, list) else [value]) if v is not None]
    return ";".join(texts) or None


def _path_departments(chains: list[list[Level]], issues: list[Issue], held: set[str]
                      ) -> dict[str, Department]:
    """The tree built from path levels; a conflicting code is held with an issue."""
    departments, conflicts = departments_from_levels(chains)
    for key, reason in sorted(conflicts.items()):
        issues.append(Issue("department", key, "key", reason, "error"))
        held.add(key)
    return departments


def _parse_mapping(
    opts: Section, has_departments: bool,
) -> tuple[dict[str, dict[str, FieldRule]] | None, FieldRule | None, FieldRule | None]:
    """``mapping`` (+ ``department_path``, ``department_code``) options of the mapping
    mode; (None, None, None) if absent."""
    spec = opts.raw("mapping")
    path_spec = opts.raw("department_path")
    if spec is None:
        return None, None, None
    error, file = opts.error, opts.file
    if opts.raw("columns") is not None:
        raise error("columns", "cannot be combined with source.mapping",
                    "map headers in mapping.employees instead")
    if not isinstance(spec, Mapping):
        raise error("mapping", "expected a mapping with 'employees' (and 'departments')",
                    "e.g. mapping: {employees: {key: 工号, name: 姓名}}")
    for table in spec:
        if table not in ("employees", "departments"):
            raise error(f"mapping.{table}", "unknown table", "use employees or departments")
    out = {"employees": parse_rules(spec.get("employees"), entity="employee", file=file,
                                    key="source.mapping.employees")}
    department_path = department_code = None
    if has_departments:
        out["departments"] = parse_rules(spec.get("departments"), entity="department",
                                         file=file, key="source.mapping.departments")
        if path_spec is not None:
            raise error("department_path", "cannot be combined with a departments file",
                        "remove one of them")
    else:
        if path_spec is None:
            raise error("department_path", "is required with mapping and no departments file",
                        "e.g. department_path: 部门, or '{一级部门}/{二级部门}'")
        department_path, department_code = (_optional_rule(opts, o)
                                            for o in ("department_path", "department_code"))
    return out, department_path, department_code


def _optional_rule(opts: Section, option: str) -> FieldRule | None:
    """The field rule at ``source.<option>``, None when unset."""
    raw = opts.raw(option)
    try:
        return None if raw is None else parse_rule(raw)
    except ValueError as exc:
        raise opts.error(option, str(exc), None) from None


def _decode(path: Path, option: str, encoding: str) -> tuple[str, str]:
    """The file's text and the encoding that read it (``auto``: see the module docstring)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found (source.{option})") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if encoding == "auto":
        return _decode_auto(path, data)
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        hint = _encoding_hint(data, encoding)
        raise SourceError(
            f"{path}: cannot decode as {encoding} at byte {exc.start}: {exc.reason}{hint}"
        ) from None


def _decode_auto(path: Path, data: bytes) -> tuple[str, str]:
    """``encoding: auto`` (see the module docstring and :mod:`connectors.encoding`)."""
    tried = "utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    try:
        return data.decode(tried), tried
    except UnicodeDecodeError as exc:
        failure = exc
    text, scores = (None, {}) if tried == "utf-16" else decode_legacy_cjk(data)
    if text is not None:
        return text, CHOSEN
    if scores.get(CHOSEN) is None:
        tried += "" if tried == "utf-16" else f" or {CHOSEN}"
        raise SourceError(f"{path}: cannot decode as {tried} ({failure.encoding} byte "
                          f"{failure.start}: {failure.reason}); set source.encoding") from None
    readings = "; ".join(f"as {c}, {s:.0%}" if s is not None else f"not as {c}"
                         for c, s in scores.items())
    likely = sorted(scores, key=lambda c: -(scores[c] or 0.0))
    raise SourceError(
        f"{path}: encoding: auto cannot tell this file's encoding with confidence: it is not "
        f"UTF-8, and the share of its non-ASCII letters that are common hanzi reads {readings}. "
        f"Nothing was read. Set source.encoding to the encoding the file was saved in, one of "
        f"{', '.join(likely)} (most plausible first)")


def _sniff(text: str) -> str:
    """The most frequent of ``, ; tab |`` in the header line (``,`` on a tie or none)."""
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in _DELIMITERS}
    best = max(counts.values())
    return "," if best == 0 or counts[","] == best else max(counts, key=lambda d: counts[d])


def _encoding_hint(data: bytes, encoding: str) -> str:
    if data[:4] == b"PK\x03\x04":
        return "; it is a zip file, as an Excel workbook is: for .xlsx set source.type: xlsx"
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "; the file is UTF-16 (Excel 'Unicode text'): set source.encoding: utf-16"
    for candidate in ("utf-8-sig", "gb18030"):
        if candidate == encoding:
            continue
        try:
            data.decode(candidate)
        except UnicodeDecodeError:
            continue
        return f"; it decodes as {candidate}: set source.encoding: {candidate}"
    return ""


def _column_index(path: Path, header: list[str], columns: dict[str, bool],
                  rename: Mapping[str, str], delimiter: str) -> dict[str, int]:
    names = [h.strip().lstrip("\ufeff") for h in header]
    index: dict[str, int] = {}
    missing: list[str] = []
    for canonical, required in columns.items():
        wanted = rename.get(canonical, canonical)
        positions = [i for i, n in enumerate(names) if n == wanted]
        if len(positions) > 1:
            raise SourceError(f"{path}: column '{wanted}' appears {len(positions)} times in the "
                              "header; orgsync cannot tell which one to use")
        if positions:
            index[canonical] = positions[0]
        elif required:
            missing.append(wanted if wanted == canonical else f"{wanted} (for {canonical})")
    if missing:
        found = ", ".join(repr(n) for n in names)
        hint = ""
        if len(names) == 1 and delimiter not in names[0] and any(d in names[0] for d in ";\t|,"):
            hint = "; the header looks like it uses another delimiter: set source.delimiter"
        # (path mode's department_ids is replaced, department_code is an option's column)
        listed = [c for c in columns if c in rename or c not in ("department_ids",
                                                                 "department_code")
                  or columns[c]]
        needed = ", ".join(rename.get(c, c) for c in listed if columns[c])
        optional = ", ".join(rename.get(c, c) for c in listed if not columns[c])
        raise SourceError(
            f"{path}: missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (found: {found}){hint}; rename the column or map it with "
            f"source.columns. Required columns: {needed}; optional: {optional}"
        )
    return index


def _parse_columns(opts: Section) -> dict[str, dict[str, str]]:
    value, error = opts.raw("columns"), opts.error
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise error("columns", "expected a mapping of departments/employees to column maps",
                    "e.g. columns: {employees: {employee_id: 工号}}")
    known = {"departments": DEPARTMENT_COLUMNS,
             "employees": {**EMPLOYEE_COLUMNS, **dict.fromkeys(_PATH_ONLY, False)}}
    out: dict[str, dict[str, str]] = {}
    for table, mapping in value.items():
        if table not in known:
            raise error(f"columns.{table}", "unknown file", "use departments or employees")
        if not isinstance(mapping, Mapping):
            raise error(f"columns.{table}", "expected a mapping of canonical name to header",
                        "e.g. employee_id: 工号")
        out[table] = {}
        for canonical, header in mapping.items():
            if canonical not in known[table]:
                close = difflib.get_close_matches(str(canonical), list(known[table]), n=1)
                raise error(f"columns.{table}.{canonical}", "unknown canonical column",
                            f"did you mean '{close[0]}'?" if close
                            else f"known: {', '.join(known[table])}")
            if not isinstance(header, str | int) or not str(header).strip():
                raise error(f"columns.{table}.{canonical}", "expected the header text",
                            "quote it if it looks like a number or a date")
            out[table][canonical] = str(header).strip()
    return out

