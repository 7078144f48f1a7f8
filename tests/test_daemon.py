"""``orgsync daemon`` as a real process on a compressed schedule, against the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orgsync.config import Config, config_from_dict, cron_fields, load_config
from orgsync.daemon.service import CANCEL_WAIT
from orgsync.errors import EXIT_BUSY, ConfigError
from orgsync.feishu import FeishuClient
from orgsync.feishu.reader import read_directory
from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.options import parse_duration
from orgsync.runner import make_plan
from orgsync.sandbox import SandboxServer
from orgsync.state import DirectoryState
from orgsync.synth import generate_org, next_week, write_csv
from tests.daemon_proc import (
    ROOT,
    TOKEN,
    DaemonProcess,
    InProcessDaemon,
    config_data,
    daemon_config,
    metric,
    wait_for,
    write_config,
)
from tests.pg import free_port
from tests.sandbox_run import with_client

SMALL = {"employees": 24, "departments": 6, "levels": 3}


def small_org() -> Snapshot:
    """The test company."""
    return generate_org(employees=SMALL["employees"], departments=SMALL["departments"],
                        levels=SMALL["levels"])


@pytest.fixture(name="fast_sandbox")
def _fast_sandbox(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=10.0)
    return sandbox


def feishu_now(sb: SandboxServer, tmp: Path) -> DirectoryState:
    """What the sandbox holds, read through the API."""
    cfg = daemon_config(config_data(sb, tmp, "sqlite://"), tmp)

    async def go() -> DirectoryState:
        async with FeishuClient(cfg.feishu) as client:
            return await read_directory(client)
    return asyncio.run(go())


def in_step(config: Config, ledger: Ledger) -> bool:
    """Feishu, read live, holds what the source says: a full plan has nothing to do
    (what ``orgsync check`` computes, without recording a run)."""
    return with_client(config, lambda c: make_plan(config, ledger, c, full=True,
                                                   rebuild_mirror=False)).plan.empty


def runs_since(d: DaemonProcess, mode: str, since: str) -> list[dict[str, Any]]:
    """Finished ledger runs of ``mode`` that started at or after ``since`` (ISO seconds)."""
    return [r for r in d.runs()["runs"] if r["mode"] == mode and r["status"] != "running"
            and str(r["started_at"]) >= since]


def iso_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


class TestSchedule:
    def test_incremental_and_full_runs_pick_up_changes_and_repair_drift(
            self, fast_sandbox: SandboxServer, tmp_path: Path) -> None:
        """Interval syncs apply source changes; the resync cron repairs drift; admin shows it."""
        sb = fast_sandbox
        org = small_org()
        write_csv(org, tmp_path / "src")
        port = free_port()
        data = config_data(sb, tmp_path / "src", f"sqlite:///{tmp_path / 'ledger.db'}",
                           port=port, token="${ORGSYNC_TEST_ADMIN_TOKEN}",
                           daemon={"interval": "1s", "full_resync_cron": "*/4 * * * * *",
                                   "jitter": "0.3s", "run_on_start": True})
        cfg = write_config(tmp_path / "orgsync.yaml", data)
        config = daemon_config(data, tmp_path, env={"ORGSYNC_TEST_ADMIN_TOKEN": TOKEN})
        ledger = Ledger(config.ledger.url)
        d = DaemonProcess(cfg, port, tmp_path / "daemon.log",
                          env={"ORGSYNC_TEST_ADMIN_TOKEN": TOKEN})
        try:
            d.wait_serving()
            wait_for(lambda: d.readyz()[0] == 200, 30, "the first run")
            assert in_step(config, ledger)

            # a source change is picked up by the next incremental run (changed right after a
            # resync, so that the next run is an incremental one: they come every second,
            # resyncs every four)
            org2 = next_week(org)
            since = iso_now()
            wait_for(lambda: runs_since(d, "resync", since), 10, "a scheduled resync")
            changed_at = iso_now()
            write_csv(org2, tmp_path / "src")
            written = iso_now()
            wait_for(lambda: any(r["summary"].get("ops_done")
                                 for r in runs_since(d, "apply", changed_at)), 30,
                     "an incremental run applying the change")
            # A run that read the two files while they were being written applied what it
            # saw; one that started after the write (a later second) applies the rest.
            wait_for(lambda: any(str(r["started_at"]) > written
                                 for r in runs_since(d, "apply", written)), 30,
                     "an incremental run of the whole change")
            wait_for(lambda: d.runs()["current"] is None, 30, "that run to end")
            assert in_step(config, ledger)

            # drift made behind orgsync's back: incremental runs cannot see it, a resync repairs it
            person = sorted(org2.active_employees())[1]
            dept = sorted(org2.departments)[2]

            async def tamper() -> None:
                async with FeishuClient(config.feishu) as c:
                    await c.patch_user(person, {"job_title": "changed by hand"})
                    await c.patch_department(dept, {"name": "renamed by hand"})
            drifted_at = iso_now()
            asyncio.run(tamper())
            assert not in_step(config, ledger)
            wait_for(lambda: [r for r in runs_since(d, "resync", drifted_at)
                              if r["summary"].get("ops_done")], 30,
                     "a scheduled resync repairing the drift")
            wait_for(lambda: d.runs()["current"] is None, 30, "that run to end")
            assert in_step(config, ledger)

            # a resync over HTTP: refused without the token, run with it
            assert d.post("/resync").status_code == 401
            reply = d.post("/resync?wait=1", token=TOKEN)
            assert reply.status_code == 200
            assert reply.json()["run"]["outcome"] == "ok"

            m = d.metrics()
            assert metric(m, "orgsync_runs_total", kind="incremental", outcome="ok") >= 3
            assert metric(m, "orgsync_runs_total", kind="full", outcome="ok") >= 2
            assert metric(m, "orgsync_runs_total", kind="incremental", outcome="failed") == 0
            assert metric(m, "orgsync_operations_total", kind="user.create", status="done") >= \
                SMALL["employees"]
            assert metric(m, "orgsync_operations_total", kind="user.update", status="done") >= 1
            assert metric(m, "orgsync_operations_total", kind="department.update",
                          status="done") >= 1
            assert metric(m, "orgsync_last_success_timestamp_seconds") >= time.time() - 30
            assert metric(m, "orgsync_leader") == 1.0
            modes = {r["mode"] for r in d.runs()["runs"]}
            assert modes == {"apply", "resync"}
            assert d.get("/runs").status_code == 401

            d.signal(signal.SIGTERM)
            assert d.wait_exit(15) == 0
        finally:
            d.stop()
            ledger.close()
        events = d.log_events()
        assert {"daemon.started", "leader.elected", "run.finished", "daemon.stopped"} <= \
            {e.get("event") for e in events}
        assert all(e.get("run_id") for e in events if e.get("event") == "plan.ready")
        log_text = d.log.read_text()
        assert TOKEN not in log_text
        assert sb.config.app_secret not in log_text

    def test_sigterm_mid_run_exits_0_and_the_next_run_completes(
            self, fast_sandbox: SandboxServer, tmp_path: Path) -> None:
        """SIGTERM during a slow apply: exit 0 within the bound, journal settled, next run finishes."""
        sb = fast_sandbox
        org = small_org()
        write_csv(org, tmp_path / "src")
        ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
        port = free_port()
        data = config_data(sb, tmp_path / "src", ledger_url, port=port,
                           daemon={"run_on_start": True, "shutdown_grace": "0.5s"},
                           sync={"concurrency": 1})
        cfg = write_config(tmp_path / "orgsync.yaml", data)
        sb.configure(latency_ms=100)
        d = DaemonProcess(cfg, port, tmp_path / "daemon.log")
        ledger = Ledger(ledger_url)
        try:
            d.wait_serving()
            wait_for(lambda: len(ledger.journal()) >= 5, 30, "the run to be under way")
            started = time.monotonic()
            d.signal(signal.SIGTERM)
            assert d.wait_exit(0.5 + CANCEL_WAIT + 5) == 0
            elapsed = time.monotonic() - started
        finally:
            d.stop()
        assert elapsed < 0.5 + CANCEL_WAIT
        events = [e.get("event") for e in d.log_events()]
        assert "daemon.cancelling_run" in events
        assert events[-1] == "daemon.stopped"

        (run,) = ledger.runs()
        assert run.status != "running"
        journal = ledger.journal(run.id)
        statuses = {j.status for j in journal}
        assert statuses <= {"done", "failed", "skipped", "started"}
        assert 0 < sum(j.status == "done" for j in journal) < 60  # it really stopped mid-run
        assert all(j.client_token for j in journal)  # in-flight calls are journaled with tokens

        sb.configure(latency_ms=0)
        d2 = DaemonProcess(cfg, port, tmp_path / "daemon2.log")
        try:
            d2.wait_serving()
            wait_for(lambda: d2.readyz()[0] == 200, 30, "the next run")
        finally:
            d2.stop()
        assert in_step(daemon_config(data, tmp_path), ledger)
        assert len(feishu_now(sb, tmp_path).users) == len(org.active_employees())
        ledger.close()


class TestDaemonConfig:
    def test_durations_accept_seconds_and_units(self) -> None:
        """90, "30s", "15m", "1h30m", "500ms" and "1d" are seconds."""
        assert [parse_duration(v) for v in (90, "30s", "15m", "1h30m", "500ms", "1d", "2.5")] == \
            [90.0, 30.0, 900.0, 5400.0, 0.5, 86400.0, 2.5]
        for bad in ("soon", "5 minutes", "", "1h-5m", True):
            with pytest.raises(ValueError, match="not a duration"):
                parse_duration(bad)

    def test_cron_weekdays_mean_what_crontab_means(self) -> None:
        """0 and 7 are Sunday and 1-5 is Monday to Friday (APScheduler 3 counts from Monday)."""
        assert cron_fields("0 3 * * 1-5")["day_of_week"] == "mon,tue,wed,thu,fri"
        assert cron_fields("0 3 * * 0")["day_of_week"] == "sun"
        assert cron_fields("0 3 * * 7")["day_of_week"] == "sun"
        assert cron_fields("0 3 * * */2")["day_of_week"] == "sun,tue,thu,sat"
        assert cron_fields("0 3 * * sat,sun")["day_of_week"] == "sat,sun"
        assert cron_fields("*/5 * * * * *")["second"] == "*/5"

    def _cfg(self, tmp_path: Path, daemon: dict[str, object] | None = None,
             admin: dict[str, object] | None = None) -> object:
        data: dict[str, object] = {
            "version": 1, "feishu": {"app_id": "a", "app_secret": "s"},
            "source": {"type": "csv"}}
        if daemon is not None:
            data["daemon"] = daemon
        if admin is not None:
            data["admin"] = admin
        return config_from_dict(data, base_dir=tmp_path)

    def test_defaults(self, tmp_path: Path) -> None:
        """Every 15 minutes, a full resync at 03:00, admin on 127.0.0.1:8791 without a token."""
        cfg = self._cfg(tmp_path)
        assert cfg.daemon.interval == 900.0  # type: ignore[attr-defined]
        assert cfg.daemon.full_resync_cron == "0 3 * * *"  # type: ignore[attr-defined]
        assert cfg.daemon.max_age == 2700.0  # type: ignore[attr-defined]
        assert (cfg.admin.bind, cfg.admin.port, cfg.admin.token) == (  # type: ignore[attr-defined]
            "127.0.0.1", 8791, None)

    @pytest.mark.parametrize(("daemon", "admin", "message"), [
        ({"interval": "5m", "cron": "* * * * *"}, None,
         "daemon.cron: both 'interval' and 'cron' are set"),
        ({"cron": "61 * * * *"}, None, "daemon.cron: '61 * * * *' is not a valid cron"),
        ({"full_resync_cron": "* * *"}, None, "expected 5 or 6 fields, got 3"),
        ({"interval": "fast"}, None, "daemon.interval: expected a duration, got 'fast'"),
        ({"interval": "0.5s"}, None, "daemon.interval: 0.5s is too short"),
        ({"timezone": "Mars/Olympus"}, None, "daemon.timezone: unknown time zone"),
        ({"intervall": "5m"}, None, "daemon.intervall: unknown key (did you mean 'interval'?)"),
        (None, {"token": "short"}, "admin.token: the admin token is shorter than 16"),
        (None, {"port": 70000}, "admin.port: 70000 is out of range"),
        (None, {"url": "orgsync:8791"}, "admin.url: 'orgsync:8791' is not an http(s) URL"),
    ])
    def test_bad_values_name_the_key(self, tmp_path: Path, daemon: dict[str, object] | None,
                                     admin: dict[str, object] | None, message: str) -> None:
        """Every daemon/admin config error names the dotted key and what is wrong."""
        with pytest.raises(ConfigError) as err:
            self._cfg(tmp_path, daemon, admin)
        assert message in str(err.value)

    def test_admin_token_from_a_file_is_never_in_the_repr(self, tmp_path: Path) -> None:
        """admin.token_file is read and stripped; the token stays out of repr()."""
        (tmp_path / "tok").write_text("  a-long-enough-admin-token  \n")
        cfg = self._cfg(tmp_path, admin={"token_file": "tok", "url": "http://orgsync:8791/"})
        assert cfg.admin.token == "a-long-enough-admin-token"  # type: ignore[attr-defined]
        assert cfg.admin.url == "http://orgsync:8791"  # type: ignore[attr-defined]
        assert "a-long-enough" not in repr(cfg)
        assert json.dumps(str(cfg)).count("a-long-enough") == 0


def orgsync(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``orgsync`` command line, as a process."""
    return subprocess.run([sys.executable, "-m", "orgsync.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})


class TestResyncCommand:
    def _config(self, sb: SandboxServer, tmp_path: Path, **admin: object) -> Path:
        write_csv(small_org(), tmp_path / "src")
        data = config_data(sb, tmp_path / "src", f"sqlite:///{tmp_path / 'ledger.db'}")
        data["admin"].update(admin)
        return write_config(tmp_path / "orgsync.yaml", data)

    def test_resync_runs_on_the_daemon_named_by_admin_url(self, fast_sandbox: SandboxServer,
                                                          tmp_path: Path) -> None:
        """With admin.url set, `orgsync resync` asks that daemon and reports its run."""
        path = self._config(fast_sandbox, tmp_path)
        d = InProcessDaemon(load_config(path))
        try:
            wait_for(lambda: d.daemon.is_leader, 10, "leadership")
            self._config(fast_sandbox, tmp_path, url=d.base)
            result = orgsync("resync", "-c", str(path))
            assert result.returncode == 0, (result.stdout + result.stderr)
            assert "on the daemon: ok" in (result.stdout + result.stderr)
            assert [(r.kind, r.trigger, r.outcome) for r in d.daemon.history] == \
                [("full", "http", "ok")]
        finally:
            assert d.stop() == 0

    def test_local_resync_is_refused_while_a_daemon_run_writes(self, fast_sandbox: SandboxServer,
                                                              tmp_path: Path) -> None:
        """Without admin.url, a local resync never runs beside a daemon's run on the same
        ledger: refused at once (exit 7), naming the run; nothing recorded for it."""
        path = self._config(fast_sandbox, tmp_path)
        fast_sandbox.configure(latency_ms=1000)  # the daemon's run stays open meanwhile
        cfg = load_config(path)
        d = InProcessDaemon(replace(cfg, daemon=replace(cfg.daemon, run_on_start=True)))
        try:
            wait_for(lambda: d.daemon.ledger.fence is not None, 10, "the daemon's run")
            result = orgsync("resync", "-c", str(path), "--yes")
            assert result.returncode == EXIT_BUSY
            assert f"'daemon incremental run (schedule)' (pid {os.getpid()} on host " in \
                (result.stdout + result.stderr)
        finally:
            fast_sandbox.configure(latency_ms=0)
            assert d.stop() == 0
        ledger = Ledger(cfg.ledger.url)
        try:
            assert [(r.mode, r.status) for r in ledger.runs()] == [("apply", "ok")]
        finally:
            ledger.close()

    def test_local_resync_applies_and_records_a_resync(self, fast_sandbox: SandboxServer,
                                                       tmp_path: Path) -> None:
        """With no daemon, `orgsync resync --yes` runs here and is recorded as a resync."""
        path = self._config(fast_sandbox, tmp_path)
        result = orgsync("resync", "-c", str(path), "--yes")
        assert result.returncode == 0, (result.stdout + result.stderr)
        ledger = Ledger(load_config(path).ledger.url)
        try:
            assert [(r.mode, r.status) for r in ledger.runs()] == [("resync", "ok")]
        finally:
            ledger.close()
