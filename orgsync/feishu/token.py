"""The self-built app's ``tenant_access_token``: fetched once, shared, refreshed early.

Feishu issues tokens for at most 2 h and hands out a *new* one only when the current one has
less than 30 minutes left (feishu-api.md §2). The manager refreshes when less than
``min(1800 s, expire / 4)`` remain, so a normal token is renewed right when Feishu is willing
to mint a new one, and a short-lived one (a sandbox's) well before it runs out.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import structlog

from orgsync.errors import FeishuCredentials, FeishuError, FeishuTerminal
from orgsync.feishu.codes import CODES, Kind
from orgsync.feishu.endpoints import TENANT_TOKEN
from orgsync.feishu.ratelimit import Clock, MonotonicClock
from orgsync.feishu.retry import parse_envelope, transport_error
from orgsync.feishu.settings import FeishuSettings

log = structlog.get_logger("orgsync.feishu")

REFRESH_MARGIN_CAP = 1800.0


def refresh_margin(expire: float) -> float:
    """Seconds before expiry at which a token of lifetime ``expire`` is renewed."""
    return min(REFRESH_MARGIN_CAP, expire / 4)


class TokenManager:
    """Caches one tenant token; concurrent callers share a single in-flight fetch.

    :meth:`get` raises :class:`~orgsync.errors.FeishuCredentials` (exit 3, with the remedy)
    when Feishu refuses the credentials (feishu-api-more.md §1.10), another
    :class:`~orgsync.errors.FeishuTerminal` for any other refusal, and
    :class:`~orgsync.errors.FeishuRetryable` when the token endpoint could not be reached.
    Neither the secret nor a token is ever logged or put in an error.
    """

    def __init__(self, http: httpx.AsyncClient, settings: FeishuSettings, *,
                 clock: Clock | None = None) -> None:
        self._http = http
        self._settings = settings
        self._clock: Clock = clock or MonotonicClock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._inflight: asyncio.Task[str] | None = None
        self.fetch_count = 0

    def _fresh(self) -> str | None:
        if self._token is not None and self._clock.now() < self._refresh_at:
            return self._token
        return None

    async def get(self) -> str:
        """A token that is valid now and not due for refresh."""
        token = self._fresh()
        if token is not None:
            return token
        if self._inflight is None:
            task = asyncio.ensure_future(self._fetch())
            task.add_done_callback(self._fetch_done)
            self._inflight = task
        # shield: one caller being cancelled must not cancel the fetch the others wait on
        return await asyncio.shield(self._inflight)

    def _fetch_done(self, task: asyncio.Task[str]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is not reported as lost

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (Feishu said 99991663); a newer token already in hand is kept."""
        if self._token == token:
            self._token = None
            self._refresh_at = 0.0
            log.info("feishu.token.invalidated")

    async def _fetch(self) -> str:
        endpoint = TENANT_TOKEN.key
        started = self._clock.now()
        self.fetch_count += 1
        payload = {"app_id": self._settings.app_id, "app_secret": self._settings.app_secret}
        try:
            response = await self._http.post(
                self._settings.origin + TENANT_TOKEN.template,
                content=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except httpx.TransportError as exc:
            raise transport_error(exc, endpoint, self._settings.timeout) from None
        try:
            body = parse_envelope(response, endpoint)
        except FeishuError as exc:
            log.warning("feishu.token.failed", code=exc.code, http_status=exc.http_status,
                        retryable=exc.retryable)
            known = CODES.get(exc.code)
            if known is not None and known.kind is Kind.CREDENTIALS:
                raise FeishuCredentials(exc.code, exc.msg,
                                        remedy=f"{known.meaning}: {known.remedy}",
                                        http_status=exc.http_status,
                                        log_id=exc.log_id, endpoint=endpoint) from None
            raise
        token = body.get("tenant_access_token")
        expire = body.get("expire")
        if not isinstance(token, str) or not token or not isinstance(expire, int | float):
            raise FeishuTerminal(0, "token response lacks tenant_access_token or expire",
                                 http_status=response.status_code,
                                 log_id=response.headers.get("x-tt-logid"), endpoint=endpoint)
        self._token = token
        self._expires_at = started + expire
        self._refresh_at = self._expires_at - refresh_margin(expire)
        log.info("feishu.token.fetched", expire=expire)
        return token
