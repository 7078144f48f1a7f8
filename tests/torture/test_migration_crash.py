"""SIGKILL during a ledger migration, at every SQL statement, then start again.

For each backend (SQLite, PostgreSQL) and each starting point — an empty database,
a ledger from before migrations (tables, no ``alembic_version``) and every revision
older than the newest, holding one row per table — a child process opening the
ledger kills itself just before its Nth SQL statement (tests/migration_proc.py).
Right after the kill the schema is exactly the starting one or exactly the newest
one (never half of an upgrade); the next start completes the migration, the
schema then equals a clean newest ledger's (SQLAlchemy inspection) and every row
is still there.

Default run: every third kill point (and the last). ``TORTURE=full`` (or
``-m torture``): every one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from psycopg import sql
from sqlalchemy import MetaData, Table, create_engine, inspect, select, text

from orgsync.ledger import Ledger
from orgsync.migrations import BASELINE, alembic_config, head, stamped
from orgsync.model import Employee
from tests.pg import PostgresServer, _postgres  # noqa: F401 - fixture
from tests.torture.harness import full, report

ROOT = Path(__file__).resolve().parents[2]
PERSON = Employee(key="E1", name="张三", department_keys=("D1",), email="san.zhang@example.com")
T = datetime(2026, 1, 1, tzinfo=UTC)
ROWS: dict[str, dict[str, Any]] = {
    "runs": {"id": "r1", "mode": "apply", "status": "ok", "plan_id": "p1", "started_at": T,
             "finished_at": T, "summary": "{}", "error": None},
    "journal": {"id": 1, "run_id": "r1", "plan_id": "p1", "op_id": "o1", "kind": "user.create",
                "target_key": "E1", "feishu_id": "u1", "client_token": "t1", "status": "done",
                "code": 0, "message": None, "started_at": T, "finished_at": T},
    "mirror_departments": {"key": "D1", "feishu_id": "D1", "open_id": "od-1",
                           "fields": json.dumps({"name": "研发"}), "updated_at": T},
    "mirror_users": {"key": "E1", "feishu_id": "E1", "open_id": "ou-1",
                     "fields": json.dumps(PERSON.fields(), ensure_ascii=False),
                     "lifecycle": "active", "frozen_at": None, "deleted_at": None,
                     "updated_at": T},
    "meta": {"key": "last_good_employees", "value": "1"},
    "held_plans": {"plan_id": "p2", "checksum": "c", "reasons": "[]", "summary": "{}",
                   "status": "held", "created_at": T, "approved_at": None},
    "notifications": {"event": "welcome:E1", "kind": "welcome", "target": "E1", "uuid": "u",
                      "status": "sent", "attempts": 1, "created_at": T, "last_tried_at": T,
                      "sent_at": T, "code": None, "message": None},
}


def starts() -> list[str]:
    """Where a migration can start: nothing, an unversioned ledger, each older revision."""
    return ["empty", "unversioned", *(f"{n:04d}" for n in range(1, int(head())))]


class Backend:
    """Databases of one kind: templates per starting point, copies to kill in."""

    def __init__(self, kind: str, tmp: Path, pg: PostgresServer | None) -> None:
        self.kind, self.tmp, self.pg = kind, tmp, pg

    def new(self) -> str:
        """A new empty database's URL."""
        if self.pg is not None:
            return self.pg.create_database()
        return f"sqlite:///{self.tmp / uuid.uuid4().hex[:12]}.db"

    def copy(self, url: str) -> str:
        """A copy of the database at ``url`` (nobody may be connected to it)."""
        if self.pg is not None:
            name = "t_" + uuid.uuid4().hex[:12]
            with psycopg.connect(f"host=127.0.0.1 port={self.pg.port} user=postgres "
                                 "dbname=postgres", autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(url.rsplit("/", 1)[1])))
            return self.pg.url(name)
        target = self.new()
        source = Path(url.removeprefix("sqlite:///"))
        if source.exists():
            shutil.copy(source, target.removeprefix("sqlite:///"))
        return target


def prepare(backend: Backend, start: str) -> str:
    """A database at ``start``, holding one row in each of its tables."""
    url = backend.new()
    if start == "empty":
        return url
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), BASELINE if start == "unversioned" else start)
            if start == "unversioned":
                conn.execute(text("DROP TABLE alembic_version"))
        with engine.begin() as conn:
            for name in inspect(conn).get_table_names():
                if name in ROWS:
                    table = Table(name, MetaData(), autoload_with=conn)
                    conn.execute(table.insert().values(
                        {k: v for k, v in ROWS[name].items() if k in table.c}))
    finally:
        engine.dispose()
    return url


def schema(url: str) -> dict[str, Any]:
    """Tables with their columns, primary keys and indexes, as SQLAlchemy inspects them."""
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        return {t: {"columns": [(c["name"], str(c["type"]), c["nullable"])
                                for c in insp.get_columns(t)],
                    "pk": insp.get_pk_constraint(t)["constrained_columns"],
                    "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"])
                                      for i in insp.get_indexes(t))}
                for t in sorted(insp.get_table_names())}
    finally:
        engine.dispose()


def rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table but Alembic's."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: [dict(r._mapping) for r in conn.execute(select(
                        Table(name, MetaData(), autoload_with=conn)))]
                    for name in inspect(conn).get_table_names() if name != "alembic_version"}
    finally:
        engine.dispose()


def kill_at(pairs: list[tuple[int, str]]) -> list[int | None]:
    """Open each ledger in a child process killed before its Nth SQL statement."""
    args = [str(a) for pair in pairs for a in pair]
    done = subprocess.run([sys.executable, "-m", "tests.migration_proc", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    counts: list[int | None] = json.loads(done.stdout)
    return counts


def sweep(backend: Backend, start: str, clean: dict[str, Any]) -> int:
    """Kill the start at ``start`` at each sampled statement; returns the kill points tried."""
    template = prepare(backend, start)
    before, before_rows = schema(template), rows(template)
    [total] = kill_at([(0, backend.copy(template))])
    assert total is not None
    points = list(range(1, total + 1)) if full() else sorted({*range(1, total + 1, 3), total})
    copies = [backend.copy(template) for _ in points]
    outcomes = kill_at(list(zip(points, copies, strict=True)))
    assert outcomes == [None] * len(points)  # each child was killed where asked
    for n, url in zip(points, copies, strict=True):
        assert schema(url) in (before, clean), f"{start}: half a migration after a kill at {n}"
        Ledger(url).close()  # the next start
        assert schema(url) == clean, f"{start}, killed at statement {n} of {total}"
        engine = create_engine(url)
        try:
            assert stamped(engine) == head()
        finally:
            engine.dispose()
        after = rows(url)
        # A user's fingerprint is derived from their stored record: 0004 computed it for the
        # users mirrored before it, 0011 again in the form of today (compared below).
        lost = [(name, row) for name, kept in before_rows.items() for row in kept
                if _kept(name, row) not in [_kept(name, {k: r[k] for k in row})
                                            for r in after[name]]]
        assert lost == [], f"{start}: rows lost or changed by the migration killed at {n}"
        if before_rows.get("mirror_users"):
            assert [r["fingerprint"] for r in after["mirror_users"]] == [PERSON.fingerprint()]
    return len(points)


def _kept(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """What of ``row`` a migration must keep as it was (a user's fingerprint is derived)."""
    return {k: v for k, v in row.items() if table != "mirror_users" or k != "fingerprint"}


@pytest.fixture(name="backend", params=["sqlite", "postgresql"])
def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    pg = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return Backend(request.param, tmp_path, pg)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_migration_killed_anywhere_completes_on_the_next_start(backend: Backend) -> None:
    """Kill points over every migration path (all of them under TORTURE=full)."""
    clean_url = backend.new()
    Ledger(clean_url).close()
    clean = schema(clean_url)
    tried = {start: sweep(backend, start, clean) for start in starts()}
    report("migration-kill", backend=backend.kind, kill_points=tried, total=sum(tried.values()))
