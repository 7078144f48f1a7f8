"""The ledger on a real PostgreSQL server, migrations, leader election and two-replica failover.

The server is started by the suite (tests/pg.py); a missing PostgreSQL fails, never skips.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from orgsync.daemon.leader import FileLeaderLock, PostgresLeaderLock, leader_lock
from orgsync.group_mirror import member_digest, memberships
from orgsync.ledger import Ledger
from orgsync.migrations import (
    BASELINE,
    alembic_config,
    current,
    head,
    newest,
    pending_changes,
    stamped,
)
from orgsync.model import Employee, Snapshot
from orgsync.runner import make_plan, run_once
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, next_week, write_csv
from orgsync.tables import MirrorGroupMemberRow, MirrorGroupRow
from tests.daemon_proc import (
    TOKEN,
    DaemonProcess,
    InProcessDaemon,
    config_data,
    daemon_config,
    wait_for,
    write_config,
)
from tests.pg import PostgresServer, _pg_url, _postgres, free_port  # noqa: F401 - fixtures
from tests.sandbox_run import with_client

pytestmark = pytest.mark.slow

SMALL = {"employees": 24, "departments": 6, "levels": 3}


PERSON = Employee(key="E1", name="张三", department_keys=("D1",), email="san.zhang@example.com")


def small_org() -> Snapshot:
    """The test company."""
    return generate_org(employees=SMALL["employees"], departments=SMALL["departments"],
                        levels=SMALL["levels"])


@pytest.fixture(name="fast_sandbox")
def _fast_sandbox(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=10.0)
    return sandbox


class TestMigrations:
    def test_fingerprints_stored_before_their_marshal_form_are_stored_again(
            self, tmp_path: Path) -> None:
        """0011 stores each mirrored user's fingerprint as Employee.fingerprint computes it
        now: a plan then takes the unchanged people as unchanged without decoding them."""
        url = f"sqlite:///{tmp_path / 'old.db'}"
        people = [Employee(key="E1", name="张三", department_keys=("D1",), city="北京"),
                  Employee(key="E2", name="李四", department_keys=("D1",),
                           profile={"gender": 2})]
        engine = create_engine(url)
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0010")
            for e in people:  # the text form's fingerprint: no longer what a plan computes
                conn.execute(text(
                    "INSERT INTO mirror_users (key, feishu_id, fields, lifecycle, updated_at, "
                    "fingerprint) VALUES (:k, :f, :x, 'active', '2026-01-01 00:00:00', 7)"),
                    {"k": e.key, "f": f"u{e.key}", "x": json.dumps(e.fields())})
            conn.execute(text(
                "INSERT INTO mirror_users (key, feishu_id, fields, lifecycle, updated_at, "
                "fingerprint) VALUES ('E3', 'uE3', '[]', 'active', '2026-01-01 00:00:00', 7)"))
        engine.dispose()
        ledger = Ledger(url)
        try:
            with ledger.engine.connect() as c:
                stored = dict(c.execute(text("SELECT key, fingerprint FROM mirror_users")).all())
            assert stored == {e.key: e.fingerprint() for e in people} | {"E3": None}
        finally:
            ledger.close()

    @pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
    def test_migrations_build_exactly_the_models_schema(self, backend: str, pg_url: str,
                                                        tmp_path: Path) -> None:
        """After upgrade the schema equals the SQLModel tables: a model change needs a revision."""
        url = pg_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'l.db'}"
        ledger = Ledger(url)
        try:
            with ledger.engine.connect() as conn:
                assert current(conn) == head()
            # the start-up check reads the same revision without importing Alembic
            assert newest() == head()
            assert stamped(ledger.engine) == head()
            assert pending_changes(ledger.engine) == [], (
                "the ledger models and the migrations differ: add a revision with "
                "`python -m orgsync.migrations revision \"what changed\"`")
        finally:
            ledger.close()

    def test_a_ledger_from_before_migrations_is_adopted(self, tmp_path: Path) -> None:
        """A SQLite ledger made by create_all (no alembic_version) is stamped, upgraded, kept."""
        url = f"sqlite:///{tmp_path / 'old.db'}"
        engine = create_engine(url)
        with engine.begin() as conn:  # the baseline schema, without Alembic's own table
            command.upgrade(alembic_config(conn), BASELINE)
            conn.execute(text("DROP TABLE alembic_version"))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('last_good_employees', '7')"))
            conn.execute(text(
                "INSERT INTO mirror_users (key, feishu_id, fields, lifecycle, updated_at) "
                "VALUES ('E1', 'u1', :f, 'active', '2026-01-01 00:00:00')"),
                {"f": json.dumps(PERSON.fields())})
        engine.dispose()
        ledger = Ledger(url)
        try:
            assert ledger.get_meta("last_good_employees") == "7"
            # 0004 fingerprinted the rows already mirrored
            with ledger.engine.connect() as conn:
                assert conn.execute(text("SELECT fingerprint FROM mirror_users")).scalar() == \
                    PERSON.fingerprint()
            assert ledger.load_state(known={"E1": PERSON}).users["E1"].record is PERSON
            with ledger.engine.connect() as conn:
                assert current(conn) == head()
                assert set(inspect(conn).get_table_names()) >= {
                    "alembic_version", *SQLModel.metadata.tables}
            assert pending_changes(ledger.engine) == []
        finally:
            ledger.close()
        assert BASELINE == "0001"

    def test_groups_mirrored_before_digests_get_theirs(self, tmp_path: Path) -> None:
        """0009 digests the members of groups already mirrored (a plan compares digests)."""
        url = f"sqlite:///{tmp_path / 'old.db'}"
        engine = create_engine(url)
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0007")
            conn.execute(text("INSERT INTO mirror_groups (key, feishu_id, name, updated_at) "
                              "VALUES ('g', 'g1', 'G', '2026-01-01 00:00:00'), "
                              "('empty', 'g2', 'E', '2026-01-01 00:00:00')"))
            conn.execute(text("INSERT INTO mirror_group_members (group_key, user_key) "
                              "VALUES ('g', 'E1'), ('g', 'E2')"))
        engine.dispose()
        ledger = Ledger(url)
        try:
            groups = ledger.load_groups()
            assert groups["g"].members == {"E1", "E2"}
            assert groups["g"].digest == member_digest({"E2", "E1"}) != member_digest({"E1"})
            assert groups["empty"].digest == member_digest(()) != ""
        finally:
            ledger.close()

    @pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
    def test_four_openers_of_a_new_ledger_at_once_all_succeed(
            self, backend: str, pg_url: str, tmp_path: Path) -> None:
        """The migration lock serialises first starts: no 'relation already exists' race
        (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite)."""
        url = pg_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'l.db'}"
        errors: list[BaseException] = []
        ledgers: list[Ledger] = []

        def open_one() -> None:
            try:
                ledgers.append(Ledger(url))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for ledger in ledgers:
            ledger.close()
        assert errors == []
        assert len(ledgers) == 4

    def test_a_wrong_password_is_not_echoed(self, postgres: PostgresServer) -> None:
        """A ledger that cannot be opened says so without the URL's password."""
        url = f"postgresql+psycopg://nobody:hunter2-secret@127.0.0.1:{postgres.port}/nope"
        with pytest.raises(Exception, match="cannot open the ledger") as err:
            Ledger(url)
        assert "hunter2-secret" not in str(err.value)


class TestLedgerOnPostgres:
    def test_apply_change_and_resync_work_on_postgres(self, fast_sandbox: SandboxServer,
                                                      pg_url: str, tmp_path: Path) -> None:
        """The same runs as on SQLite: initial sync, a week of changes, then nothing left."""
        org = small_org()
        write_csv(org, tmp_path / "src")
        cfg = daemon_config(config_data(fast_sandbox, tmp_path / "src", pg_url), tmp_path)
        ledger = Ledger(cfg.ledger.url)
        try:
            first = asyncio.run(run_once(cfg, ledger, apply=True))
            assert first.exit_code == 0
            assert first.result is not None
            assert first.result.count("done") == len(first.plan.operations)
            write_csv(next_week(org), tmp_path / "src")
            second = asyncio.run(run_once(cfg, ledger, apply=True))
            assert second.exit_code == 0
            assert not second.plan.empty
            resync = asyncio.run(run_once(cfg, ledger, apply=True, full=True))
            assert resync.exit_code == 0
            assert with_client(cfg, lambda c: make_plan(cfg, ledger, c, full=True,
                                                        rebuild_mirror=False)).plan.empty
            assert [r.mode for r in ledger.runs()] == ["resync", "apply", "apply"]
            assert all(r.started_at.tzinfo is not None for r in ledger.runs())
        finally:
            ledger.close()

    @pytest.mark.parametrize("backend", ["postgresql", "sqlite", "sqlite-named"])
    def test_group_memberships_are_read_in_each_drivers_placeholders(
            self, backend: str, pg_url: str, tmp_path: Path) -> None:
        """A plan's changed people's memberships: positional placeholders straight to the
        driver (psycopg's %s, SQLite's ?), named ones bound by SQLAlchemy."""
        url = pg_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'l.db'}"
        ledger = Ledger(url)
        members = {"big": {f"E{n:04d}" for n in range(1200)}, "small": {"E0001", "E0999"}}
        named = create_engine(url, paramstyle="named")
        try:
            with ledger.engine.begin() as c:
                c.execute(MirrorGroupRow.__table__.insert(),  # type: ignore[attr-defined]
                          [{"key": k, "feishu_id": k, "name": k, "digest": "",
                            "updated_at": ledger.now()} for k in members])
                c.execute(MirrorGroupMemberRow.__table__.insert(),  # type: ignore[attr-defined]
                          [{"group_key": k, "user_key": u} for k, v in members.items() for u in v])
            asked = [f"E{n:04d}" for n in range(1, 1200, 2)] + ["E9999"]  # over one IN (…)
            with (named if backend == "sqlite-named" else ledger.engine).connect() as c:
                assert c.dialect.paramstyle == {"postgresql": "pyformat", "sqlite": "qmark",
                                                "sqlite-named": "named"}[backend]
                assert memberships(c, asked) == {"big": {f"E{n:04d}" for n in range(1, 1200, 2)},
                                                 "small": {"E0001", "E0999"}}
                assert memberships(c, []) == {}
        finally:
            named.dispose()
            ledger.close()


class TestLeaderLock:
    def test_postgres_lock_has_one_holder_and_passes_on_release(self, pg_url: str) -> None:
        """Only one holder; release lets the other take it."""
        a, b = PostgresLeaderLock(pg_url, "t"), PostgresLeaderLock(pg_url, "t")
        other = PostgresLeaderLock(pg_url, "another-deployment")
        try:
            assert a.try_acquire() is True
            assert b.try_acquire() is False
            assert other.try_acquire() is True  # a different lock name is independent
            assert (a.still_held(), b.still_held()) == (True, False)
            a.release()
            assert b.try_acquire() is True
            assert b.still_held() is True
        finally:
            for lock in (a, b, other):
                lock.release()

    def test_postgres_lock_is_lost_with_its_connection(self, pg_url: str) -> None:
        """A leader whose session is killed sees still_held() False; the standby gets the lock."""
        a, b = PostgresLeaderLock(pg_url, "t"), PostgresLeaderLock(pg_url, "t")
        engine = create_engine(pg_url)
        try:
            assert a.try_acquire() is True
            with engine.begin() as conn:
                killed = conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'orgsync-leader'")).scalars().all()
            assert killed == [True]
            assert a.still_held() is False
            assert b.try_acquire() is True
        finally:
            a.release()
            b.release()
            engine.dispose()

    def test_sqlite_ledger_uses_an_owner_only_file_lock(self, tmp_path: Path) -> None:
        """Two locks on one SQLite ledger: one holder; the lock file is 0600."""
        url = f"sqlite:///{tmp_path / 'l.db'}"
        a, b = leader_lock(url), leader_lock(url)
        assert isinstance(a, FileLeaderLock)
        try:
            assert a.try_acquire() is True
            assert b.try_acquire() is False
            assert (a.path.stat().st_mode & 0o777) == 0o600
            a.release()
            assert b.try_acquire() is True
        finally:
            a.release()
            b.release()


class TestFailover:
    def test_standby_takes_over_when_the_leader_dies(self, fast_sandbox: SandboxServer,
                                                     pg_url: str, tmp_path: Path) -> None:
        """Two daemons on one PostgreSQL ledger: one syncs; kill it and the other takes over."""
        org = small_org()
        write_csv(org, tmp_path / "src")
        ports = free_port(), free_port()
        procs: list[DaemonProcess] = []
        try:
            for i, port in enumerate(ports):
                data = config_data(fast_sandbox, tmp_path / "src", pg_url, port=port,
                                   daemon={"interval": "1s", "run_on_start": True,
                                           "leader_poll": "0.5s"})
                cfg = write_config(tmp_path / f"replica{i}.yaml", data)
                procs.append(DaemonProcess(cfg, port, tmp_path / f"replica{i}.log"))
                procs[-1].wait_serving()
                if i == 0:
                    wait_for(lambda: procs[0].readyz()[0] == 200, 30, "the leader's first run")
            leader, standby = procs
            wait_for(lambda: standby.readyz()[1].get("role") == "standby", 10, "the standby")
            assert standby.readyz()[0] == 503
            assert standby.post("/resync", token=TOKEN).status_code == 503
            leader_runs = len(leader.runs()["runs"])
            assert leader_runs >= 1

            killed_at = time.monotonic()
            leader.proc.send_signal(signal.SIGKILL)
            leader.wait_exit(10)
            wait_for(lambda: standby.readyz()[1].get("role") == "leader", 15, "the takeover")
            took_over = time.monotonic() - killed_at
            write_csv(next_week(org), tmp_path / "src")
            wait_for(lambda: any(r["summary"].get("ops_done") for r in standby.runs()["runs"]
                                 if r["status"] == "ok" and r["mode"] == "apply"), 30,
                     "the new leader applying a change")
            assert took_over < 0.5 + 3.0
            ledger = Ledger(pg_url)
            try:
                statuses = [r.status for r in ledger.runs(limit=200)]
            finally:
                ledger.close()
            # the killed leader's run, if one was going, was closed as crashed by the next run
            assert "running" not in statuses[1:]
            print(f"\nfailover: standby led {took_over:.2f}s after the leader was killed")
        finally:
            for p in procs:
                p.stop()

    def test_a_leader_that_loses_its_session_steps_down_then_leads_again(
            self, fast_sandbox: SandboxServer, pg_url: str, tmp_path: Path) -> None:
        """Its lock session killed, the leader stops scheduling, re-takes the free lock, runs."""
        write_csv(small_org(), tmp_path / "src")
        data = config_data(fast_sandbox, tmp_path / "src", pg_url,
                           daemon={"run_on_start": True, "leader_poll": "0.2s"})
        d = InProcessDaemon(daemon_config(data, tmp_path))
        engine = create_engine(pg_url)
        try:
            wait_for(lambda: len(d.daemon.history) == 1, 30, "the first run")
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = 'orgsync-leader'"))
            # re-elected, it schedules afresh: run_on_start gives a second run
            wait_for(lambda: len(d.daemon.history) == 2, 15, "a run after re-election")
            assert d.daemon.is_leader
            assert [r.outcome for r in d.daemon.history] == ["ok", "ok"]
        finally:
            engine.dispose()
            assert d.stop() == 0
