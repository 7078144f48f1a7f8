"""A real headless browser for tests: Debian's Chromium, driven over the DevTools protocol.

The protocol is JSON over a WebSocket (``websockets``, already installed for the official
SDK); no browser download, no driver binary. ``with chromium() as page:`` opens a tab;
``page.open(path)`` loads a file and waits for its load event; ``page.eval(js)`` returns
the expression's value.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.daemon_proc import wait_for


class Page:
    """One browser tab."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events in between are skipped)."""
        n = next(self._ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == n:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        found = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                          awaitPromise=True)
        if "exceptionDetails" in found:
            raise AssertionError(f"{expression}: {found['exceptionDetails']}")
        return found["result"].get("value")

    def open(self, path: Path) -> None:
        """Load ``path`` and wait until the page (and its scripts) has loaded."""
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.eval("new Promise(r => document.readyState === 'complete' ? r(true) "
                  ": window.addEventListener('load', () => r(true)))")


@contextmanager
def chromium() -> Iterator[Page]:
    """A headless Chromium with one tab; closed on the way out."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed (tests/debian-packages.txt lists it)"
    profile = Path(tempfile.mkdtemp(prefix="orgsync-chromium-"))
    # --no-sandbox: tests run as root, where Chromium's sandbox refuses to start.
    proc = subprocess.Popen([binary, "--headless", "--no-sandbox", "--disable-gpu",
                             "--no-first-run", f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        active = profile / "DevToolsActivePort"
        wait_for(lambda: active.exists() and active.read_text().count("\n") >= 1, 60,
                 "Chromium's DevTools port")
        port = active.read_text().split()[0]
        tab = next(t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
                   if t["type"] == "page")
        with connect(tab["webSocketDebuggerUrl"], max_size=None) as ws:
            yield Page(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
