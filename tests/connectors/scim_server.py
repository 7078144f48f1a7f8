"""A real SCIM 2.0 server for tests: scim2-server's WSGI app on loopback, in a thread.

Usage::

    with ScimTestServer(token="s3cret") as srv:
        srv.base_url                    # http://127.0.0.1:<port>/v2
        srv.create_user({...})          # POST /Users (the SCIM JSON of a user)
"""

from __future__ import annotations

import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
from scim2_server.memory import InMemoryStorage
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.utils import load_default_provider

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class ScimTestServer:
    """scim2-server (in-memory storage) on a free loopback port; needs ``token`` on every call."""

    def __init__(self, token: str = "s3cret") -> None:  # noqa: S107 - a test server
        self.token = token
        self.app = BearerTokenApplication(InMemoryStorage(), load_default_provider(),
                                          bearer_tokens=[token])

    def __enter__(self) -> ScimTestServer:
        self.httpd = make_server("127.0.0.1", 0, self.app, server_class=_ThreadingServer,
                                 handler_class=_Quiet)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v2"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()
        self.http = httpx.Client(base_url=self.base_url, timeout=10,
                                 headers={"Authorization": f"Bearer {self.token}"})
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def create_user(self, user: dict[str, Any]) -> dict[str, Any]:
        """POST one user; returns the stored resource (with its server-assigned ``id``)."""
        schemas = [USER_SCHEMA] + ([ENTERPRISE] if ENTERPRISE in user else [])
        reply = self.http.post("/Users", json={"schemas": schemas, **user},
                               headers={"Content-Type": "application/scim+json"})
        assert reply.status_code == 201, reply.text
        created: dict[str, Any] = reply.json()
        return created
