"""The sandbox in its own process, driven over HTTP (its ``/_sandbox`` admin API).

Benchmarks measure orgsync, not the sandbox: with the sandbox in another process
the two do not share one interpreter lock, as they would on a real network.

``python -m orgsync.bench.sandbox_host`` serves a sandbox on a free loopback
port, prints its base URL on one line, and exits when its stdin closes.
:class:`SandboxProcess` starts it and wraps the admin calls.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

ADMIN_SECRET = "bench-secret"  # noqa: S105 - the local sandbox's throwaway credential


class SandboxProcess:
    """A sandbox subprocess; use as a context manager. Admin calls raise on failure."""

    def __init__(self, *, app_id: str = "cli_bench", app_secret: str = ADMIN_SECRET) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._admin: httpx.Client | None = None

    def start(self) -> None:
        """Start the process and wait for its URL."""
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "orgsync.bench.sandbox_host", "--app-id", self.app_id,
             "--app-secret", self.app_secret],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the sandbox process did not start (said {line!r})")
        self.base_url = line
        self._admin = httpx.Client(base_url=line, timeout=120,
                                   headers={"Authorization": f"Bearer {self.app_secret}"})

    @property
    def pid(self) -> int:
        """The sandbox process id."""
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        """Close stdin (the process exits) and wait."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        assert self._admin is not None, "start() first"
        reply = self._admin.request(method, path, json=body)
        payload = reply.json()
        if reply.status_code != 200 or payload.get("code") != 0:
            raise RuntimeError(f"sandbox admin {method} {path}: {reply.status_code} "
                               f"{payload.get('msg')}")
        return payload.get("data")

    def configure(self, **knobs: Any) -> None:
        """Set knobs (:class:`orgsync.sandbox.SandboxConfig` names)."""
        self._call("POST", "/_sandbox/config", knobs)
        if "app_id" in knobs:
            self.app_id = str(knobs["app_id"])

    def reset(self) -> None:
        """Empty tenant, empty request log, fresh rate-limit windows."""
        self._call("POST", "/_sandbox/reset")

    def seed(self, state: dict[str, Any]) -> None:
        """Replace the tenant with ``state`` (departments, users) without any API call."""
        self._call("POST", "/_sandbox/seed", state)

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "/_sandbox/requests")

    def requests(self) -> list[dict[str, Any]]:
        """The request log (method, path, query, time, status, code …)."""
        data = self._call("GET", "/_sandbox/requests")
        return list(data or [])


def main() -> None:
    """Serve until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app-id", default="cli_bench")
    parser.add_argument("--app-secret", default=ADMIN_SECRET)
    args = parser.parse_args()
    from orgsync.sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(app_id=args.app_id, app_secret=args.app_secret)) as sb:
        print(sb.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
