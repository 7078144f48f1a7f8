"""The ledger: runs, the operation journal, and the mirror of what orgsync manages.

SQLModel on SQLite by default (any SQLAlchemy URL works). Contracts:

* every write is journaled *before* the Feishu call (status ``started``, with its
  ``client_token``) and finished after it (``done`` / ``failed`` / ``skipped``);
* a ``done`` result and the mirror change it implies commit in one transaction,
  so the mirror never runs ahead of or behind the journal;
* the mirror is what incremental runs diff against: only entities in it are ever
  changed or deleted by orgsync;
* with a :class:`Fence` set (the run holds the writer lock, :mod:`orgsync.writer`),
  a write is journaled only while the lock is still this run's — checked in the
  journaling statement itself — else :class:`Fenced` is raised before the call.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    event,
    exists,
    func,
    text,
)
from sqlalchemy.engine import make_url

from orgsync import ledger_faults, migrations
from orgsync.errors import Fenced, LedgerError
from orgsync.gcpause import paused_gc
from orgsync.group_mirror import (
    MirrorGroup,
    apply_group,
    load_groups,
    load_members,
    memberships,
    rekey_member,
    seal_digests,
    sizes,
)
from orgsync.model import Employee, department_from_fields, rename_people
from orgsync.operations import SPECS, MirrorChange
from orgsync.plan import Operation, OpKind
from orgsync.state import DirectoryState, Lifecycle, MirrorDepartment, MirrorUser
from orgsync.urls import PERCENT_ENCODE, mask_url, mask_urls, userinfo_is_ambiguous

if TYPE_CHECKING:
    from sqlmodel import Session

    from orgsync.tables import HeldPlanRow, JournalRow, LeaveMarkRow, NotificationRow, RunRow

SCHEMA_VERSION = 1
WRITER_KEY = "writer"
"""The ``meta`` row holding the writer lock's holder record (see :mod:`orgsync.writer`)."""


def _now() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """An engine for the ledger at ``url`` (SQLite files prepared owner-only, WAL on)."""
    _prepare_sqlite_file(url)
    if make_url(url).get_backend_name() == "postgresql":
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    else:
        engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    ledger_faults.watch(engine, mask_url(url))
    return engine


def _prepare_sqlite_file(url: str) -> None:
    """Create the SQLite file owner-only (0600) before SQLAlchemy opens it."""
    u = make_url(url)
    if not u.drivername.startswith("sqlite") or not u.database or u.database == ":memory:":
        return
    path = Path(u.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Fence:
    """A writer's claim on the ledger, which :meth:`Ledger.journal_start` checks.

    ``holder``: the ``meta`` value (:data:`WRITER_KEY`) the writer stored when it
    took the lock; another writer taking the lock replaces it. On PostgreSQL,
    ``lock_pid`` and ``lock_key`` name the session and the advisory lock it holds:
    a terminated session releases the lock even when nobody has taken it yet.
    """

    holder: str
    lock_pid: int | None = None
    lock_key: int | None = None

    def params(self) -> dict[str, Any]:
        """The bind parameters of the fence condition (see :func:`_fence_holds`)."""
        key = self.lock_key or 0
        return {"fence_holder": self.holder, "fence_pid": self.lock_pid or 0,
                "fence_hi": (key >> 32) & 0xFFFF_FFFF, "fence_lo": key & 0xFFFF_FFFF}


#: The columns :meth:`Ledger.journal_start` fills.
_STARTED = ("run_id", "plan_id", "op_id", "kind", "target_key", "feishu_id", "client_token",
            "status", "reason", "started_at")


def _fence_holds(dialect: str) -> ColumnElement[bool]:
    """SQL that is true while a :class:`Fence` (its :meth:`Fence.params`) still holds."""
    from orgsync.tables import MetaRow

    meta: Table = MetaRow.__table__  # type: ignore[attr-defined]
    claim = exists().where(meta.c.key == WRITER_KEY, meta.c.value == bindparam("fence_holder"))
    if dialect != "postgresql":
        return claim  # a flock is lost only with its process
    return and_(claim, text(
        "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND pid = :fence_pid AND objsubid = 1 AND classid::bigint = :fence_hi "
        "AND objid::bigint = :fence_lo)"))


class _Statements:
    """The executor's hot-path statements for one SQL dialect, built once with bind
    parameters so that SQLAlchemy compiles each once (see :meth:`Ledger.journal_start`)."""

    def __init__(self, dialect: str) -> None:
        from sqlalchemy import select

        from orgsync.tables import JournalRow, MirrorDepartmentRow, MirrorUserRow, NotificationRow

        journal: Table = JournalRow.__table__  # type: ignore[attr-defined]
        users: Table = MirrorUserRow.__table__  # type: ignore[attr-defined]
        depts: Table = MirrorDepartmentRow.__table__  # type: ignore[attr-defined]
        notes: Table = NotificationRow.__table__  # type: ignore[attr-defined]
        j = journal.c
        self.journal_insert = journal.insert()
        # the same insert, of nothing unless the fence holds: no extra round trip per write
        holds = _fence_holds(dialect)
        self.journal_insert_fenced = journal.insert().from_select(
            _STARTED, select(*(bindparam(n, type_=j[n].type) for n in _STARTED)).where(holds)
        ).returning(j.id)
        self.fence_holds = select(holds)
        self.journal_finish = journal.update().where(j.id == bindparam("entry"))
        self.generation = select(func.count()).select_from(journal).where(
            j.kind == bindparam("kind"), j.target_key == bindparam("key"), j.status == "done")
        self.user_fields = select(users.c.fields).where(users.c.key == bindparam("k"))
        self.user_update = users.update().where(users.c.key == bindparam("k"))
        self.user_upsert = _upsert(users, dialect)
        self.dept_fields = select(depts.c.fields).where(depts.c.key == bindparam("k"))
        self.dept_update = depts.update().where(depts.c.key == bindparam("k"))
        self.dept_upsert = _upsert(depts, dialect)
        self.dept_delete = depts.delete().where(depts.c.key == bindparam("k"))
        self.notification_exists = select(notes.c.event).where(
            notes.c.event == bindparam("event"))
        self.notification_insert = notes.insert()


def _upsert(table: Table, dialect: str) -> Any:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` of every column (SQLite or PostgreSQL)."""
    stmt: Any
    if dialect == "postgresql":  # imported here: the PostgreSQL dialect is slow to import
        from sqlalchemy.dialects import postgresql

        stmt = postgresql.insert(table)
    else:
        from sqlalchemy.dialects import sqlite

        stmt = sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={c.name: stmt.excluded[c.name] for c in table.c if c.name != "key"})



class Ledger:
    """Access to the ledger database. One instance per process; not thread-safe.

    Opening it migrates the schema to the newest revision first
    (:func:`orgsync.migrations.upgrade`; how to add a table or a column is in that
    module's docstring). SQLite files are created owner-only; PostgreSQL
    (``postgresql+psycopg://…``) connections are checked before use, so a ledger
    survives a server restart between runs.
    """

    def __init__(self, url: str, *, now: Callable[[], datetime] = _now) -> None:
        self.url = url
        self.now = now
        #: Set while this process holds the writer lock (:mod:`orgsync.writer`).
        self.fence: Fence | None = None
        if userinfo_is_ambiguous(url):
            raise LedgerError(f"cannot open the ledger at {mask_url(url)}: the password holds "
                              f"a reserved character; {PERCENT_ENCODE}")
        try:
            self.engine: Engine = make_engine(url)
            migrations.upgrade(self.engine)
            if self.get_meta("schema_version") is None:
                with self.engine.begin() as c:  # once, even when replicas start together
                    c.execute(text("INSERT INTO meta (key, value) VALUES ('schema_version', :v)"
                                   " ON CONFLICT (key) DO NOTHING"), {"v": str(SCHEMA_VERSION)})
        except LedgerError:
            raise
        except Exception as exc:
            raise ledger_faults.fault(exc, mask_url(url)) or LedgerError(
                f"cannot open the ledger at {mask_url(url)}: {_safe_error(exc, url)}") from None

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    # A plan reads and writes the ledger by plain SQL only (get_meta, start_run, finish_run,
    # leaver_history, has_written, plan_status, hold_plan, the mirror readers): loading
    # SQLModel, the ORM and the table classes costs a plan process a tenth of a second.
    # Everything else imports them when first called.

    @cached_property
    def _sql(self) -> _Statements:
        return _Statements(self.engine.dialect.name)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        from sqlmodel import Session

        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    # ------------------------------------------------------------------ runs
    def start_run(self, mode: str, *, plan_id: str | None = None) -> str:
        """Record a new run; returns its id."""
        run_id = self.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        with self.engine.begin() as c:
            c.execute(_START_RUN, {"id": run_id, "mode": mode, "plan_id": plan_id,
                                   "at": self.now()})
        return run_id

    def finish_run(self, run_id: str, status: str, *, plan_id: str | None = None,
                   summary: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        """Close a run with its outcome."""
        with self.engine.begin() as c:
            if c.execute(_FINISH_RUN, {
                    "id": run_id, "status": status, "at": self.now(), "error": error,
                    "summary": json.dumps(dict(summary or {}), ensure_ascii=False,
                                          sort_keys=True),
                    "plan_id": plan_id or None}).rowcount != 1:
                raise LedgerError(f"unknown run {run_id}")
        with self.engine.begin() as c:
            seal_digests(c)

    def leaver_history(self, limit: int) -> list[int]:
        """The leaver counts the last ``limit`` applied runs recorded, newest first.

        A run records one (``leavers`` in its summary) when it applied a plan that
        needed no approval (:func:`orgsync.runner.run_once`); plans, held,
        cancelled and failed runs, approved plans and runs older than the record
        have none, so they never move the churn guard's baseline.
        """
        with self.engine.connect() as c:
            return [int(json.loads(summary)["leavers"]) for (summary,) in c.execute(text(
                "SELECT summary FROM runs WHERE status IN ('ok', 'partial') "
                "AND summary LIKE '%\"leavers\":%' ORDER BY started_at DESC LIMIT :n"),
                {"n": limit})]

    def runs(self, limit: int = 20) -> list[RunRow]:
        """Most recent runs first."""
        from sqlmodel import select

        from orgsync.tables import RunRow

        with self._session() as s:
            stmt = select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)  # type: ignore[attr-defined]
            return list(s.exec(stmt))

    # --------------------------------------------------------------- journal
    # The executor's hot path (journal_start, journal_finish) uses
    # Core statements on the SQLModel tables: an ORM session per call cost more CPU
    # than the Feishu request it journals (python -m orgsync.bench --only headroom).

    def journal_start(self, run_id: str, plan_id: str, op: Operation,
                      client_token: str | None = None, *,
                      tokenize: Callable[[int], str] | None = None) -> tuple[int, str]:
        """Journal ``op`` as started (before its Feishu call); returns (entry id, token).

        The token is ``client_token``, or with ``tokenize`` (creates) the token for
        the create generation — how many creates of this kind on this key succeeded
        before, counted in the same transaction — or else the operation's own. An
        interrupted create keeps its generation, so its retry replays Feishu's first
        answer; re-creating an entity that was created and then deleted gets a fresh
        token.

        With :attr:`fence` set, nothing is journaled and :class:`Fenced` is raised
        when the fence no longer holds (the caller must not make the call).
        """
        with self.engine.begin() as c:
            if tokenize is not None:
                client_token = tokenize(c.execute(self._sql.generation, {
                    "kind": op.kind.value, "key": op.key}).scalar_one())
            token = client_token or op.client_token
            values = {
                "run_id": run_id, "plan_id": plan_id, "op_id": op.op_id, "kind": op.kind.value,
                "target_key": op.key, "feishu_id": op.feishu_id, "client_token": token,
                "status": "started", "reason": journal_reason(op), "started_at": self.now()}
            if self.fence is not None:
                entry = c.execute(self._sql.journal_insert_fenced,
                                  {**values, **self.fence.params()}).scalar_one_or_none()
                if entry is None:
                    raise Fenced(_FENCED)
                return int(entry), token
            key = c.execute(self._sql.journal_insert, values).inserted_primary_key
            assert key is not None
            return int(key[0]), token

    def check_fence(self) -> None:
        """Raise :class:`Fenced` when :attr:`fence` is set and no longer holds."""
        if self.fence is None:
            return
        with self.engine.connect() as c:
            if not c.execute(self._sql.fence_holds, self.fence.params()).scalar():
                raise Fenced(_FENCED)

    def journal_finish(self, entry_id: int, op: Operation, status: str, *, code: int | None = None,
                       message: str | None = None, open_id: str | None = None,
                       events: Sequence[str] = ()) -> None:
        """Finish a journal entry; on ``done`` apply ``op`` to the mirror in the same transaction.

        ``events`` (on ``done``): notifications this write makes due (a new hire's
        welcome), recorded ``pending`` in the same transaction, so a crash right
        after the write still owes the message.
        """
        with self.engine.begin() as c:
            updated = c.execute(self._sql.journal_finish, {
                "entry": entry_id, "status": status, "code": code, "message": message,
                "finished_at": self.now()})
            if updated.rowcount != 1:
                raise LedgerError(f"unknown journal entry {entry_id}")
            if status == "done":
                self._apply_to_mirror(c, op, open_id)
                for event in events:
                    self._owe_in(c, event)
    def journal_skip(self, run_id: str, plan_id: str, op: Operation, reason: str) -> None:
        """Record an operation that was not attempted (a dependency failed)."""
        from orgsync.tables import JournalRow

        with self._session() as s:
            s.add(JournalRow(run_id=run_id, plan_id=plan_id, op_id=op.op_id, kind=op.kind.value,
                             target_key=op.key, feishu_id=op.feishu_id,
                             client_token=op.client_token, status="skipped", message=reason,
                             reason=journal_reason(op),
                             started_at=self.now(), finished_at=self.now()))
            s.commit()

    def journal(self, run_id: str | None = None) -> list[JournalRow]:
        """Journal entries in write order (of one run, or all)."""
        from sqlmodel import select

        from orgsync.tables import JournalRow

        with self._session() as s:
            stmt = select(JournalRow).order_by(JournalRow.id)  # type: ignore[arg-type]
            if run_id is not None:
                stmt = stmt.where(JournalRow.run_id == run_id)
            return list(s.exec(stmt))

    def journal_of(self, key: str, limit: int = 10) -> list[JournalRow]:
        """The latest ``limit`` journal entries whose target is ``key``, newest first."""
        from sqlmodel import select

        from orgsync.tables import JournalRow

        with self._session() as s:
            stmt = select(JournalRow).where(JournalRow.target_key == key).order_by(
                JournalRow.id.desc()).limit(limit)  # type: ignore[union-attr]
            return list(s.exec(stmt))

    def has_written(self) -> bool:
        """True when any operation was ever journaled (orgsync wrote to this tenant before)."""
        with self.engine.connect() as c:
            return c.execute(text("SELECT 1 FROM journal LIMIT 1")).first() is not None

    def recover_interrupted(self) -> int:
        """Mark runs left ``running`` as ``crashed`` and their open entries ``interrupted``.

        Called at the start of a run (one runner at a time). Returns how many
        journal entries were interrupted: their outcome in Feishu is unknown, and
        the next plan settles them (replayed creates, adopted ids, re-sent patches).
        """
        from sqlmodel import select

        from orgsync.tables import JournalRow, RunRow

        with self._session() as s:
            crashed = list(s.exec(select(RunRow).where(RunRow.status == "running")))
            for run in crashed:
                run.status = "crashed"
                run.finished_at = self.now()
                run.error = "the process ended before the run finished"
                s.add(run)
            ids = [r.id for r in crashed]
            n = 0
            if ids:
                for row in s.exec(select(JournalRow).where(
                        JournalRow.status == "started",
                        JournalRow.run_id.in_(ids))):  # type: ignore[attr-defined]
                    row.status = "interrupted"
                    row.message = "outcome unknown: the run was killed during this call"
                    s.add(row)
                    n += 1
            s.commit()
            return n

    def has_unfinished(self, kind: OpKind, key: str, *, exclude: int | None = None) -> bool:
        """True if an earlier attempt journaled ``kind`` on ``key`` but never learned its outcome."""
        from sqlmodel import select

        from orgsync.tables import JournalRow

        with self._session() as s:
            stmt = select(JournalRow.id).where(
                JournalRow.kind == kind.value, JournalRow.target_key == key,
                JournalRow.status.in_(("started", "interrupted")),  # type: ignore[attr-defined]
                JournalRow.id != (exclude or -1)).limit(1)
            return s.exec(stmt).first() is not None

    def settle_unfinished(self, kind: OpKind, key: str, status: str, message: str) -> None:
        """Close earlier ``started`` entries of ``kind`` on ``key`` once their outcome is known.

        Called after the current attempt finished, so only earlier attempts match.
        """
        from sqlmodel import select

        from orgsync.tables import JournalRow

        with self._session() as s:
            stmt = select(JournalRow).where(
                JournalRow.kind == kind.value, JournalRow.target_key == key,
                JournalRow.status.in_(("started", "interrupted")))  # type: ignore[attr-defined]
            for row in s.exec(stmt):
                row.status = status
                row.message = message
                row.finished_at = self.now()
                s.add(row)
            s.commit()

    # ---------------------------------------------------------------- mirror
    def _apply_to_mirror(self, c: Connection, op: Operation, open_id: str | None) -> None:
        now = self.now()
        change = SPECS[op.kind].mirror
        fields = dict(op.mirror or {})
        key = {"k": op.key}
        if op.entity == "group":
            apply_group(c, op, change, now)
            return
        if op.entity == "department":
            if change is MirrorChange.REKEY:
                self._rekey_department_in_mirror(c, op, now)
                return
            if change in (MirrorChange.DELETE, MirrorChange.RELEASE):
                c.execute(self._sql.dept_delete, key)
                return
            stored = None if change is MirrorChange.INSERT else \
                c.execute(self._sql.dept_fields, key).scalar_one_or_none()
            if stored is None:
                # An adopted department names the id it has afterwards (``department.adopt``).
                fid = str(fields.pop("feishu_id", op.feishu_id))
                c.execute(self._sql.dept_upsert, {
                    "key": op.key, "feishu_id": fid, "open_id": open_id,
                    "fields": _dumps(fields), "updated_at": now})
                return
            c.execute(self._sql.dept_update, {**key, "fields": _dumps({**json.loads(stored), **fields}),
                                         "updated_at": now})
            return
        if op.entity != "user":
            return
        if change is MirrorChange.REKEY:
            self._rekey_in_mirror(c, op, now)
            return
        stored = None if change is MirrorChange.INSERT else \
            c.execute(self._sql.user_fields, key).scalar_one_or_none()
        if stored is None:
            text_, fp = _user_fields(op.key, fields)
            c.execute(self._sql.user_upsert, {
                "key": op.key, "feishu_id": op.feishu_id, "open_id": open_id, "fields": text_,
                "fingerprint": fp, "lifecycle": Lifecycle.ACTIVE.value, "frozen_at": None,
                "deleted_at": None, "updated_at": now})
            return
        values: dict[str, Any] = {"updated_at": now}
        if change is MirrorChange.DELETE:
            values.update(lifecycle=Lifecycle.DELETED.value, deleted_at=now)
        elif change is MirrorChange.FREEZE:
            values.update(lifecycle=Lifecycle.FROZEN.value, frozen_at=now)
        elif change is MirrorChange.RELEASE:
            values.update(lifecycle=Lifecycle.RELEASED.value)
        elif change is MirrorChange.ACTIVATE:
            values.update(lifecycle=Lifecycle.ACTIVE.value, frozen_at=None, deleted_at=None)
            if open_id:  # a new account made instead of a resurrect
                values["open_id"] = open_id
        if fields:
            values["fields"], values["fingerprint"] = _user_fields(
                op.key, {**json.loads(stored), **fields})
        c.execute(self._sql.user_update, {**key, **values})

    def _rekey_in_mirror(self, c: Connection, op: Operation, now: datetime) -> None:
        """Move ``previous_key``'s mirror row to ``op.key`` (with its new Feishu id), and
        every manager or leader reference to it along."""
        from orgsync.tables import MirrorDepartmentRow, MirrorUserRow

        assert op.mirror is not None
        old, new = str(op.mirror["previous_key"]), op.key
        users: Table = MirrorUserRow.__table__  # type: ignore[attr-defined]
        depts: Table = MirrorDepartmentRow.__table__  # type: ignore[attr-defined]
        stored = c.execute(self._sql.user_fields, {"k": old}).scalar_one_or_none()
        if stored is None:
            return  # already moved (a replayed journal entry)
        text_, fp = _user_fields(new, json.loads(stored))
        c.execute(users.update().where(users.c.key == old).values(
            key=new, feishu_id=str(op.mirror["feishu_id"]), fields=text_, fingerprint=fp,
            updated_at=now))
        rekey_member(c, old, new)
        for key, decoded in _naming(c, users, old):
            if decoded.get("manager_key") == old:
                decoded["manager_key"] = new
                text_, fp = _user_fields(key, decoded)
                c.execute(users.update().where(users.c.key == key).values(
                    fields=text_, fingerprint=fp, updated_at=now))
        for key, decoded in _naming(c, depts, old):
            renamed = rename_people(department_from_fields(key, decoded), {old: new}).fields()
            if renamed != decoded:
                c.execute(depts.update().where(depts.c.key == key).values(
                    fields=_dumps(renamed), updated_at=now))

    def _rekey_department_in_mirror(self, c: Connection, op: Operation, now: datetime) -> None:
        """Move ``previous_key``'s department row to ``op.key`` (its Feishu id stays), merge
        the operation's other mirror fields, and make sub-departments' parent and members'
        department keys follow."""
        from orgsync.tables import MirrorDepartmentRow, MirrorUserRow

        assert op.mirror is not None
        old, new = str(op.mirror["previous_key"]), op.key
        users: Table = MirrorUserRow.__table__  # type: ignore[attr-defined]
        depts: Table = MirrorDepartmentRow.__table__  # type: ignore[attr-defined]
        stored = c.execute(self._sql.dept_fields, {"k": old}).scalar_one_or_none()
        if stored is None:
            return  # already moved (a replayed journal entry)
        merged = {**json.loads(stored),
                  **{k: v for k, v in op.mirror.items() if k != "previous_key"}}
        c.execute(depts.update().where(depts.c.key == old).values(
            key=new, fields=_dumps(merged), updated_at=now))
        for key, decoded in _naming(c, depts, old):
            if decoded.get("parent_key") == old:
                decoded["parent_key"] = new
                c.execute(depts.update().where(depts.c.key == key).values(
                    fields=_dumps(decoded), updated_at=now))
        for key, decoded in _naming(c, users, old):
            keys = decoded.get("department_keys") or []
            if old in keys:
                decoded["department_keys"] = [new if k == old else k for k in keys]
                text_, fp = _user_fields(key, decoded)
                c.execute(users.update().where(users.c.key == key).values(
                    fields=text_, fingerprint=fp, updated_at=now))

    def load_state(self, known: Mapping[str, Employee] | None = None) -> DirectoryState:
        """The mirror as a :class:`DirectoryState` (what incremental runs diff against).

        ``known``: records already in memory, by key (the source just read). A
        mirrored user whose stored fingerprint equals its known record's gets
        that very record instead of decoding the stored one — equal by
        construction, so the diff can skip it by identity. Only the others (the
        changed, the leavers, rows without a fingerprint) are decoded. The keys of
        the active ones among the reused go to the state's ``unchanged``.

        A row holding values no orgsync writes (a lifecycle it does not know, a
        record that is not one) is a damaged ledger: :class:`LedgerError`.
        """
        try:
            return self._load_state(known or {})
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # the type only: a value read back may be a person's name or email
            raise ledger_faults.damaged(mask_url(self.url), "a mirror row orgsync did not "
                                        f"write ({type(exc).__name__})") from None

    def _load_state(self, known: Mapping[str, Employee]) -> DirectoryState:
        state = DirectoryState()
        with self.engine.connect() as c:
            for key, fid, oid, f in c.execute(text(
                    "SELECT key, feishu_id, open_id, fields FROM mirror_departments")):
                state.departments[key] = MirrorDepartment(
                    department_from_fields(key, json.loads(f)), fid, oid)
            # The DB-API cursor directly: SQLAlchemy's per-row processing costs
            # more than the query for 100k rows.
            cursor = c.connection.cursor()
            try:
                cursor.execute("SELECT key, feishu_id, open_id, fingerprint, lifecycle, "
                               "frozen_at, deleted_at FROM mirror_users")
                rows = cursor.fetchall()
            except Exception as exc:  # SQLAlchemy's handle_error does not see this cursor
                fault = ledger_faults.fault(exc, mask_url(self.url))
                if fault is None:
                    raise
                raise fault from None
            finally:
                cursor.close()
            with paused_gc():
                users = state.users
                lifecycles = {lc.value: lc for lc in Lifecycle}
                later: list[Any] = []  # rows whose stored record must be decoded
                unchanged: list[str] = []
                active = Lifecycle.ACTIVE.value
                released = Lifecycle.RELEASED.value
                for row in rows:
                    key, fid, oid, fp, lc, fz, dl = row
                    if lc == released:  # not managed: apart, never diffed
                        later.append(row)
                        continue
                    e = known.get(key)
                    if e is None or fp != e.fingerprint():
                        later.append(row)
                        continue
                    if lc == active:
                        unchanged.append(key)
                    users[key] = MirrorUser(e, fid, oid, lifecycles[lc],
                                            _as_dt(fz) if fz is not None else None,
                                            _as_dt(dl) if dl is not None else None)
                state.unchanged = set(unchanged)
                decoded = self._decode_users(c, [row[0] for row in later], len(rows))
                for key, fid, oid, _fp, lc, fz, dl in later:
                    into = state.released if lc == released else users
                    into[key] = MirrorUser(decoded[key], fid, oid, lifecycles[lc],
                                           _as_dt(fz) if fz is not None else None,
                                           _as_dt(dl) if dl is not None else None)
        return state

    def load_groups(self, *, members: bool = True) -> dict[str, MirrorGroup]:
        """The managed user groups as applied (:mod:`orgsync.group_mirror`), with their
        members unless ``members`` is false (then :meth:`group_members` reads them)."""
        with self.engine.connect() as c:
            return load_groups(c, members=members)

    def group_members(self, key: str) -> set[str]:
        """The members of managed group ``key`` as applied."""
        with self.engine.connect() as c:
            return load_members(c, key)

    def group_sizes(self, keys: Sequence[str]) -> dict[str, int]:
        """Managed group key → its number of members as applied, of the groups ``keys``."""
        with self.engine.connect() as c:
            return sizes(c, keys)

    def group_memberships(self, people: Iterable[str]) -> dict[str, set[str]]:
        """Managed group key → those of ``people`` it holds as applied."""
        with self.engine.connect() as c:
            return memberships(c, people)

    def mirrored(self, key: str) -> MirrorUser | MirrorDepartment | None:
        """The mirror's user ``key``, else its department ``key``, else None (one lookup,
        without loading the whole mirror)."""
        with self.engine.connect() as c:
            row = c.execute(text(
                "SELECT feishu_id, open_id, fields, lifecycle, frozen_at, deleted_at "
                "FROM mirror_users WHERE key = :k"), {"k": key}).first()
            if row is not None:
                fid, oid, f, lc, fz, dl = row
                return MirrorUser(Employee.from_fields(key, json.loads(f)), fid, oid,
                                  Lifecycle(lc), _as_dt(fz), _as_dt(dl))
            row = c.execute(text("SELECT feishu_id, open_id, fields FROM mirror_departments "
                                 "WHERE key = :k"), {"k": key}).first()
            if row is not None:
                return MirrorDepartment(department_from_fields(key, json.loads(row[2])),
                                        row[0], row[1])
        return None

    def reverse_ids(self) -> tuple[dict[str, str], dict[str, str]]:
        """Feishu id → key of the mirror's departments and of its users."""
        with self.engine.connect() as c:
            return ({str(f): str(k) for k, f in c.execute(text(
                        "SELECT key, feishu_id FROM mirror_departments"))},
                    {str(f): str(k) for k, f in c.execute(text(
                        "SELECT key, feishu_id FROM mirror_users"))})

    def mirrored_key(self, *, email: str) -> str | None:
        """The key of the mirrored user whose stored email is ``email`` (any case)."""
        from sqlalchemy import select

        from orgsync.tables import MirrorUserRow

        quoted = json.dumps(email.lower(), ensure_ascii=False)[1:-1]
        needle = "%" + quoted.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
        users: Table = MirrorUserRow.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as c:
            for key, f in c.execute(select(users.c.key, users.c.fields).where(
                    func.lower(users.c.fields).like(needle, escape="!"))):
                if str(json.loads(f).get("email") or "").lower() == email.lower():
                    return str(key)
        return None

    @staticmethod
    def _decode_users(c: Connection, keys: Sequence[str], total: int) -> dict[str, Employee]:
        """The stored records of mirrored users ``keys`` (all of them: one scan)."""
        if not keys:
            return {}
        decode = json.JSONDecoder().decode
        from_fields = Employee.from_fields
        if len(keys) > total // 4:
            wanted = set(keys)
            return {k: from_fields(k, decode(f)) for k, f in c.execute(text(
                "SELECT key, fields FROM mirror_users")) if k in wanted}
        out: dict[str, Employee] = {}
        query = text("SELECT key, fields FROM mirror_users WHERE key IN :keys").bindparams(
            bindparam("keys", expanding=True))
        for start in range(0, len(keys), 500):
            for k, f in c.execute(query, {"keys": list(keys[start:start + 500])}):
                out[k] = from_fields(k, decode(f))
        return out

    def replace_mirror(self, state: DirectoryState) -> None:
        """Rebuild the mirror from ``state`` (after a full resync read Feishu)."""
        from orgsync.tables import MirrorDepartmentRow, MirrorUserRow

        now = self.now()
        with self._session() as s:
            s.exec(text("DELETE FROM mirror_departments"))  # type: ignore[call-overload]
            s.exec(text("DELETE FROM mirror_users"))  # type: ignore[call-overload]
            for k, d in state.departments.items():
                s.add(MirrorDepartmentRow(key=k, feishu_id=d.feishu_id, open_id=d.open_id,
                                          fields=_dumps(d.record.fields()), updated_at=now))
            for k, u in [*state.users.items(), *state.released.items()]:
                s.add(MirrorUserRow(key=k, feishu_id=u.feishu_id, open_id=u.open_id,
                                    fields=_dumps(u.record.fields()),
                                    fingerprint=u.record.fingerprint(), lifecycle=u.lifecycle.value,
                                    frozen_at=u.frozen_at, deleted_at=u.deleted_at,
                                    updated_at=now))
            s.commit()

    # ------------------------------------------------------------ held plans
    def hold_plan(self, plan_id: str, checksum: str, reasons: list[str],
                  summary: Mapping[str, int]) -> None:
        """Store a held plan (again: holding the same plan twice keeps one row).

        A plan that was approved and applied, and comes back (some of its writes
        failed), is held again: an approval releases one apply, not every later one.
        """
        text_ = json.dumps(reasons, ensure_ascii=False)
        with self.engine.begin() as c:
            status = c.execute(_PLAN_STATUS, {"p": plan_id}).scalar_one_or_none()
            if status is None:
                c.execute(_HOLD_PLAN, {"p": plan_id, "checksum": checksum, "reasons": text_,
                                       "summary": json.dumps(dict(summary)), "at": self.now()})
            elif status in ("applied", "discarded"):
                c.execute(text("UPDATE held_plans SET status = 'held', approved_at = NULL, "
                               "approved_by = NULL, reasons = :reasons WHERE plan_id = :p"),
                          {"p": plan_id, "reasons": text_})

    def approve_plan(self, plan_id: str, *, by: str | None = None) -> bool:
        """Mark a held plan approved (by ``by``, now); False when no plan with that id was held."""
        return self._decide(plan_id, "approved", by)

    def discard_plan(self, plan_id: str, *, by: str | None = None) -> bool:
        """Mark a held plan discarded: it can no longer be approved (a later run that plans
        the same again holds it again). False when no plan with that id is held."""
        return self._decide(plan_id, "discarded", by, only_held=True)

    def _decide(self, plan_id: str, status: str, by: str | None, *,
                only_held: bool = False) -> bool:
        from orgsync.tables import HeldPlanRow

        with self._session() as s:
            row = s.get(HeldPlanRow, plan_id)
            if row is None or (only_held and row.status != "held"):
                return False
            row.status, row.approved_at, row.approved_by = status, self.now(), by
            s.add(row)
            s.commit()
            return True

    def plan_status(self, plan_id: str) -> str | None:
        """``held``, ``approved``, ``applied`` or ``discarded`` for a plan that was held;
        else None."""
        with self.engine.connect() as c:
            status = c.execute(_PLAN_STATUS, {"p": plan_id}).scalar_one_or_none()
            return None if status is None else str(status)

    def decisions(self, plan_ids: Sequence[str]) -> dict[str, HeldPlanRow]:
        """The held-plan rows of ``plan_ids`` (those that were ever held), by plan id."""
        if not plan_ids:
            return {}
        from sqlmodel import select

        from orgsync.tables import HeldPlanRow

        with self._session() as s:
            stmt = select(HeldPlanRow).where(
                HeldPlanRow.plan_id.in_(sorted(set(plan_ids))))  # type: ignore[attr-defined]
            return {row.plan_id: row for row in s.exec(stmt)}

    def mark_plan_applied(self, plan_id: str) -> None:
        """Record that an approved plan was applied (it cannot be released twice)."""
        from orgsync.tables import HeldPlanRow

        with self._session() as s:
            row = s.get(HeldPlanRow, plan_id)
            if row is not None:
                row.status = "applied"
                s.add(row)
                s.commit()

    def held_plans(self) -> list[HeldPlanRow]:
        """Plans still waiting for approval, newest first."""
        from sqlmodel import select

        from orgsync.tables import HeldPlanRow

        with self._session() as s:
            stmt = select(HeldPlanRow).where(HeldPlanRow.status == "held").order_by(
                HeldPlanRow.created_at.desc())  # type: ignore[attr-defined]
            return list(s.exec(stmt))

    # --------------------------------------------------------- notifications
    def _owe(self, s: Session, event: str) -> NotificationRow:
        from orgsync.tables import NotificationRow

        row = s.get(NotificationRow, event)
        if row is None:
            row = NotificationRow(**_owed(event, self.now()))
            s.add(row)
        return row

    def _owe_in(self, c: Connection, event: str) -> None:
        """:meth:`_owe` on a Core connection (inside :meth:`journal_finish`'s transaction)."""
        if c.execute(self._sql.notification_exists, {"event": event}).first() is None:
            c.execute(self._sql.notification_insert, _owed(event, self.now()))

    def leave_mark(self, key: str) -> LeaveMarkRow | None:
        """The leave ledger's row for mark ``key`` (see :mod:`orgsync.leave_sync`)."""
        from orgsync.tables import LeaveMarkRow

        with self._session() as s:
            return s.get(LeaveMarkRow, key)

    def leave_marks_of(self, employee_id: str) -> list[LeaveMarkRow]:
        """The leave ledger's rows for one person, earliest first."""
        from sqlmodel import col, select

        from orgsync.tables import LeaveMarkRow

        with self._session() as s:
            return list(s.exec(select(LeaveMarkRow).where(
                LeaveMarkRow.employee_id == employee_id).order_by(
                col(LeaveMarkRow.ends_at), col(LeaveMarkRow.key))))

    def owe_once(self, s: Session, event: str, prefix: str) -> None:
        """Record ``event`` pending in ``s`` (the caller's transaction) unless a notification
        whose event starts with ``prefix`` exists: one message per occurrence, whatever
        details its key carries."""
        from sqlmodel import col, select

        from orgsync.tables import NotificationRow

        if s.exec(select(NotificationRow.event).where(
                col(NotificationRow.event).startswith(prefix, autoescape=True))).first() is None:
            self._owe(s, event)

    def owe_notification(self, event: str) -> NotificationRow:
        """The notification for ``event``, recorded ``pending`` if it is new."""
        with self._session() as s:
            row = self._owe(s, event)
            s.commit()
            return row

    def notifications(self, *, status: str | Sequence[str] | None = None,
                      kinds: Sequence[str] = (), target: str | None = None
                      ) -> list[NotificationRow]:
        """Notifications (with ``status``, or one of several, of ``kinds``, about
        ``target``), oldest first."""
        from sqlmodel import select

        from orgsync.tables import NotificationRow

        with self._session() as s:
            stmt = select(NotificationRow).order_by(
                NotificationRow.created_at, NotificationRow.event)  # type: ignore[arg-type]
            if target is not None:
                stmt = stmt.where(NotificationRow.target == target)
            if status is not None:
                statuses = (status,) if isinstance(status, str) else tuple(status)
                stmt = stmt.where(NotificationRow.status.in_(statuses))  # type: ignore[attr-defined]
            if kinds:
                stmt = stmt.where(NotificationRow.kind.in_(tuple(kinds)))  # type: ignore[attr-defined]
            return list(s.exec(stmt))

    def attempt_notification(self, event: str, at: datetime) -> None:
        """Record, before the send, that ``event``'s notification is being sent at ``at``.

        The row becomes ``sending`` until :meth:`settle_notification` records the
        answer; ``last_tried_at`` keeps the first unanswered attempt's time (a
        re-send of a ``sending`` row does not move it).
        """
        with self._session() as s:
            row = self._notification(s, event)
            if row.status != "sending":
                row.last_tried_at = at
            row.status = "sending"
            row.attempts += 1
            s.add(row)
            s.commit()

    def settle_notification(self, event: str, status: str, *, code: int | None = None,
                            message: str | None = None) -> None:
        """Record the outcome of an attempt (or a decision) on ``event``'s notification."""
        with self._session() as s:
            row = self._notification(s, event)
            row.status = status
            row.code = code
            row.message = message[:500] if message else None
            if status == "sent":
                row.sent_at = self.now()
            s.add(row)
            s.commit()

    @staticmethod
    def _notification(s: Session, event: str) -> NotificationRow:
        from orgsync.tables import NotificationRow

        row = s.get(NotificationRow, event)
        if row is None:
            raise LedgerError(f"unknown notification {event}")
        return row

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        """A meta value, or None."""
        with self.engine.connect() as c:
            value = c.execute(text("SELECT value FROM meta WHERE key = :k"),
                              {"k": key}).scalar_one_or_none()
            return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        """Set a meta value."""
        from orgsync.tables import MetaRow

        with self._session() as s:
            s.merge(MetaRow(key=key, value=value))
            s.commit()

    def swap_meta(self, key: str, expected: str, value: str) -> bool:
        """Set a meta value only if it is still ``expected``; True when it was."""
        from orgsync.tables import MetaRow

        meta: Table = MetaRow.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as c:
            return c.execute(meta.update().where(meta.c.key == key, meta.c.value == expected),
                             {"value": value}).rowcount == 1


_START_RUN = text("INSERT INTO runs (id, mode, status, plan_id, started_at, summary) "
                  "VALUES (:id, :mode, 'running', :plan_id, :at, '{}')").bindparams(
    bindparam("at", type_=DateTime()))
_FINISH_RUN = text("UPDATE runs SET status = :status, finished_at = :at, summary = :summary, "
                   "error = :error, plan_id = COALESCE(:plan_id, plan_id) WHERE id = :id"
                   ).bindparams(bindparam("at", type_=DateTime()))
_PLAN_STATUS = text("SELECT status FROM held_plans WHERE plan_id = :p")
_HOLD_PLAN = text("INSERT INTO held_plans (plan_id, checksum, reasons, summary, status, created_at)"
                  " VALUES (:p, :checksum, :reasons, :summary, 'held', :at)").bindparams(
    bindparam("at", type_=DateTime()))
"""The plain-SQL statements of a plan's ledger writes (columns typed as in
:mod:`orgsync.tables`: the datetimes are stored as the ORM stores them)."""

_FENCED = ("this run lost the ledger's writer lock (another run took it over, or the lock's "
           "database session ended); it stopped before its next Feishu write. The next run "
           "resumes what it left unfinished.")


def journal_reason(op: Operation) -> str:
    """Why ``op`` is made, as journaled: its reason, and what it changes (not for a create,
    whose changes are the whole record, nor a delete's), at most 1000 characters."""
    spec = SPECS[op.kind]
    changes = "" if spec.tokenized or not spec.lists_fields else ", ".join(
        f"{c.field} {_shown(c.old)} → {_shown(c.new)}" for c in op.changes)
    text_ = "; ".join(p for p in (op.reason, changes) if p)
    return text_ if len(text_) <= 1000 else text_[:999] + "…"


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "—" if value is None else str(value)


def event_kind_target(event: str) -> tuple[str, str]:
    """``(kind, target)`` of a notification event key.

    The key is ``<kind>[@<qualifier>…]:<target>``: the kind is what precedes the
    first ``@`` or ``:``, the target everything after the first ``:`` (so it may
    hold ``:`` itself). Qualifiers (percent-encoded by their producer, never
    holding a raw ``:``) make the key of a repeatable event unique; they are not
    part of the kind.
    """
    head, _, target = event.partition(":")
    return head.partition("@")[0], target


def _owed(event: str, now: datetime) -> dict[str, Any]:
    """The columns of a new ``pending`` notification row for ``event``."""
    kind, target = event_kind_target(event)
    return {"event": event, "kind": kind, "target": target, "uuid": notification_uuid(event),
            "status": "pending", "attempts": 0, "created_at": now}


def notification_uuid(event: str) -> str:
    """Feishu's dedup ``uuid`` for ``event``: deterministic, 36 characters (limit 50)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"orgsync:notify:{event}"))


def _naming(c: Connection, table: Table, key: str) -> list[tuple[str, dict[str, Any]]]:
    """``(key, decoded fields)`` of the mirror rows whose stored fields mention ``key``.

    Stored fields are JSON text: only rows naming the key can refer to it.
    """
    from sqlalchemy import select

    quoted = json.dumps(key, ensure_ascii=False)
    needle = "%" + quoted.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
    return [(k, json.loads(f)) for k, f in c.execute(select(table.c.key, table.c.fields).where(
        table.c.fields.like(needle, escape="!"))).all()]


def _dumps(fields: Mapping[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, default=str)


def _user_fields(key: str, fields: Mapping[str, Any]) -> tuple[str, int | None]:
    """A mirrored user's stored ``fields`` and the fingerprint of the record they decode to."""
    stored = _dumps(fields)
    try:
        return stored, Employee.from_fields(key, json.loads(stored)).fingerprint()
    except (KeyError, TypeError, ValueError):  # a partial record: decoded on every load
        return stored, None


def _as_dt(v: Any) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite returns naive ones)."""
    if v is None:
        return None
    dt = v if isinstance(v, datetime) else datetime.fromisoformat(str(v))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _safe_error(exc: BaseException, url: str) -> str:
    """``exc`` as text, without the URL's password (drivers may echo the DSN)."""
    message = mask_urls(str(exc))
    try:
        password = make_url(url).password
    except Exception:
        password = None
    return message.replace(str(password), "***") if password else message
