"""Leader election: of the daemons that share one ledger, only the leader schedules runs.

Leadership decides who schedules, not who may write: every run, the leader's
included, takes the ledger's writer lock (:mod:`orgsync.writer`), which is what
keeps two writers apart and fences one that lost it.

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a
  connection of its own, held for as long as the process leads. When the
  leader dies its connection closes and the server releases the lock at once;
  a standby polling :meth:`LeaderLock.try_acquire` then takes over. A leader
  whose connection breaks (server restart, network) loses the lock too:
  :meth:`LeaderLock.still_held` says so, and the caller must stop scheduling.
  :mod:`orgsync.writer` uses the same class, under another key, for its lock.
* SQLite (a file, one host): an exclusive ``flock`` on ``<ledger>.leader``,
  released by the kernel when the process dies. A leader whose file was
  deleted (or replaced) no longer holds it: :meth:`FileLeaderLock.still_held`
  compares the path with the locked file.
* An in-memory SQLite ledger belongs to one process: always the leader.

The lock key is a 64-bit hash of a name (``daemon.lock_name``), so separate
deployments on one database pick separate names.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO, Protocol

import structlog
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

log = structlog.get_logger("orgsync.leader")


class LeaderLock(Protocol):
    """A non-blocking, process-lifetime lock that makes its holder the leader."""

    def try_acquire(self) -> bool:
        """Take the lock if free (or already ours); never blocks for long."""
        ...

    def still_held(self) -> bool:
        """True while the lock is ours; False once it is lost (or was never taken)."""
        ...

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...


def lock_key(name: str, purpose: str = "leader") -> int:
    """The signed 64-bit advisory-lock key of ``purpose`` (leader, writer) for ``name``."""
    digest = hashlib.blake2b(f"orgsync-{purpose}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresLeaderLock:
    """``pg_try_advisory_lock`` on a dedicated connection (see the module docstring).

    ``purpose`` picks the key and names the session (``application_name``
    ``orgsync-<purpose>``); ``backend_pid`` is that session's server pid while held.
    """

    def __init__(self, url: str, name: str = "orgsync", *, purpose: str = "leader",
                 connect_timeout: int = 5) -> None:
        self.key = lock_key(name, purpose)
        self.backend_pid: int | None = None
        #: Why the last :meth:`try_acquire` could not ask the server (None: it asked).
        self.error: str | None = None
        self._engine: Engine = create_engine(
            url, poolclass=NullPool,
            # keepalives: a leader on a dead network notices, and so does the server
            connect_args={"connect_timeout": connect_timeout, "keepalives": 1,
                          "keepalives_idle": 10, "keepalives_interval": 5,
                          "keepalives_count": 3, "application_name": f"orgsync-{purpose}"})
        self._conn: Connection | None = None
        self._held = False

    def try_acquire(self) -> bool:
        """One ``pg_try_advisory_lock`` on our connection (reconnecting if it was lost)."""
        if self._held and self.still_held():
            return True
        self.error = None
        try:
            if self._conn is None:
                self._conn = self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT")
            got, self.backend_pid = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:k), pg_backend_pid()"), {"k": self.key}).one()
        except Exception as exc:
            log.warning("leader.lock_unavailable", error=type(exc).__name__)
            self.error = type(exc).__name__
            self._drop()
            return False
        self._held = bool(got)
        return self._held

    def still_held(self) -> bool:
        """Checks the lock on the server, so a broken connection reads as lost."""
        if not self._held or self._conn is None:
            return False
        try:
            n = self._conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted AND objsubid = 1 "
                "AND classid::bigint = :hi AND objid::bigint = :lo"),
                {"hi": (self.key >> 32) & 0xFFFF_FFFF, "lo": self.key & 0xFFFF_FFFF}).scalar_one()
        except Exception as exc:
            log.warning("leader.connection_lost", error=type(exc).__name__)
            self._drop()
            return False
        if not n:
            self._held = False
        return bool(n)

    def release(self) -> None:
        """Unlock and close the connection."""
        if self._conn is not None and self._held:
            with contextlib.suppress(Exception):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        self._held = False
        self.backend_pid = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class FileLeaderLock:
    """An exclusive ``flock`` on a file next to the SQLite ledger."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        """``flock(LOCK_EX | LOCK_NB)``; the file is created owner-only."""
        if self._file is not None:
            if self.still_held():
                return True
            self.release()  # our file was deleted: lock the one the path names now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        f = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n".encode())
        f.flush()
        self._file = f
        return True

    def still_held(self) -> bool:
        """True while the path still names the file we locked (a flock cannot be lost
        while the process lives, but the file can be deleted and another one made)."""
        if self._file is None:
            return False
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        ours = os.fstat(self._file.fileno())
        return (now.st_dev, now.st_ino) == (ours.st_dev, ours.st_ino)

    def release(self) -> None:
        """Unlock and close."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class ProcessLeaderLock:
    """For a ledger no other process can see (in-memory SQLite)."""

    def __init__(self) -> None:
        self._held = False

    def try_acquire(self) -> bool:
        """Always succeeds."""
        self._held = True
        return True

    def still_held(self) -> bool:
        """True once acquired."""
        return self._held

    def release(self) -> None:
        """Forget it."""
        self._held = False


def leader_lock(ledger_url: str, name: str = "orgsync") -> LeaderLock:
    """The right lock for the ledger at ``ledger_url``."""
    url = make_url(ledger_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        return PostgresLeaderLock(ledger_url, name)
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            return ProcessLeaderLock()
        db = Path(url.database)
        return FileLeaderLock(db.with_name(f"{db.name}.{name}.leader"))
    raise ValueError(f"no leader election for {backend} ledgers (use SQLite or PostgreSQL)")
