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
from tests.planted import PLANTED


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """One sandbox for the whole session (start-up costs ~0.1 s, but once is enough)."""
    with SandboxServer(SandboxConfig()) as server:
        _SESSION_SANDBOXES.append(server)
        yield server


# --- leak scan across the whole suite ---------------------------------------------------------
# Every test's captured output (logs, prints, plan renderings) and failure text is scanned for
# the app secret, every tenant token the session sandbox issued, and the admin tokens the tests
# configure, and the secrets the security tests plant (tests/planted.py); at the end, so are
# the ledger files the tests left. Any hit fails the run.

_SESSION_SANDBOXES: list[SandboxServer] = []
_ADMIN_TOKENS = ("test-admin-token-0123456789abcdef", "a-long-enough-admin-token")
_LEAKS: list[str] = []


def _secrets() -> dict[str, str]:
    found = {SandboxConfig().app_secret: "the app secret", **PLANTED}
    found.update({t: "an admin token" for t in _ADMIN_TOKENS})
    for server in _SESSION_SANDBOXES:
        store = server.sandbox.tokens
        found.update({t: "a tenant token" for t in list(store._tokens)})
    return found


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Scan what a test printed or logged, and its failure text, for secrets."""
    text = "".join(content for _, content in report.sections)
    if report.longrepr is not None:
        text += str(report.longrepr)
    if not text:
        return
    for secret, what in _secrets().items():
        if secret in text:
            _LEAKS.append(f"{report.nodeid} ({report.when}): {what} in its output")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Scan the ledgers the tests left behind, then fail the run on any leak."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        try:
            root = factory.getbasetemp()
        except (OSError, ValueError):
            root = None
        if root is not None:
            secrets = _secrets()
            for db in root.rglob("*.db"):
                data = db.read_bytes()
                for secret, what in secrets.items():
                    if secret.encode() in data:
                        _LEAKS.append(f"{db}: {what} in a ledger file")
    if _LEAKS:
        print("\nSECRET LEAKS FOUND:\n  " + "\n  ".join(sorted(set(_LEAKS))))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
