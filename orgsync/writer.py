"""One writer per ledger: the lock every writing run holds, and its fencing token.

``orgsync apply``, ``approve``, ``resync`` and every run of the daemon hold it
(:func:`holding`). The daemon's leader election (:mod:`orgsync.daemon.leader`) only
decides which replica schedules runs; each of its runs then takes this lock like
a command does, and a scheduled run that finds it taken is skipped. ``plan`` and
``check`` write nothing to Feishu or the mirror (only their run record) and take
no lock. A second writer fails at once with :class:`~orgsync.errors.WriterBusy`
(exit 7), naming the holder.

The lock lives where deleting a file cannot defeat it:

* SQLite: an exclusive ``flock`` on the ledger file itself (deleting it deletes the
  ledger), released by the kernel when the process dies. The descriptor stays
  open for the life of the process: closing any descriptor of a file drops the
  process's POSIX locks on it, SQLite's own among them. A second acquire in the
  same process is refused too. (SQLite ledgers live on a local file system.)
* PostgreSQL: ``pg_try_advisory_lock`` on a session of its own
  (``application_name`` ``orgsync-writer``, key from ``daemon.lock_name``),
  released by the server when that session ends — the process died, or the
  session was terminated or cut off.
* in-memory SQLite: one process, one ledger: always granted.

**Holder record and fencing token.** Once the lock is taken, the holder writes
``{command, host, pid, since, token}`` to the ledger's ``meta`` row ``writer``,
``token`` one more than the last holder's. A refused writer reads it to name the
holder; a holder that ends marks it released. The record is also the fence: the
ledger journals a Feishu write (:meth:`~orgsync.ledger.Ledger.journal_start`) only
if, in that same statement, the record is still the one this run wrote and — on
PostgreSQL — this run's lock session still holds the advisory lock. So a run that
lost its lock stops before its next Feishu write with
:class:`~orgsync.errors.Fenced`; its calls already in flight finish and are
journaled, and the next writer plans what is left, replaying unfinished creates
with their client tokens (no duplicates).

No stale-lock logic is needed: the kernel or the server drops a dead holder's
lock, and its record is overwritten by the next holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import structlog
from sqlalchemy.engine import make_url

from orgsync.daemon.leader import LeaderLock, PostgresLeaderLock, ProcessLeaderLock
from orgsync.errors import LedgerError, WriterBusy
from orgsync.ledger import WRITER_KEY, Fence, Ledger

log = structlog.get_logger("orgsync.writer")

RECORD_WAIT = 2.0
"""Seconds a refused writer waits for a new holder to record itself (it does so right
after taking the lock) before naming it "unknown"."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or last held) the writer lock. ``released``: it let go."""

    command: str
    host: str
    pid: int
    since: str  # UTC, ISO seconds
    token: int
    released: bool = False

    def to_json(self) -> str:
        """The ``meta`` value."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, value: str | None) -> Holder | None:
        """The record in a ``meta`` value (None when absent or unreadable)."""
        try:
            data = json.loads(value or "")
            return cls(str(data["command"]), str(data["host"]), int(data["pid"]),
                       str(data["since"]), int(data["token"]), bool(data.get("released")))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        """``'apply' (pid 42 on host h1, since 2026-12-05 07:40:12 UTC, token 7)``."""
        since = self.since.replace("T", " ").removesuffix("+00:00")
        return (f"'{self.command}' (pid {self.pid} on host {self.host}, since {since} UTC, "
                f"token {self.token})")

    def alive(self) -> bool:
        """False when it is known to be gone: released, or a dead process on this host."""
        if self.released:
            return False
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class LedgerFileLock:
    """An exclusive ``flock`` on the SQLite ledger file itself (see the module docstring)."""

    _files: ClassVar[dict[Path, int]] = {}  # one descriptor per ledger file, never closed
    _held: ClassVar[set[Path]] = set()
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self._mine = False

    def try_acquire(self) -> bool:
        """``flock(LOCK_EX | LOCK_NB)``; False when another process, or another lock
        object of this process, holds it."""
        if self._mine:
            return True
        with self._guard:
            if self.path in self._held:
                return False
            try:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self._held.add(self.path)
            self._mine = True
            return True

    def still_held(self) -> bool:
        """A flock is lost only with its process."""
        return self._mine

    def release(self) -> None:
        """Unlock (the descriptor stays open; idempotent)."""
        if not self._mine:
            return
        with self._guard:
            fcntl.flock(self._files[self.path], fcntl.LOCK_UN)
            self._held.discard(self.path)
            self._mine = False

    def _descriptor(self) -> int:
        fd = self._files.get(self.path)
        now = os.stat(self.path)
        if fd is not None:
            ours = os.fstat(fd)
            if (ours.st_dev, ours.st_ino) == (now.st_dev, now.st_ino):
                return fd
        # first use, or the ledger file was replaced; an old descriptor stays open
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        self._files[self.path] = fd
        return fd


def os_lock(ledger_url: str, name: str = "orgsync") -> LeaderLock:
    """The lock primitive for the ledger at ``ledger_url`` (see the module docstring)."""
    url = make_url(ledger_url)
    if url.get_backend_name() == "postgresql":
        return PostgresLeaderLock(ledger_url, name, purpose="writer")
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return ProcessLeaderLock()
    return LedgerFileLock(Path(url.database))


class WriterLock:
    """The writer lock of one ledger, for one holder at a time."""

    def __init__(self, ledger: Ledger, name: str = "orgsync") -> None:
        self.ledger = ledger
        self._lock = os_lock(ledger.url, name)
        self.holder: Holder | None = None

    def acquire(self, command: str) -> Holder:
        """Take the lock for ``command``, record the holder and fence the ledger.

        Raises :class:`WriterBusy` at once, naming the holder, when it is taken.
        """
        if not self._lock.try_acquire():
            if isinstance(self._lock, PostgresLeaderLock) and self._lock.error:
                raise LedgerError(f"cannot take the ledger's writer lock: the database did not "
                                  f"answer ({self._lock.error}); nothing was done")
            raise WriterBusy(busy_message(self.ledger))
        try:
            last = Holder.from_json(self.ledger.get_meta(WRITER_KEY))
            holder = Holder(command, socket.gethostname(), os.getpid(),
                            datetime.now(UTC).isoformat(timespec="seconds"),
                            (last.token if last else 0) + 1)
            self.ledger.set_meta(WRITER_KEY, holder.to_json())
            pg = self._lock if isinstance(self._lock, PostgresLeaderLock) else None
            self.ledger.fence = Fence(holder.to_json(), pg.backend_pid if pg else None,
                                      pg.key if pg else None)
        except BaseException:
            self._lock.release()
            raise
        self.holder = holder
        log.info("writer.acquired", command=command, generation=holder.token,
                 previous=last.describe() if last and not last.released else None)
        return holder

    def release(self) -> None:
        """Unfence the ledger, mark the record released (if still ours), unlock."""
        holder, self.holder = self.holder, None
        self.ledger.fence = None
        try:
            if holder is not None:
                done = Holder(**{**asdict(holder), "released": True})
                with contextlib.suppress(Exception):  # the ledger may be unreachable
                    self.ledger.swap_meta(WRITER_KEY, holder.to_json(), done.to_json())
        finally:
            self._lock.release()


def current(ledger: Ledger) -> Holder | None:
    """The holder of the writer lock as its record tells, if it is (as far as can be
    known) still holding it."""
    holder = Holder.from_json(ledger.get_meta(WRITER_KEY))
    return holder if holder is not None and holder.alive() else None


def busy_message(ledger: Ledger, wait: float = RECORD_WAIT) -> str:
    """Why a writer was refused, naming the holder.

    The holder records itself right after it took the lock: a record that is
    missing, released or left by a dead process is read again for up to ``wait``
    seconds.
    """
    deadline = time.monotonic() + wait
    while True:
        holder = current(ledger)
        if holder is not None:
            who = f"another orgsync run holds it: {holder.describe()}"
            break
        if time.monotonic() >= deadline:
            who = "another orgsync process holds it (it has not recorded itself yet)"
            break
        time.sleep(0.05)
    return (f"the ledger is busy: {who}. Only one run may write at a time; run again when "
            "it has finished.")


@contextlib.contextmanager
def holding(ledger: Ledger, command: str, name: str = "orgsync") -> Iterator[Holder]:
    """The writer lock of ``ledger`` for the duration of the block (see :class:`WriterLock`)."""
    lock = WriterLock(ledger, name)
    holder = lock.acquire(command)
    try:
        yield holder
    finally:
        lock.release()
