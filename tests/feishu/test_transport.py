"""The aiohttp transport under the Feishu client: proxies, error mapping, the sent stamp."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from orgsync.feishu.ratelimit import Permit, mark_sending
from orgsync.feishu.transport import aiohttp_transport, env_proxy
from orgsync.sandbox import SandboxServer


def test_proxy_from_the_environment_is_used_unless_bypassed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://open.feishu.cn") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.corp:3128")
    proxy = env_proxy("https://open.feishu.cn")
    assert proxy is not None
    assert (proxy.url.host, proxy.url.port, proxy.auth) == ("proxy.corp", 3128, ("user", "pw"))
    assert env_proxy("http://127.0.0.1:8080") is None  # no HTTP_PROXY
    monkeypatch.setenv("NO_PROXY", "feishu.cn")
    assert env_proxy("https://open.feishu.cn") is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    """aiohttp's own map would call it ConnectTimeout (a slow server instead of a closed port)."""
    origin = f"http://127.0.0.1:{_free_port()}"

    async def go() -> None:
        async with httpx.AsyncClient(base_url=origin, transport=aiohttp_transport(origin)) as c:
            await c.get("/")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(go())


class _Clock:
    def __init__(self) -> None:
        self.reads = 0

    def now(self) -> float:
        self.reads += 1
        return 1000.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def test_the_permit_of_a_request_is_stamped_when_it_leaves(sandbox: SandboxServer) -> None:
    """The limiter learns the real send time from aiohttp's trace signals: a GET once (its
    headers go out at once), a POST again when its body is written (aiohttp only buffers
    the headers, and a writer task sends them with the body later)."""
    origin = sandbox.base_url
    clock = _Clock()
    permit = Permit(clock, [], 0.0, 0.0)

    async def go() -> tuple[int, int]:
        async with httpx.AsyncClient(base_url=origin, transport=aiohttp_transport(origin)) as c:
            before = clock.reads
            mark_sending(permit)
            got = await c.get("/open-apis/contact/v3/departments/0")
            after_get = clock.reads
            mark_sending(permit)
            posted = await c.post("/open-apis/auth/v3/tenant_access_token/internal",
                                  json={"app_id": "x", "app_secret": "y"})
            assert got.status_code in (200, 400, 401)
            assert posted.status_code in (200, 400)
            return after_get - before, clock.reads - after_get

    assert asyncio.run(go()) == (1, 2)
