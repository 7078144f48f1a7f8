"""Running the sandbox on a real socket: :class:`SandboxServer` (background) and :func:`serve`."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
import uvicorn

from orgsync.sandbox.app import Sandbox, build_app
from orgsync.sandbox.config import SandboxConfig
from orgsync.sandbox.tenant import JSON, Tenant

_DROP_MESSAGE = "ASGI callable returned without completing response."
_log = structlog.get_logger(__name__)


class _HideInjectedDrops(logging.Filter):
    """uvicorn reports every injected connection drop as an error; they are deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_MESSAGE


def _quiet_uvicorn() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideInjectedDrops) for f in logger.filters):
        logger.addFilter(_HideInjectedDrops())


def load_seed_file(path: str | Path | None) -> JSON | None:
    """Read a seed document (the shape of ``GET /_sandbox/state``) from a JSON file."""
    if path is None:
        return None
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a sandbox seed must be a JSON object")
    return data


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every response waits ~40 ms on a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any) -> uvicorn.Config:
    # The app sends its own Date (the sandbox clock's), so uvicorn's is off.
    return uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                          lifespan="off", timeout_graceful_shutdown=1, date_header=False)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SandboxServer:
    """The sandbox served by uvicorn in a daemon thread; a context manager.

    Binds ``host:port`` on :meth:`start` (port 0 picks a free one), so :attr:`base_url` is
    valid as soon as ``start`` returns. :attr:`tenant` is the live state, for inspection.
    """

    def __init__(self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, seed_file: str | Path | None = None) -> None:
        self.sandbox = Sandbox(config or SandboxConfig(), load_seed_file(seed_file))
        self.app = build_app(self.sandbox)
        self.host = host
        self.port = port
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def config(self) -> SandboxConfig:
        """The live knobs (change them with :meth:`configure`)."""
        return self.sandbox.config

    @property
    def tenant(self) -> Tenant:
        """The live tenant state."""
        return self.sandbox.tenant

    def start(self) -> None:
        """Bind, start uvicorn in a daemon thread and wait until it accepts connections."""
        if self._thread is not None:
            return
        _quiet_uvicorn()
        self._socket = _bind(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        self.base_url = _url(self.host, self.port)
        self._server = uvicorn.Server(_uvicorn_config(self.app))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]},
                                        name=f"sandbox:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start on {self.base_url}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread (hanging requests are cut short)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def reset(self) -> None:
        """Empty tenant (root ``"0"`` only); clear the request log, limiter, bursts and clock."""
        self.sandbox.reset()

    def configure(self, **knobs: Any) -> None:
        """Change knobs at runtime (the names of :class:`SandboxConfig`)."""
        self.sandbox.configure(**knobs)

    def requests(self) -> list[dict[str, Any]]:
        """The request log (the same objects ``GET /_sandbox/requests`` returns)."""
        return self.sandbox.requests()

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock forward (token expiry, the 30-day resurrect window)."""
        self.sandbox.advance_clock(seconds)

    def revoke_tokens(self) -> None:
        """Invalidate every issued tenant token (``reset`` keeps them; this does not)."""
        with self.sandbox.lock:
            self.sandbox.tokens.revoke_all()

    def load(self, state: dict[str, Any]) -> None:
        """Replace the tenant with a state document (as ``POST /_sandbox/seed``)."""
        self.sandbox.load(state)


def serve(config: SandboxConfig, host: str, port: int, *,
          seed_file: str | Path | None = None,
          listening: Callable[[str], None] | None = None) -> None:
    """Serve the sandbox in the foreground until interrupted (``orgsync sandbox``).

    ``listening`` is called with the base URL once the socket is bound, before serving.
    """
    _quiet_uvicorn()
    sandbox = Sandbox(config, load_seed_file(seed_file))
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])
    _log.info("sandbox listening", url=url, app_id=config.app_id,
              admin_api=f"{url}/_sandbox/state", seeded=seed_file is not None)
    if listening is not None:
        sock.listen(2048)  # connections made as soon as it is announced wait in the backlog
        listening(url)
    try:
        uvicorn.Server(_uvicorn_config(build_app(sandbox))).run(sockets=[sock])
    finally:
        sock.close()
