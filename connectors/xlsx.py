"""``type: xlsx`` — the CSV connector's formats, read from Excel workbooks.

Everything :mod:`connectors.csvfile` documents holds (the two files or a path
column, ``columns`` remapping, ``department_path`` / ``department_code``, the
shared ``mapping``, held rows, the contact rule); the files are workbooks
(``花名册.xlsx``) and two options replace ``encoding`` and ``delimiter``:

* ``sheet``: the sheet's name, or its 1-based position (default 1);
* ``header_row``: the sheet row (1-based) holding the headers (default 1), for
  exports with a title row or two above them.

Either takes one value for both files or ``{employees: …, departments: …}``.

Cells become the text the CSV connector reads, so its checks apply as they are:

* a date cell (any date format, including the built-in ids Excel's zh-CN locale
  writes for ``2024年3月5日`` — ids 27–36 and 50–58, which carry no format
  string) becomes ``2024-03-05``; a ``join_date`` written as text
  (``2024/3/5``, ``2024年3月5日``) or as a bare serial number (``45356``) is read
  with the shared date rule (:func:`connectors.mapping.parse_date`);
* a number becomes its digits (``13800138000.0`` → ``13800138000``: Excel keeps
  them); one beyond Excel's 15 significant digits (an 18-digit id typed as a
  number) becomes scientific notation (``1.23456789012346E+17``), which the CSV
  checks hold as digits lost — as they hold the text ``1.38E+10``. Zeros Excel
  dropped from a number-typed id (``00123`` → 123) cannot be seen: format id
  columns as text, or see ``sync.ignore_key_leading_zeros``;
* a merged cell is read in each row it spans, in its first column (a header cell
  merged over two header rows names its column; a department merged over its
  people's rows is each person's); the other columns of a merge are empty;
* rows with no value (Excel's formatted but empty trailing rows) are skipped.

Positions read ``花名册.xlsx:12``: the file and the sheet row.

The workbook is read with ``python-calamine`` (Rust): it reads a 100k-row sheet
within 3× the time of the same CSV (``python -m orgsync.bench --only xlsx_read``),
where openpyxl's read-only mode takes about 30× and reads the zh-CN date ids as
numbers. The trade-off: calamine holds one sheet's cells while it is read (about
as much memory as the CSV connector's decoded text and parsed rows), not a row
at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, ClassVar

from connectors.csvfile import CsvConnector, _Table
from connectors.mapping import MappingProblem, parse_date
from orgsync.errors import SourceError
from orgsync.options import Section

_FILES = ("employees", "departments")
_Cell = int | float | str | bool | time | date | datetime | timedelta


def _per_file(opts: Section, key: str, default: int | str,
              check: Any) -> dict[str, int | str]:
    """``key`` as one value for both files or ``{employees: …, departments: …}``."""
    raw = opts.raw(key)
    if raw is None:
        return dict.fromkeys(_FILES, default)
    if isinstance(raw, Mapping):
        unknown = sorted(str(k) for k in raw if k not in _FILES)
        if unknown:
            raise opts.error(f"{key}.{unknown[0]}", "unknown file", "use employees or departments")
        return {f: check(f"{key}.{f}", raw.get(f, default)) for f in _FILES}
    return dict.fromkeys(_FILES, check(key, raw))


@dataclass(frozen=True)
class XlsxConnector(CsvConnector):
    """Reads the CSV connector's formats from ``.xlsx`` workbooks (module docstring)."""

    type_name: ClassVar[str] = "xlsx"

    sheets: Mapping[str, int | str] = field(default_factory=lambda: dict.fromkeys(_FILES, 1))
    header_rows: Mapping[str, int | str] = field(
        default_factory=lambda: dict.fromkeys(_FILES, 1))

    @classmethod
    def _own_options(cls, opts: Section) -> dict[str, Any]:
        for csv_only in ("encoding", "delimiter"):
            if opts.raw(csv_only) is not None:
                raise opts.error(csv_only, "has no meaning for a workbook",
                                 "remove it; choose the sheet with source.sheet and the header "
                                 "row with source.header_row")

        def sheet(key: str, value: Any) -> int | str:
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                return value
            if isinstance(value, str) and value.strip():
                return value.strip()
            raise opts.error(key, f"expected a sheet name or a position from 1, got {value!r}",
                             "e.g. sheet: 花名册, or sheet: 2 for the second sheet")

        def header_row(key: str, value: Any) -> int:
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                return value
            raise opts.error(key, f"expected a row number from 1, got {value!r}",
                             "e.g. header_row: 3 when two title rows sit above the headers")

        return {"sheets": _per_file(opts, "sheet", 1, sheet),
                "header_rows": _per_file(opts, "header_row", 1, header_row)}

    def _rows(self, path: Path, option: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
        """The header row's names and the non-empty rows after it, as text, with their
        sheet row numbers; SourceError if the workbook, sheet or header row is not there."""
        from python_calamine import CalamineError, CalamineWorkbook, WorksheetNotFound

        wanted = self.sheets[option]
        header_row = int(self.header_rows[option])
        if not path.exists():
            raise SourceError(f"{path}: file not found (source.{option})")
        try:
            with CalamineWorkbook.from_path(path) as workbook:
                names = workbook.sheet_names
                if isinstance(wanted, int):
                    if wanted > len(names):
                        raise SourceError(f"{path}: has {len(names)} sheet(s), no sheet "
                                          f"{wanted}: {_listed(names)}; check source.sheet")
                    sheet = workbook.get_sheet_by_index(wanted - 1)
                else:
                    sheet = workbook.get_sheet_by_name(wanted)
                start = sheet.start or (0, 0)
                merges = sheet.merged_cell_ranges or []
                table = sheet.iter_rows()
        except WorksheetNotFound:
            raise SourceError(f"{path}: no sheet named '{wanted}': {_listed(names)}; check "
                              "source.sheet") from None
        except (CalamineError, OSError, ValueError) as exc:
            raise SourceError(f"{path}: cannot read as an Excel workbook: {exc}") from None
        rows = _filled(table, start, merges)
        for number, cells in rows:
            if number == header_row:
                return [c.strip() for c in cells], rows
            if number > header_row:
                break
        raise SourceError(f"{path}: sheet '{sheet.name}' has no header in row {header_row} "
                          "(the row is empty or past the end); check source.header_row")

    def _table(self, path: Path, option: str, columns: dict[str, bool]) -> _Table:
        table = super()._table(path, option, columns)
        at = table.index.get("join_date")
        if at is None:
            return table
        return _Table(table.name, table.columns, table.index, table.width,
                      _iso_dates(table.rows, at))


def _listed(names: list[str]) -> str:
    return "sheets " + ", ".join(f"{i} '{n}'" for i, n in enumerate(names, 1))


def _filled(table: Iterator[list[_Cell]], start: tuple[int, int],
            merges: list[tuple[tuple[int, int], tuple[int, int]]],
            ) -> Iterator[tuple[int, list[str]]]:
    """(sheet row number, cells as text) of every row with a value; a merged cell's value
    is repeated in the rows below its top-left cell, in its first column (see the module
    docstring)."""
    top, left = start
    spans = {(r0, c0 - left): r1 for (r0, c0), (r1, _) in merges if r1 > r0}
    carried: dict[int, tuple[int, str]] = {}  # column -> (last row of its merge, value)
    for row, values in enumerate(table, top):
        # most cells are text: the type test is cheaper than the call
        cells = [v if v.__class__ is str else _text(v) for v in values]
        if not spans:
            if any(cells):
                yield row + 1, cells
            continue
        for column, (last, value) in list(carried.items()):
            if row > last:
                del carried[column]
            elif column < len(cells) and not cells[column]:
                cells[column] = value
        for column, cell in enumerate(cells):
            last_row = spans.get((row, column))
            if last_row is not None and cell:
                carried[column] = (last_row, cell)
        if any(cells):
            yield row + 1, cells


def _text(value: _Cell) -> str:
    """A cell as the text a CSV export of it would hold (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15G}".replace("E+0", "E+") if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _iso_dates(rows: Iterator[tuple[int, list[str]]], at: int
               ) -> Iterator[tuple[int, list[str]]]:
    """Rows whose ``join_date`` cell (position ``at``) is rewritten ``YYYY-MM-DD`` when
    the shared date rule reads it; left as written (and held by the CSV check) if not."""
    for number, cells in rows:
        cell = cells[at] if at < len(cells) else ""
        # what a date cell became (YYYY-MM-DD) needs nothing: a cheap test, on every row
        if cell and not (len(cell) == 10 and cell[4] == cell[7] == "-") and cell.strip():
            with contextlib.suppress(MappingProblem):  # the CSV check words the problem
                cells[at] = parse_date(cell).isoformat()
        yield number, cells
