"""The HTTP transport under the Feishu client's ``httpx.AsyncClient``: aiohttp.

httpx's own transport (httpcore over anyio) spends about 1.4 ms of CPU per
request on these machines, which caps one process near 700 requests/s before
orgsync does any work of its own; aiohttp spends about 0.3 ms
(``python -m orgsync.bench --only headroom`` measures the whole executor).
``httpx-aiohttp`` plugs aiohttp in under the same ``httpx`` API, so the client,
its retries and its error handling (aiohttp's errors arrive as
``httpx.TransportError`` subclasses) stay as they are.

The rate limiter wants to know when a request actually left (a request can wait
for a free connection after admission): :func:`~orgsync.feishu.ratelimit.mark_sending`
names the permit of the request the current task is about to make, and aiohttp's
trace signals stamp it as the request leaves (the body writer task inherits the
context, so it sees the same permit).

Imported only when a client is made (aiohttp takes ~0.1 s to import).
"""

from __future__ import annotations

import ssl
from types import SimpleNamespace
from typing import Any
from urllib.request import getproxies, proxy_bypass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from orgsync.feishu.ratelimit import sending_permit

#: Connections per client: above the executor's concurrency, so admitted requests never queue.
MAX_CONNECTIONS = 100


async def _stamp(_session: aiohttp.ClientSession, _ctx: SimpleNamespace, _params: Any) -> None:
    permit = sending_permit()
    if permit is not None:
        permit.sent()


def aiohttp_transport(origin: str) -> httpx.AsyncBaseTransport:
    """An httpx transport to ``origin`` over one aiohttp session (made on first use,
    inside the event loop).

    TLS is verified with httpx's default context. A proxy the environment names
    for ``origin`` (``HTTPS_PROXY``, ``NO_PROXY`` …) is looked up here, once:
    aiohttp's own ``trust_env`` would look it up, and read ``~/.netrc``, in a
    thread on every request.
    """
    # Loading the CA bundle costs ~40 ms per client: only for an https origin.
    ssl_context: ssl.SSLContext | bool = (httpx.create_ssl_context()
                                          if origin.startswith("https:") else True)
    trace = aiohttp.TraceConfig()
    # aiohttp signals "headers sent" when it *buffers* them; a request with a body
    # goes out later, from a writer task, right after "chunk sent". Stamping on both
    # leaves the later time, i.e. when the request really left.
    trace.on_request_headers_sent.append(_stamp)
    trace.on_request_chunk_sent.append(_stamp)

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=ssl_context,
                                         keepalive_timeout=5.0)
        return aiohttp.ClientSession(connector=connector, trace_configs=[trace])

    return _Transport(client=session, proxy=env_proxy(origin))


def env_proxy(origin: str) -> httpx.Proxy | None:
    """The proxy the environment names for ``origin``, or ``None`` (none, or bypassed)."""
    url = httpx.URL(origin)
    if url.host and proxy_bypass(url.host):
        return None
    proxy = getproxies().get(url.scheme)
    return httpx.Proxy(proxy) if proxy else None


class _Transport(AiohttpTransport):
    """``AiohttpTransport`` with aiohttp's errors translated precisely: its own map calls
    a refused connection a ``ConnectTimeout``, which would send people hunting for a
    slow server instead of a wrong URL or a closed port."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as exc:
            precise = _precise(exc)
            if precise is exc:
                raise
            raise precise from exc.__cause__


def _precise(exc: httpx.TransportError) -> httpx.TransportError:
    cause = exc.__cause__
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:  # raised before a request was attached
        request = None
    message = str(cause) if cause is not None else str(exc)
    kind: type[httpx.TransportError] | None = None
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(cause, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(cause, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(cause, aiohttp.ServerDisconnectedError):
        kind = httpx.RemoteProtocolError
    elif isinstance(cause, aiohttp.ClientOSError):
        kind = httpx.ReadError
    if kind is None or type(exc) is kind:
        return exc
    return kind(message, request=request)
