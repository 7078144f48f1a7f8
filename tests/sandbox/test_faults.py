"""Injected latency and faults: 5xx envelopes, timeouts, dropped connections, determinism."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from orgsync.sandbox import SandboxServer

D = "/open-apis/contact/v3/departments"
NEW_DEPT = {"name": "X", "parent_department_id": "0"}


def live_departments(sandbox: SandboxServer) -> int:
    return sum(1 for d in sandbox.tenant.departments.values() if d.parent is not None)


def test_5xx_is_a_json_envelope_and_changes_nothing(sandbox: SandboxServer,
                                                    sandbox_api: httpx.Client) -> None:
    """fault_5xx answers 500/503 with a JSON envelope; the write is not applied."""
    sandbox.configure(fault_5xx=1.0)
    reply = sandbox_api.post(D, json=NEW_DEPT)
    assert reply.status_code in (500, 503)
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    assert reply.json()["code"] == 40003
    assert live_departments(sandbox) == 0
    assert sandbox.requests()[-1]["fault"] == "5xx"


@pytest.mark.parametrize(("after_apply", "created"), [(1.0, 1), (0.0, 0)])
def test_drop_closes_the_connection(sandbox: SandboxServer, sandbox_api: httpx.Client,
                                    after_apply: float, created: int) -> None:
    """fault_drop cuts the response; fault_after_apply decides whether the write happened."""
    sandbox.configure(fault_drop=1.0, fault_after_apply=after_apply)
    with pytest.raises(httpx.RemoteProtocolError):
        sandbox_api.post(D, json=NEW_DEPT)
    assert live_departments(sandbox) == created
    entry = sandbox.requests()[-1]
    assert (entry["fault"], entry["status"], entry["applied"]) == ("drop", None, bool(created))


def test_timeout_hangs_then_504(sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
    """fault_timeout hangs hang_seconds, then answers 504 (the write applied first here)."""
    sandbox.configure(fault_timeout=1.0, hang_seconds=0.2, fault_after_apply=1.0)
    started = time.monotonic()
    reply = sandbox_api.post(D, json=NEW_DEPT)
    assert time.monotonic() - started >= 0.2
    assert (reply.status_code, reply.json()["code"]) == (504, 40003)
    assert live_departments(sandbox) == 1


def test_client_times_out_on_a_hang(sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
    """A client with a shorter timeout than hang_seconds sees a read timeout."""
    sandbox.configure(fault_timeout=1.0, hang_seconds=2.0)
    with pytest.raises(httpx.ReadTimeout):
        sandbox_api.get(f"{D}/0", timeout=0.2)


def test_retry_with_client_token_after_applied_drop(sandbox: SandboxServer,
                                                    sandbox_api: httpx.Client) -> None:
    """A write applied before a drop, retried with its client_token, is not duplicated."""
    sandbox.configure(fault_drop=1.0, fault_after_apply=1.0)
    params = {"client_token": "op-1"}
    with pytest.raises(httpx.RemoteProtocolError):
        sandbox_api.post(D, params=params, json=NEW_DEPT)
    sandbox.configure(fault_drop=0.0)
    reply = sandbox_api.post(D, params=params, json=NEW_DEPT)
    assert reply.json()["code"] == 0
    assert live_departments(sandbox) == 1


def test_faults_are_deterministic_per_seed(sandbox: SandboxServer,
                                           sandbox_api: httpx.Client) -> None:
    """The same seed gives the same fault sequence after a reset."""
    def statuses() -> list[int]:
        return [sandbox_api.get(f"{D}/0").status_code for _ in range(12)]

    sandbox.configure(fault_5xx=0.5, rate_limits=False)
    first = statuses()
    assert {200} < set(first)
    sandbox.reset()
    assert statuses() == first


def test_latency_is_added(sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
    """latency_ms delays every /open-apis call."""
    sandbox.configure(latency_ms=150)
    started = time.monotonic()
    reply: Any = sandbox_api.get(f"{D}/0")
    assert reply.json()["code"] == 0
    assert time.monotonic() - started >= 0.15
