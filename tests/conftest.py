"""Shared pytest fixtures.

``sandbox``     a running local Feishu (one server per session), reset to an empty tenant and
                default knobs before each test; yields the :class:`SandboxServer`
                (``sandbox.base_url``, ``sandbox.tenant``, ``sandbox.configure(...)``).
``sandbox_api`` an ``httpx.Client`` on that sandbox with a fresh tenant token already in
                its ``Authorization`` header.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import httpx
import pytest

from orgsync.sandbox import SandboxConfig, SandboxServer


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """One sandbox for the whole session (start-up costs ~0.1 s, but once is enough)."""
    with SandboxServer(SandboxConfig()) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The session sandbox, with default knobs and an empty tenant (root ``"0"`` only)."""
    sandbox_server.configure(**asdict(SandboxConfig()))
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def sandbox_api(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """An httpx client for ``sandbox`` that sends a valid tenant token on every call."""
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as client:
        reply = client.post("/open-apis/auth/v3/tenant_access_token/internal",
                            json={"app_id": sandbox.config.app_id,
                                  "app_secret": sandbox.config.app_secret})
        client.headers["Authorization"] = f"Bearer {reply.json()['tenant_access_token']}"
        yield client


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Each test starts and ends with structlog's defaults.

    CLI and daemon tests call ``orgsync.logs.configure``; without this, a later
    test would log through their processors (or a stream their runner closed).
    """
    import structlog

    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
