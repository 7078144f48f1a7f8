"""The writer lock and its fence (orgsync.writer) on real SQLite files and a real PostgreSQL.

Processes, the sandbox and the daemon: tests/test_one_writer.py.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from orgsync.daemon.leader import FileLeaderLock
from orgsync.errors import EXIT_BUSY, Fenced, WriterBusy
from orgsync.ledger import WRITER_KEY, Ledger
from orgsync.plan import Operation, OpKind
from orgsync.writer import Holder, WriterLock
from tests.pg import _pg_url, _postgres  # noqa: F401 - fixtures

OP = Operation("user.update:E1", OpKind.USER_UPDATE, "E1", "E1", {"name": "x"})


@pytest.fixture(name="url", params=["sqlite", "postgresql"])
def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(name="ledgers")
def _ledgers(url: str) -> Iterator[tuple[Ledger, Ledger]]:
    """Two handles on one ledger, as two writers would have."""
    a, b = Ledger(url), Ledger(url)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_second_writer_is_refused_at_once_naming_the_holder(
        ledgers: tuple[Ledger, Ledger]) -> None:
    """Busy: exit 7, the message names command, host, pid, since; release passes it on."""
    a, b = ledgers
    first, second = WriterLock(a), WriterLock(b)
    holder = first.acquire("apply")
    try:
        with pytest.raises(WriterBusy) as refused:
            second.acquire("approve")
        assert refused.value.exit_code == EXIT_BUSY == 7
        message = str(refused.value)
        assert f"'apply' (pid {os.getpid()} on host {socket.gethostname()}, since " in message
        assert f"token {holder.token})" in message
        assert b.fence is None
    finally:
        first.release()
    released = Holder.from_json(a.get_meta(WRITER_KEY))
    assert released is not None
    assert (released.released, released.token, released.pid) == (True, holder.token, os.getpid())
    taken = second.acquire("approve")
    try:
        assert (taken.command, taken.token) == ("approve", holder.token + 1)
        assert Holder.from_json(b.get_meta(WRITER_KEY)) == taken
    finally:
        second.release()


def test_journal_entries_are_written_while_the_fence_holds(
        ledgers: tuple[Ledger, Ledger]) -> None:
    """The fenced insert journals like the plain one (same columns, same timestamps)."""
    a, _ = ledgers
    lock = WriterLock(a)
    lock.acquire("apply")
    try:
        entry, token = a.journal_start("r1", "p1", OP)
        a.check_fence()
    finally:
        lock.release()
    plain, _ = a.journal_start("r1", "p1", OP)
    rows = a.journal("r1")
    assert [(r.id, r.status, r.client_token) for r in rows] == [
        (entry, "started", token), (plain, "started", OP.client_token)]
    assert rows[0].started_at.replace(tzinfo=None) <= rows[1].started_at.replace(tzinfo=None)


def test_a_writer_whose_record_was_replaced_journals_nothing(
        ledgers: tuple[Ledger, Ledger]) -> None:
    """Another holder's record in the ledger fences this one (its next write is refused)."""
    a, b = ledgers
    lock = WriterLock(a)
    holder = lock.acquire("apply")
    try:
        later = Holder("daemon incremental run (schedule)", "elsewhere", 1, holder.since,
                       holder.token + 1)
        b.set_meta(WRITER_KEY, later.to_json())
        with pytest.raises(Fenced, match="stopped before its next Feishu write"):
            a.journal_start("r1", "p1", OP)
        with pytest.raises(Fenced):
            a.check_fence()
        assert a.journal() == []
    finally:
        lock.release()
    # releasing never overwrites the record of the writer that took over
    assert Holder.from_json(a.get_meta(WRITER_KEY)) == later


def test_a_terminated_lock_session_fences_the_writer_at_once(pg_url: str) -> None:
    """PostgreSQL: the lock's session killed, the next journal entry is refused, even
    before anyone else took the lock; a new writer then gets it."""
    ledger, other = Ledger(pg_url), Ledger(pg_url)
    engine = create_engine(pg_url)
    lock, second = WriterLock(ledger), WriterLock(other)
    try:
        lock.acquire("apply")
        ledger.journal_start("r1", "p1", OP)
        with engine.begin() as conn:
            killed = conn.execute(text(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                "WHERE application_name = 'orgsync-writer'")).scalars().all()
        assert killed == [True]
        with pytest.raises(Fenced):
            ledger.journal_start("r1", "p1", OP)
        assert len(ledger.journal()) == 1
        assert second.acquire("apply").token == 2
    finally:
        lock.release()
        second.release()
        ledger.close()
        other.close()
        engine.dispose()


def test_deleting_the_leader_file_demotes_its_holder(tmp_path: Path) -> None:
    """A leader whose lock file was deleted sees it lost; the file's new holder leads alone."""
    path = tmp_path / "ledger.db.orgsync.leader"
    a, b = FileLeaderLock(path), FileLeaderLock(path)
    try:
        assert a.try_acquire()
        path.unlink()
        assert b.try_acquire()
        assert (a.still_held(), b.still_held()) == (False, True)
        assert a.try_acquire() is False
    finally:
        a.release()
        b.release()


def test_the_holder_record_reads_back_and_describes_itself() -> None:
    """Round trip, the description, and unreadable records."""
    h = Holder("resync", "host-1", 42, "2026-12-05T07:40:12+00:00", 7)
    assert Holder.from_json(h.to_json()) == h
    assert h.describe() == "'resync' (pid 42 on host host-1, since 2026-12-05 07:40:12 UTC, " \
        "token 7)"
    assert Holder.from_json(None) is None
    assert Holder.from_json("{\"pid\": 1}") is None
    assert Holder.from_json("not json") is None
