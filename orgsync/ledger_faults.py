"""Faults of the ledger's storage, told as what happened and what to do.

A full disk and a damaged database file surface from the driver as errors such
as ``database or disk is full`` or ``database disk image is malformed``, from
whichever statement met them. :func:`watch` puts a :class:`LedgerError` in their
place on every statement of an engine, so a command ends with one clear message
and the ledger's exit code instead of a traceback, and a daemon run is recorded
as failed with that message:

* **disk full** (SQLite ``SQLITE_FULL``, PostgreSQL ``53100``): the statement's
  transaction was rolled back, so nothing is half-written; what the run already
  sent to Feishu is journaled and the next run settles it. Free space, run again.
* **damaged** (SQLite ``SQLITE_CORRUPT``/``SQLITE_NOTADB``, text that is not
  UTF-8, PostgreSQL ``XX001``/``XX002``): orgsync cannot trust or repair the file;
  restore the ledger from a backup.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext

from orgsync.errors import LedgerError

_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26
_SQLITE_UNDECODABLE = "Could not decode to UTF-8"
"""How the sqlite3 module (not SQLite) refuses a text value, with no error code."""
_PG_DISK_FULL = "53100"
_PG_DAMAGED = frozenset({"XX001", "XX002"})  # data_corrupted, index_corrupted


def fault(exc: BaseException, where: str) -> LedgerError | None:
    """The LedgerError for ``exc`` when it is a full disk or a damaged ledger at
    ``where`` (a URL without its password), else ``None``."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    state = getattr(exc, "sqlstate", None)
    if primary == _SQLITE_FULL or state == _PG_DISK_FULL:
        return LedgerError(
            f"the disk holding the ledger at {where} is full ({exc}); the run stopped and its "
            "last ledger write was rolled back. Free space on that disk, then run again: the "
            "next run settles what this one left")
    undecodable = isinstance(exc, UnicodeDecodeError) or (
        isinstance(exc, sqlite3.OperationalError) and str(exc).startswith(_SQLITE_UNDECODABLE))
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or state in _PG_DAMAGED or undecodable:
        return damaged(where, "text that is not UTF-8" if undecodable else str(exc))
    return None


def damaged(where: str, detail: str) -> LedgerError:
    """The LedgerError for a damaged ledger at ``where``: the driver said so, or a row
    holds values no orgsync writes (a byte flipped inside a valid page)."""
    return LedgerError(
        f"the ledger at {where} is damaged ({detail}); orgsync cannot repair it. Stop "
        "every orgsync that uses it, keep the damaged file for inspection, and restore "
        "the ledger from your latest backup, or start a new ledger and run "
        "'orgsync resync' (it takes over what Feishu holds, with no duplicates)")


def watch(engine: Engine, where: str) -> None:
    """Raise :func:`fault`'s LedgerError in place of such a driver error on ``engine``."""

    def translate(context: ExceptionContext) -> None:
        error = fault(context.original_exception, where)
        if error is not None:
            raise error from None

    event.listen(engine, "handle_error", translate)
