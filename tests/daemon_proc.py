"""Helpers for tests that run ``orgsync daemon``: as a real process, or in a thread.

``write_config``   a daemon config (YAML) against a sandbox, a CSV source and a ledger;
``DaemonProcess``  ``python -m orgsync.cli daemon`` as a subprocess: admin calls, metrics,
                   JSON log lines, signals;
``InProcessDaemon`` a :class:`orgsync.daemon.service.Daemon` serving in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from orgsync.config import Config, config_from_dict
from orgsync.daemon.service import Daemon
from orgsync.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-admin-token-0123456789abcdef"
T = TypeVar("T")


def config_data(sb: SandboxServer, source: Path, ledger_url: str, *, port: int = 0,
                rate_scale: float = 10.0, token: str | None = TOKEN,
                daemon: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    """A daemon config as a dict (the YAML's content)."""
    data: dict[str, Any] = {
        "version": 1,
        "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": sb.config.app_secret, "rate_scale": rate_scale},
        "source": {"type": "csv", "departments": str(source / "departments.csv"),
                   "employees": str(source / "employees.csv")},
        "ledger": {"url": ledger_url},
        "daemon": {"interval": "1h", "run_on_start": False, "full_resync_cron": None,
                   "leader_poll": "0.2s", **(daemon or {})},
        "admin": {"bind": "127.0.0.1", "port": port},
        "logging": {"format": "json", "level": "info"},
        **sections,
    }
    if token is not None:
        data["admin"]["token"] = token
    return data


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as YAML to ``path``."""
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def wait_for(check: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
            got = None
        if got:
            return got
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_error!r})" if last_error else ""))


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` from a Prometheus exposition."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


class AdminClient:
    """Calls on a daemon's admin endpoint."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, *, token: str | None = None, timeout: float = 10) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.base + path, headers=headers, timeout=timeout)

    def post(self, path: str, *, token: str | None = None, timeout: float = 60) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(self.base + path, headers=headers, timeout=timeout)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        reply = self.get("/metrics", token=TOKEN)
        assert reply.status_code == 200, reply.text
        return parse_metrics(reply.text)

    def runs(self, limit: int = 50) -> dict[str, Any]:
        reply = self.get(f"/runs?limit={limit}", token=TOKEN)
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()
        return data

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of ``/readyz`` with the details the token shows."""
        reply = self.get("/readyz", token=TOKEN)
        return reply.status_code, reply.json()


class DaemonProcess(AdminClient):
    """``orgsync daemon -c CONFIG`` in a subprocess, its logs in a file."""

    def __init__(self, config: Path, port: int, log: Path, *,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(port)
        self.config = config
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orgsync.cli", "daemon", "-c", str(config)],
            cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})

    def wait_serving(self, timeout: float = 20) -> None:
        """Until ``/healthz`` answers (fails early if the process died)."""
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited {self.proc.returncode}:\n"
                                     f"{self.log.read_text(errors='replace')[-3000:]}")
            return self.get("/healthz", timeout=1).status_code == 200
        wait_for(up, timeout, "the admin endpoint")

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers (cleanup)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines (other lines skipped)."""
        events = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return events


class InProcessDaemon(AdminClient):
    """A :class:`Daemon` serving in a background thread (no signal handling)."""

    def __init__(self, config: Config) -> None:
        self.daemon = Daemon(config, handle_signals=False)
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        wait_for(lambda: self.daemon.admin_port is not None or self.exit_code is not None, 10,
                 "the daemon to bind")
        assert self.daemon.admin_port is not None, f"daemon exited {self.exit_code}"
        super().__init__(self.daemon.admin_port)

    def _serve(self) -> None:
        self.exit_code = asyncio.run(self.daemon.serve())

    def stop(self, timeout: float = 20) -> int | None:
        self.daemon.request_stop()
        self._thread.join(timeout)
        return self.exit_code


def daemon_config(data: dict[str, Any], base_dir: Path, *,
                  env: dict[str, str] | None = None) -> Config:
    """``data`` validated as a config (``${VAR}`` from ``env`` when given)."""
    return config_from_dict(data, file="<test>", base_dir=base_dir, env=env)
