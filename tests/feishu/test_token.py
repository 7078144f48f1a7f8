"""Tenant-token caching, refresh, single flight and failures (HTTP faked with MockTransport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from structlog.testing import capture_logs

from orgsync.errors import ConfigError, FeishuRetryable, FeishuTerminal
from orgsync.feishu.settings import FeishuSettings
from orgsync.feishu.token import TokenManager, refresh_margin
from tests.feishu import VirtualClock

SECRET = "s3cr3t-never-shown"
SETTINGS = FeishuSettings(app_id="cli_test", app_secret=SECRET, base_url="http://feishu.test")
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"


class TokenServer:
    """Issues t-1, t-2, ... with a fixed ``expire``; records the bodies it was sent."""

    def __init__(self, expire: int = 7200, delay: float = 0.0) -> None:
        self.expire = expire
        self.delay = delay
        self.bodies: list[dict[str, str]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == TOKEN_PATH
        self.bodies.append(json.loads(request.content))
        if self.delay:
            await asyncio.sleep(self.delay)
        token = f"t-{len(self.bodies)}"
        return httpx.Response(200, json={"code": 0, "msg": "ok", "tenant_access_token": token,
                                         "expire": self.expire})


def _manager(handler: Callable[[httpx.Request], object],
             clock: VirtualClock | None = None) -> tuple[TokenManager, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return TokenManager(http, SETTINGS, clock=clock), http


def test_fetch_sends_credentials_and_caches() -> None:
    """The first get posts app_id/app_secret; later gets reuse the cached token."""
    server = TokenServer()
    manager, http = _manager(server)

    async def main() -> list[str]:
        try:
            return [await manager.get(), await manager.get()]
        finally:
            await http.aclose()

    assert asyncio.run(main()) == ["t-1", "t-1"]
    assert server.bodies == [{"app_id": "cli_test", "app_secret": SECRET}]
    assert manager.fetch_count == 1


def test_concurrent_callers_share_one_fetch() -> None:
    """Fifty concurrent gets cause exactly one token request."""
    server = TokenServer(delay=0.05)
    manager, http = _manager(server)

    async def main() -> list[str]:
        try:
            return await asyncio.gather(*(manager.get() for _ in range(50)))
        finally:
            await http.aclose()

    assert asyncio.run(main()) == ["t-1"] * 50
    assert len(server.bodies) == 1


@pytest.mark.parametrize(("expire", "margin"), [(7200, 1800.0), (600, 150.0), (8, 2.0)])
def test_refreshes_when_less_than_the_margin_remains(expire: int, margin: float) -> None:
    """A token is reused until min(1800 s, expire/4) before expiry, then replaced."""
    assert margin == refresh_margin(expire)
    clock = VirtualClock()
    server = TokenServer(expire=expire)
    manager, http = _manager(server, clock)
    start = clock.now()

    async def main() -> list[str]:
        try:
            first = await manager.get()
            clock.t = start + expire - margin - 0.01
            still = await manager.get()
            clock.t = start + expire - margin + 0.01
            return [first, still, await manager.get()]
        finally:
            await http.aclose()

    assert asyncio.run(main()) == ["t-1", "t-1", "t-2"]


def test_invalidate_drops_only_the_current_token() -> None:
    """Invalidating a stale token is a no-op; invalidating the current one forces a fetch."""
    manager, http = _manager(TokenServer())

    async def main() -> list[str]:
        try:
            first = await manager.get()
            manager.invalidate("t-stale")
            same = await manager.get()
            manager.invalidate(first)
            return [first, same, await manager.get()]
        finally:
            await http.aclose()

    assert asyncio.run(main()) == ["t-1", "t-1", "t-2"]


def test_refused_credentials_raise_terminal_without_the_secret() -> None:
    """A code != 0 from the token endpoint is FeishuTerminal with Feishu's code and msg."""
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"code": 10014, "msg": "app secret invalid"},
                              headers={"X-Tt-Logid": "log-1"})

    manager, http = _manager(refuse)

    async def main() -> None:
        try:
            await manager.get()
        finally:
            await http.aclose()

    with capture_logs() as logs, pytest.raises(FeishuTerminal) as caught:
        asyncio.run(main())
    error = caught.value
    context = (error.code, error.msg, error.http_status, error.log_id)
    assert context == (10014, "app secret invalid", 400, "log-1")
    assert error.endpoint == "POST /open-apis/auth/v3/tenant_access_token/internal"
    assert SECRET not in str(error)
    assert SECRET not in repr(error.args)
    assert SECRET not in repr(logs)


def test_unreachable_token_endpoint_is_retryable() -> None:
    """A 503 HTML page from the token endpoint is FeishuRetryable with code -1."""
    def unavailable(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>busy</html>", headers={"content-type": "text/html"})

    manager, http = _manager(unavailable)

    async def main() -> None:
        try:
            await manager.get()
        finally:
            await http.aclose()

    with pytest.raises(FeishuRetryable) as caught:
        asyncio.run(main())
    assert (caught.value.code, caught.value.http_status) == (-1, 503)
    assert "not a Feishu JSON envelope" in caught.value.msg


def test_failed_fetch_is_not_cached() -> None:
    """After a failed fetch, the next get tries again."""
    answers = [httpx.Response(500, json={"code": 40003, "msg": "internal error"}),
               httpx.Response(200, json={"code": 0, "msg": "ok", "tenant_access_token": "t-ok",
                                         "expire": 7200})]

    def flaky(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    manager, http = _manager(flaky)

    async def main() -> str:
        try:
            with pytest.raises(FeishuRetryable):
                await manager.get()
            return await manager.get()
        finally:
            await http.aclose()

    assert asyncio.run(main()) == "t-ok"


class TestSettings:
    """FeishuSettings validation and secrecy."""

    def test_secret_is_not_in_repr(self) -> None:
        """repr() shows the app id but never the secret."""
        assert "cli_test" in repr(SETTINGS)
        assert SECRET not in repr(SETTINGS)

    @pytest.mark.parametrize(("changes", "key"), [
        ({"app_id": ""}, "feishu.app_id"),
        ({"app_secret": ""}, "feishu.app_secret"),
        ({"base_url": "open.feishu.cn"}, "feishu.base_url"),
        ({"timeout": 0}, "feishu.timeout"),
        ({"max_retries": -1}, "feishu.max_retries"),
        ({"rate_scale": 0}, "feishu.rate_scale"),
    ])
    def test_invalid_values_raise_config_error(self, changes: dict[str, object],
                                               key: str) -> None:
        """Each unusable value raises ConfigError naming its key."""
        values: dict[str, object] = {"app_id": "cli_x", "app_secret": "s", **changes}
        with pytest.raises(ConfigError) as caught:
            FeishuSettings(**values)  # type: ignore[arg-type]
        assert key == caught.value.key
