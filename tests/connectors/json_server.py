"""A small real HTTP server for HRIS tests: stdlib ``ThreadingHTTPServer`` on loopback.

Each test gives it a handler ``(Call) -> Reply``; every request is recorded in
``server.calls``. Nothing is mocked: the connector talks HTTP over a socket.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    form: dict[str, str] = field(default_factory=dict)


@dataclass
class Reply:
    """What to answer: status, JSON body (or raw text), headers, and an optional delay."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    text: str | None = None


Handler = Callable[[Call], Reply]


class JsonServer:
    """``with JsonServer(handler) as srv: srv.url`` — serves ``handler`` until the block ends.

    ``host`` is any loopback address (``127.0.0.2`` is a second host on Linux);
    ``tls_dir`` makes it HTTPS with a fresh self-signed certificate (``srv.certificate``).
    """

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1",
                 tls_dir: Path | None = None) -> None:
        self.handler = handler
        self.calls: list[Call] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("content-type", "")
                body: Any = None
                form: dict[str, str] = {}
                if raw and "json" in ctype:
                    body = json.loads(raw)
                elif raw and "form" in ctype:
                    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                call = Call(self.command, parts.path,
                            {k: v[0] for k, v in parse_qs(parts.query).items()},
                            {k.lower(): v for k, v in self.headers.items()}, body, form)
                outer.calls.append(call)
                reply = outer.handler(call)
                if reply.delay:
                    time.sleep(reply.delay)
                data = (reply.text if reply.text is not None
                        else json.dumps(reply.body, ensure_ascii=False)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json" if reply.text is None
                                     else "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = _serve
            do_POST = _serve

        self.httpd = ThreadingHTTPServer((host, 0), _Handler)
        self.httpd.daemon_threads = True
        self.certificate: Path | None = None
        if tls_dir is not None:
            self.certificate = _self_signed(tls_dir, host)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certificate, tls_dir / "key.pem")
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls_dir is not None else "http"
        self.url = f"{scheme}://{host}:{self.httpd.server_address[1]}"

    def __enter__(self) -> JsonServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _self_signed(directory: Path, host: str) -> Path:
    """A one-day self-signed certificate for the IP ``host`` (its key beside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-keyout", str(directory / "key.pem"), "-out", str(cert),
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}"],
                   check=True, capture_output=True, timeout=60)
    return cert
