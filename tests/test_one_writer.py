"""One writer per ledger (orgsync.writer), with real processes, the sandbox and PostgreSQL.

The sandbox's latency knob holds a run open (every call takes that long) for as long
as a test needs it to write; setting it back to 0 lets the run finish.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from orgsync.config import Config
from orgsync.errors import EXIT_BUSY
from orgsync.feishu import FeishuClient
from orgsync.ledger import WRITER_KEY, Ledger
from orgsync.runner import make_plan
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from orgsync.writer import Holder
from tests.daemon_proc import (
    ROOT,
    TOKEN,
    DaemonProcess,
    InProcessDaemon,
    config_data,
    daemon_config,
    wait_for,
    write_config,
)
from tests.pg import _pg_url, _postgres, free_port  # noqa: F401 - fixtures
from tests.sandbox_run import read_back, with_client

pytestmark = pytest.mark.slow

# Six levels: a run creates a department per level, then people manager by manager, one call
# (SLOW_MS) at a time along each chain, so it stays open for the length of these tests.
ORG = generate_org(employees=24, departments=6, levels=6)
SLOW_MS = 1000  # per Feishu call while a run must stay open
HOLD_MS = 120_000  # per call while a run must stay open until a test lets it go


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    sandbox.configure(rate_scale=10.0, latency_ms=SLOW_MS)
    yield sandbox
    # A writer these tests kill leaves calls in flight that the sandbox still answers (as
    # Feishu would): let them land before the next test resets the tenant, not after.
    sandbox.configure(latency_ms=0)  # releases the calls a test held and did not let go
    time.sleep(SLOW_MS / 1000 + 1)


@pytest.fixture(name="url", params=["sqlite", "postgresql"])
def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def setup(sb: SandboxServer, tmp_path: Path, url: str, **sections: Any) -> tuple[Path, Config]:
    """The test company as CSV, and a config file for it (path, and loaded); the ledger
    exists (two processes creating one at once race in its migrations: not this test's
    subject)."""
    write_csv(ORG, tmp_path / "src")
    Ledger(url).close()
    data = config_data(sb, tmp_path / "src", url, **sections)
    return write_config(tmp_path / "orgsync.yaml", data), daemon_config(data, tmp_path)


def orgsync(*args: str) -> subprocess.Popen[str]:
    """``orgsync ARGS`` as a process."""
    return subprocess.Popen([sys.executable, "-m", "orgsync.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})


def finished(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    """Exit code and output (stdout + stderr) of ``proc``."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def holder(url: str) -> Holder | None:
    """The writer lock's holder record in the ledger at ``url``."""
    ledger = Ledger(url)
    try:
        return Holder.from_json(ledger.get_meta(WRITER_KEY))
    finally:
        ledger.close()


def writing(url: str, command: str) -> Holder | None:
    """The holder record while a run of ``command`` (a prefix) holds the lock and has
    journaled a write, else None."""
    h = holder(url)
    if h is None or h.released or not h.command.startswith(command):
        return None
    ledger = Ledger(url)
    try:
        return h if ledger.journal() else None
    finally:
        ledger.close()


def assert_settled(sb: SandboxServer, cfg: Config) -> Ledger:
    """Feishu holds the source exactly, once each, and no write failed; returns the ledger
    (the caller closes it)."""
    people = read_back(cfg).users
    assert sorted(people) == sorted(ORG.employees)  # nobody created twice
    assert len([u for u in sb.tenant.users.values()]) == len(ORG.employees)
    ledger = Ledger(cfg.ledger.url)
    assert with_client(cfg, lambda c: make_plan(cfg, ledger, c, full=True,
                                                rebuild_mirror=False)).plan.empty
    failed = [(r.kind, r.target_key, r.code) for r in ledger.journal() if r.status == "failed"]
    assert failed == []
    return ledger


def test_two_applies_started_together_one_runs_the_other_is_refused_at_once(
        sb: SandboxServer, url: str, tmp_path: Path) -> None:
    """Exactly one applies; the other exits 7 while the first still runs, naming it."""
    path, cfg = setup(sb, tmp_path, url)
    procs = [orgsync("apply", "--yes", "-c", str(path)) for _ in range(2)]
    try:
        loser = wait_for(lambda: next((p for p in procs if p.poll() is not None), None), 30,
                         "one apply to end")
        [winner] = [p for p in procs if p is not loser]
        assert winner.poll() is None  # refused at once: the other is still writing
        code, output = finished(loser)
        assert code == EXIT_BUSY, output
        assert f"'apply' (pid {winner.pid} on host {socket.gethostname()}, since " in output
        sb.configure(latency_ms=0)
        code, output = finished(winner)
        assert code == 0, output
    finally:
        for p in procs:
            p.kill()
            p.wait()
    ledger = assert_settled(sb, cfg)
    try:
        assert [(r.mode, r.status) for r in ledger.runs()] == [("apply", "ok")]
    finally:
        ledger.close()


def test_deleting_the_leader_file_lets_no_second_writer_in(sb: SandboxServer,
                                                           tmp_path: Path) -> None:
    """SQLite: a daemon's run writes; its leader lock file is deleted."""
    def delete_side_files() -> None:
        side = [p for p in tmp_path.glob("ledger.db*")
                if p.name not in ("ledger.db", "ledger.db-wal", "ledger.db-shm")]
        assert side  # the leader lock's file
        for p in side:
            p.unlink()

    second_leader_is_kept_out(sb, tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}",
                              delete_side_files)


def test_terminating_the_leader_session_lets_no_second_writer_in(
        sb: SandboxServer, pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL: a daemon's run writes; its leader lock's session is terminated."""
    def terminate() -> None:
        engine = create_engine(pg_url)
        try:
            with engine.begin() as conn:
                killed = conn.execute(text(  # the leader's, not the standby's
                    "SELECT pg_terminate_backend(a.pid, 5000) FROM pg_stat_activity a "
                    "JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted "
                    "WHERE a.application_name = 'orgsync-leader'")).scalars().all()
        finally:
            engine.dispose()
        assert killed == [True]

    second_leader_is_kept_out(sb, tmp_path, pg_url, terminate)


def second_leader_is_kept_out(sb: SandboxServer, tmp_path: Path, url: str,
                              oust: Callable[[], None]) -> None:
    """A daemon's run writes; ``oust`` takes its leadership away and a standby leads: that
    leader's run is skipped and an apply refused until the first run has ended, which
    finishes its work alone."""
    path, cfg = setup(sb, tmp_path, url)
    daemons: list[DaemonProcess] = []
    try:
        for i, poll in enumerate(("2s", "0.2s")):  # the standby polls first: it takes the lead
            port = free_port()
            data = config_data(sb, tmp_path / "src", url, port=port,
                               daemon={"run_on_start": True, "leader_poll": poll})
            daemons.append(DaemonProcess(write_config(tmp_path / f"d{i}.yaml", data), port,
                                         tmp_path / f"d{i}.log"))
            daemons[-1].wait_serving()
            if i == 0:
                first = wait_for(lambda: writing(url, "daemon"), 30, "the first daemon's run")
                assert first.pid == daemons[0].proc.pid
                # Its calls are held (the sandbox re-reads the knob while they wait) until
                # the apply below has been refused, however slow this machine is.
                sb.configure(latency_ms=HOLD_MS)
        second = daemons[1]
        wait_for(lambda: second.readyz()[1].get("role") == "standby", 10, "the standby")
        oust()
        skipped = wait_for(lambda: [r for r in second.runs()["daemon"]
                                    if r["outcome"] == "skipped"], 30,
                           "the new leader's run to be skipped")
        assert f"'daemon incremental run (schedule)' (pid {first.pid} on host" in \
            skipped[0]["error"]
        code, output = finished(orgsync("apply", "--yes", "-c", str(path)))
        assert code == EXIT_BUSY, output
        assert f"'daemon incremental run (schedule)' (pid {first.pid} on host" in output
        assert holder(url) == first  # still the first daemon's run
        sb.configure(latency_ms=0)
        wait_for(lambda: (h := holder(url)) is not None and h.released, 60,
                 "the first daemon's run to end")
        assert {r["outcome"] for r in second.runs()["daemon"]} == {"skipped"}
        assert [r["outcome"] for r in daemons[0].runs()["daemon"]] == ["ok"]
    finally:
        for d in daemons:
            d.stop()
    ledger = assert_settled(sb, cfg)
    try:
        [run] = ledger.runs()
        assert (run.mode, run.status) == ("apply", "ok")
        assert {r.run_id for r in ledger.journal()} == {run.id}
    finally:
        ledger.close()


def test_the_daemon_skips_a_scheduled_run_while_an_apply_writes(sb: SandboxServer,
                                                                tmp_path: Path) -> None:
    """No alert, no run record; once the apply is done the daemon runs again."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    probe = setup(sb, tmp_path, url)[1]

    async def chat() -> str:
        async with FeishuClient(probe.feishu) as c:
            return str((await c.create_chat({"name": "orgsync-admins"}))["chat_id"])
    admin = asyncio.run(chat())
    path, cfg = setup(sb, tmp_path, url, notify={"admin_chat_id": admin},
                      daemon={"run_on_start": True})
    apply = orgsync("apply", "--yes", "-c", str(path))
    try:
        wait_for(lambda: writing(url, "apply"), 30, "the apply to write")
        code, output = finished(orgsync("status", "-c", str(path)))
        assert code == 0, output
        assert f"Writing now: 'apply' (pid {apply.pid} on host {socket.gethostname()}" in output
        d = InProcessDaemon(cfg)
        try:
            wait_for(lambda: d.daemon.history, 30, "the daemon's first run")
            [record] = d.daemon.history
            assert (record.kind, record.trigger, record.outcome, record.run_id) == \
                ("incremental", "schedule", "skipped", None)
            assert record.error is not None
            assert f"'apply' (pid {apply.pid} on host {socket.gethostname()}" in record.error
            sb.configure(latency_ms=0)
            code, output = finished(apply)
            assert code == 0, output
            reply = d.post("/resync?wait=1", token=TOKEN)
            assert reply.json()["run"]["outcome"] == "ok"
        finally:
            assert d.stop() == 0
    finally:
        apply.kill()
        apply.wait()
    texts = [json.loads(m["content"]).get("text", "") for m in sb.tenant.messages
             if m["chat_id"] == admin]
    assert texts
    assert not [t for t in texts if "FAILED" in t]
    ledger = assert_settled(sb, cfg)
    try:
        assert [(r.mode, r.status) for r in ledger.runs()] == [("resync", "ok"), ("apply", "ok")]
    finally:
        ledger.close()


def test_a_run_whose_lock_session_is_terminated_writes_nothing_more(
        sb: SandboxServer, pg_url: str, tmp_path: Path) -> None:
    """Fencing: the lock's PostgreSQL session killed mid-run, the run journals (so writes)
    nothing after the loss and fails; the next apply resumes it without duplicates."""
    path, cfg = setup(sb, tmp_path, pg_url)
    engine = create_engine(pg_url)
    apply = orgsync("apply", "--yes", "-c", str(path))
    try:
        wait_for(lambda: writing(pg_url, "apply"), 30, "the apply to write")
        with engine.begin() as conn:
            killed = conn.execute(text(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                "WHERE application_name = 'orgsync-writer'")).scalars().all()
        lost = datetime.now(UTC)
        assert killed == [True]
        code, output = finished(apply)
        assert code == 1, output
        assert "lost the ledger's writer lock" in output
    finally:
        apply.kill()
        apply.wait()
        engine.dispose()
    ledger = Ledger(pg_url)
    try:
        [run] = ledger.runs()
        assert run.status == "failed"
        assert run.error is not None
        assert "writer lock" in run.error
        started = [r.started_at if r.started_at.tzinfo else r.started_at.replace(tzinfo=UTC)
                   for r in ledger.journal(run.id)]
        after = [t for t in started if t > lost]
        # the calls in flight at the loss finished and were journaled
        assert {r.status for r in ledger.journal(run.id)} <= {"done", "failed", "skipped"}
        assert started
        assert after == []
        print(f"\nfenced: {len(started)} journal entries before the loss, 0 after")
    finally:
        ledger.close()
    sb.configure(latency_ms=0)
    code, output = finished(orgsync("apply", "--yes", "-c", str(path)))
    assert code == 0, output
    ledger = assert_settled(sb, cfg)
    try:
        assert [r.status for r in ledger.runs()] == ["ok", "failed"]
    finally:
        ledger.close()


def test_a_killed_writers_lock_is_taken_over_by_the_next(sb: SandboxServer, url: str,
                                                         tmp_path: Path) -> None:
    """SIGKILL mid-run: the kernel (SQLite) or the server (PostgreSQL) frees the lock; the
    next apply takes it at once, records itself, and finishes the work."""
    path, cfg = setup(sb, tmp_path, url)
    first = orgsync("apply", "--yes", "-c", str(path))
    try:
        dead = wait_for(lambda: writing(url, "apply"), 30, "the apply to write")
        assert dead.pid == first.pid
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
        first.wait()
    time.sleep(SLOW_MS / 1000 + 1)  # the dead writer's calls in flight land first
    sb.configure(latency_ms=0)
    second = orgsync("apply", "--yes", "-c", str(path))
    code, output = finished(second)
    assert code == 0, output
    now = holder(url)
    assert now is not None
    assert (now.pid, now.token, now.released) == (second.pid, dead.token + 1, True)
    ledger = assert_settled(sb, cfg)
    try:
        assert [r.status for r in ledger.runs()] == ["ok", "crashed"]
    finally:
        ledger.close()
