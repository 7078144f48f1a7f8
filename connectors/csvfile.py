"""``type: csv`` — orgsync's native two-file CSV format.

``departments.csv``: ``department_id,name,parent_id,leader_id,order`` (+ optional
``en_name``); an empty ``parent_id`` means top level.

``employees.csv``: ``employee_id,name,en_name,email,mobile,department_ids,
manager_id,job_title,employee_type,join_date,city,status`` (+ optional
``employee_no``). ``department_ids`` is ``;``-separated, primary first;
``employee_type`` is 1–5 or regular / intern / outsourced / contractor /
consultant (正式 / 实习 / 外包 / 劳务 / 顾问), empty = regular; ``join_date`` is
``YYYY-MM-DD``; ``status`` is active / terminated (在职 / 离职), empty = active.

Options (config ``source`` section): ``departments`` and ``employees`` (paths,
relative to the config file), ``columns`` (``{departments: {canonical: "Their
Header"}, employees: {…}}``), ``delimiter`` (default ``,``) and ``encoding``
(default ``utf-8-sig``: with or without a BOM).

Everything is read as text, so leading zeros survive; cells are stripped and
empty cells become ``None``. A file that cannot be read or decoded, or that lacks
a required column, raises :class:`~orgsync.errors.SourceError` — never a partial
org. A bad *row* (empty id, duplicate id, bad date, type, status or order) becomes
an :class:`~orgsync.issues.Issue` at ``file:line`` and its key is held.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import gc
import io
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from orgsync.errors import ConfigError, SourceError
from orgsync.issues import EntityKind, Issue, SourceData
from orgsync.model import Department, Employee, EmployeeType, Snapshot, Status

# canonical column -> required?
DEPARTMENT_COLUMNS: dict[str, bool] = {
    "department_id": True, "name": True, "parent_id": True, "leader_id": True, "order": True,
    "en_name": False,
}
EMPLOYEE_COLUMNS: dict[str, bool] = {
    "employee_id": True, "name": True, "en_name": True, "email": True, "mobile": True,
    "department_ids": True, "manager_id": True, "job_title": True, "employee_type": True,
    "join_date": True, "city": True, "status": True, "employee_no": False,
}
_OPTIONS = ("departments", "employees", "columns", "delimiter", "encoding")

_TYPES: dict[str, EmployeeType] = {
    **{str(int(t)): t for t in EmployeeType},
    **{t.name.lower(): t for t in EmployeeType},
    "正式": EmployeeType.REGULAR, "实习": EmployeeType.INTERN, "外包": EmployeeType.OUTSOURCED,
    "劳务": EmployeeType.CONTRACTOR, "顾问": EmployeeType.CONSULTANT,
}
_STATUSES = {"active": Status.ACTIVE, "terminated": Status.TERMINATED,
             "在职": Status.ACTIVE, "离职": Status.TERMINATED}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MOBILE_NOISE = re.compile(r"[\s\-()]")
_LIST_SEPARATOR = re.compile(r"[;；]")


@dataclass(frozen=True)
class CsvConnector:
    """Reads ``departments.csv`` and ``employees.csv`` (see the module docstring)."""

    type_name: ClassVar[str] = "csv"

    departments: Path
    employees: Path
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    delimiter: str = ","
    encoding: str = "utf-8-sig"

    @classmethod
    def from_config(cls, options: Mapping[str, Any], *, base_dir: Path, file: str) -> Self:
        """Validate the ``source`` options; ConfigError with key ``source.<option>``."""

        def error(key: str, message: str, remedy: str | None = None) -> ConfigError:
            return ConfigError(message, file=file, key=f"source.{key}", remedy=remedy)

        for key in sorted(options, key=str):
            if key not in _OPTIONS:
                close = difflib.get_close_matches(str(key), _OPTIONS, n=1)
                raise error(str(key), "unknown option for a csv source",
                            f"did you mean '{close[0]}'?" if close
                            else f"known options: {', '.join(_OPTIONS)}")

        def path(key: str) -> Path:
            value = options.get(key)
            if not isinstance(value, str) or not value.strip():
                raise error(key, "is required: the path of the CSV file",
                            f"e.g. {key}: hr/{key}.csv (relative to the config file)")
            p = Path(value.strip()).expanduser()
            return p if p.is_absolute() else base_dir / p

        delimiter = options.get("delimiter", ",")
        if delimiter in ("tab", "\\t"):
            delimiter = "\t"
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
            raise error("delimiter", f"{delimiter!r} is not a single-character delimiter",
                        "use ',', ';', '|' or 'tab'")
        encoding = options.get("encoding", "utf-8-sig")
        try:
            if not isinstance(encoding, str):
                raise LookupError
            codecs.lookup(encoding)
        except LookupError:
            raise error("encoding", f"unknown encoding {encoding!r}",
                        "e.g. utf-8-sig (default), gb18030, utf-16") from None
        return cls(
            departments=path("departments"), employees=path("employees"),
            columns=_parse_columns(options.get("columns"), error), delimiter=delimiter,
            encoding=encoding,
        )

    def read(self) -> SourceData:
        """Read both files; SourceError if either cannot be read as a whole."""
        with _gc_paused():
            return self._read()

    def _read(self) -> SourceData:
        issues: list[Issue] = []
        held_depts: set[str] = set()
        held_emps: set[str] = set()
        dept_table = self._table(self.departments, "departments", DEPARTMENT_COLUMNS)
        emp_table = self._table(self.employees, "employees", EMPLOYEE_COLUMNS)
        dept_rows: dict[str, str] = {}
        emp_rows: dict[str, str] = {}
        departments = _collect(dept_table, "department", "department_id", _department,
                               issues, held_depts, dept_rows)
        employees = _collect(emp_table, "employee", "employee_id", _employee, issues, held_emps,
                             emp_rows)
        return SourceData(Snapshot(departments, employees), issues, held_depts, held_emps,
                          dept_rows, emp_rows)

    def _table(self, path: Path, option: str, columns: dict[str, bool]) -> _Table:
        text = _decode(path, option, self.encoding)
        rename = self.columns.get(option, {})
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise SourceError(f"{path}: the file is empty (no header row); check "
                                  f"source.{option}")
            index = _column_index(path, header, columns, rename, self.delimiter)
            rows: list[tuple[int, list[str]]] = []
            line = reader.line_num
            for cells in reader:
                if cells and (cells[0].strip() or any(c.strip() for c in cells)):
                    rows.append((line + 1, cells))
                line = reader.line_num
        except csv.Error as exc:
            raise SourceError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
        return _Table(path.name, index, len(header), rows)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building 100k records that are all kept.

    Every allocated row would otherwise count towards collections that scan the
    whole growing heap and find nothing: it doubles the read time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class _Table:
    name: str
    index: dict[str, int]  # canonical column -> position, for the columns present
    width: int
    rows: list[tuple[int, list[str]]]  # (first line, cells)


_R = TypeVar("_R", Department, Employee)
_Problems = list[tuple[str | None, str]]  # (canonical field, reason)


def _collect(
    table: _Table, entity: EntityKind, id_column: str,
    parse: Callable[[dict[str, str | None], str, _Problems], _R],
    issues: list[Issue], held: set[str], rows: dict[str, str],
) -> dict[str, _R]:
    """Parse every row; hold rows with problems and every row of a repeated id.

    ``rows`` receives each kept record's position (``file:line``).
    """
    columns = list(table.index.items())
    width = table.width
    first_line: dict[str, int] = {}
    repeated: dict[str, list[int]] = {}
    records: dict[str, _R] = {}
    for line, cells in table.rows:
        n = len(cells)
        row = {c: (cells[i].strip() or None) if i < n else None for c, i in columns}
        key = row[id_column]
        where = f"{table.name}:{line}"
        if key is None:
            issues.append(Issue(entity, None, "key", f"{id_column} is empty", "error", where))
            continue
        if key in first_line:
            repeated.setdefault(key, [first_line[key]]).append(line)
            continue
        first_line[key] = line
        problems: _Problems = []
        record = parse(row, key, problems)
        if n > width:  # an unquoted delimiter shifted the cells: none can be trusted
            problems.append((None, (
                f"has {n} cells but the header has {width} (an unquoted delimiter inside a value?)"
            )))
        if problems:
            issues.extend(Issue(entity, key, f, reason, "error", where) for f, reason in problems)
            held.add(key)
        else:
            records[key] = record
            rows[key] = where
    for key, lines in repeated.items():
        records.pop(key, None)
        rows.pop(key, None)
        held.add(key)
        for line in lines:
            others = ", ".join(str(n) for n in lines if n != line)
            issues.append(Issue(
                entity, key, "key",
                f"{id_column} '{key}' is also on line{'s' if len(lines) > 2 else ''} {others}",
                "error", f"{table.name}:{line}",
            ))
    return records


def _department(row: dict[str, str | None], key: str, problems: _Problems) -> Department:
    order: int | None = None
    raw_order = row["order"]
    if raw_order is not None:
        text = unicodedata.normalize("NFKC", raw_order)
        if text.isdigit():
            order = int(text)
        else:
            problems.append(("order", f"'{raw_order}' is not a non-negative whole number"))
    return Department(
        key=key, name=row["name"] or "", parent_key=row["parent_id"],
        leader_key=row["leader_id"], order=order, en_name=row.get("en_name"),
    )


def _employee(row: dict[str, str | None], key: str, problems: _Problems) -> Employee:

    etype = EmployeeType.REGULAR
    raw_type = row["employee_type"]
    if raw_type is not None:
        found = _TYPES.get(unicodedata.normalize("NFKC", raw_type).lower())
        if found is None:
            problems.append(("employee_type", (
                f"'{raw_type}' is not an employee type (1-5, regular, intern, outsourced,"
                " contractor, consultant)"
            )))
        else:
            etype = found

    joined: date | None = None
    raw_date = row["join_date"]
    if raw_date is not None:
        text = unicodedata.normalize("NFKC", raw_date)
        try:
            if not _ISO_DATE.fullmatch(text):
                raise ValueError
            joined = date.fromisoformat(text)
        except ValueError:
            problems.append(("join_date", f"'{raw_date}' is not a date in YYYY-MM-DD form"))

    status = Status.ACTIVE
    raw_status = row["status"]
    if raw_status is not None:
        found_status = _STATUSES.get(raw_status.lower())
        if found_status is None:
            problems.append(("status", f"'{raw_status}' is not active or terminated"))
        else:
            status = found_status

    mobile = row["mobile"]
    if mobile is not None and not (mobile.isascii() and mobile.lstrip("+").isdigit()):
        # full-width digits, spaces, dashes, brackets: "+86 138-0013-8000" → "+8613800138000"
        mobile = _MOBILE_NOISE.sub("", unicodedata.normalize("NFKC", mobile)) or None
    email = row["email"]
    if email is not None and not email.isascii():
        email = unicodedata.normalize("NFKC", email)
    depts = row["department_ids"] or ""
    if ";" in depts or "；" in depts:
        dept_keys = tuple(d.strip() for d in _LIST_SEPARATOR.split(depts) if d.strip())
    else:
        dept_keys = (depts,) if depts else ()
    return Employee(
        key=key,
        name=row["name"] or "",
        department_keys=dept_keys,
        en_name=row["en_name"],
        email=email,
        mobile=mobile,
        manager_key=row["manager_id"],
        job_title=row["job_title"],
        employee_no=row.get("employee_no"),
        employee_type=etype,
        join_date=joined,
        city=row["city"],
        status=status,
    )


def _decode(path: Path, option: str, encoding: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found (source.{option})") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        hint = _encoding_hint(data, encoding)
        raise SourceError(
            f"{path}: cannot decode as {encoding} at byte {exc.start}: {exc.reason}{hint}"
        ) from None


def _encoding_hint(data: bytes, encoding: str) -> str:
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
        raise SourceError(
            f"{path}: missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (found: {found}){hint}; rename the column or map it with "
            "source.columns"
        )
    return index


def _parse_columns(
    value: Any, error: Callable[[str, str, str | None], ConfigError]
) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise error("columns", "expected a mapping of departments/employees to column maps",
                    "e.g. columns: {employees: {employee_id: 工号}}")
    known = {"departments": DEPARTMENT_COLUMNS, "employees": EMPLOYEE_COLUMNS}
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

