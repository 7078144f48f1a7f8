"""The production Feishu client: contact v3 departments and users, IM messages and chats.

One :class:`FeishuClient` per run. It owns one ``httpx.AsyncClient`` (connection reuse), the
tenant token (:mod:`orgsync.feishu.token`) and the rate limiter
(:mod:`orgsync.feishu.ratelimit`). Every attempt of every call passes the limiter first.

Retries (:mod:`orgsync.feishu.retry`): a call is retried up to ``max_retries`` times after
its first attempt. Rate limits wait ``x-ogw-ratelimit-reset`` seconds (1 s without the
header) and hold the endpoint's buckets that long; 5xx, timeouts, connection errors, lock
conflicts and 40003 back off exponentially with jitter. Writes are retried only where that
is safe: creates carry a ``client_token`` (generated once per call when the caller gives
none), IM sends and chat creates a ``uuid``, PATCH is idempotent, and DELETE is retried
because the caller treats "already deleted" as success. A 99991663 (token invalid or
expired) invalidates the token and replays the call, the first time outside the retry budget,
later times within it (a token revoked twice in a row costs one retry, not the write).

Logs (structlog ``orgsync.feishu``) carry the endpoint template, code, attempt and wait —
never a request or response body, an id, the secret or a token.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid as uuidlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import structlog

from orgsync.errors import FeishuError
from orgsync.feishu import endpoints as ep
from orgsync.feishu.access import unusable
from orgsync.feishu.endpoints import Endpoint
from orgsync.feishu.ratelimit import (
    Bucket,
    Clock,
    MonotonicClock,
    Permit,
    RateLimiter,
    mark_sending,
)
from orgsync.feishu.retry import (
    IM_RATE_LIMITED,
    TOKEN_INVALID,
    may_have_applied,
    parse_envelope,
    rate_limit_form,
    retry_wait,
    transport_error,
)
from orgsync.feishu.settings import FeishuSettings
from orgsync.feishu.token import TokenManager

log = structlog.get_logger("orgsync.feishu")

BATCH_GET_ID_CHUNK = 50
ALREADY_MEMBER = 42005
"""A group-member batch_add result: the user is in the group already."""
TIMEOFF_BAD_PARAMS = 190002
#: batch_get_id calls in flight at once: enough to fill 50/s at 100 ms a round trip.
_LOOKUPS_IN_FLIGHT = 8
NOT_RESIGNED = 44033
"""Resurrect's "user is not resigned": after an attempt whose outcome is unknown, it means
that attempt did the work."""


@dataclass
class ClientStats:
    """Counters for metrics and benchmarks. Keys are endpoint templates, never concrete ids."""

    calls: Counter[str] = field(default_factory=Counter)
    """Logical calls per endpoint (a paged iterator counts one call per page)."""
    attempts: Counter[str] = field(default_factory=Counter)
    """HTTP attempts per endpoint, first tries and retries together."""
    retries: Counter[str] = field(default_factory=Counter)
    """Attempts after a retryable failure, per endpoint."""
    rate_limited: Counter[str] = field(default_factory=Counter)
    """Rate-limit responses by form: ``http_429``, ``http_400`` (legacy), ``im_230020``, ``im_232019``."""
    failures: Counter[int] = field(default_factory=Counter)
    """Failed attempts by Feishu code (``-1``: no envelope), retried or not."""
    errors: Counter[int] = field(default_factory=Counter)
    """Errors raised to callers, by Feishu code."""
    limiter_wait_seconds: float = 0.0
    """Total seconds attempts spent waiting on the rate limiter."""
    token_replays: int = 0
    """Calls replayed after 99991663."""
    token_fetches: int = 0
    """Tenant-token fetches (kept current by :attr:`FeishuClient.stats`)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "calls": dict(self.calls), "attempts": dict(self.attempts),
            "retries": dict(self.retries), "rate_limited": dict(self.rate_limited),
            "failures": {str(k): v for k, v in self.failures.items()},
            "errors": {str(k): v for k, v in self.errors.items()},
            "limiter_wait_seconds": round(self.limiter_wait_seconds, 3),
            "token_replays": self.token_replays, "token_fetches": self.token_fetches,
        }


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _new_token() -> str:
    return str(uuidlib.uuid4())


def _sent_hook(permit: Permit) -> Callable[[str, Mapping[str, Any]], Awaitable[None]]:
    """An httpcore trace callback that tells the limiter when the request left (for an
    httpcore transport passed in; the default one uses :func:`mark_sending`)."""
    async def trace(event: str, info: Mapping[str, Any]) -> None:
        if event.endswith("send_request_headers.complete"):
            permit.sent()

    return trace


_SHARED_LIMITERS: dict[tuple[str, str, float, bool], RateLimiter] = {}


def shared_limiter(settings: FeishuSettings) -> RateLimiter:
    """The process-wide limiter of one app on one Feishu origin.

    Feishu counts per app and tenant, not per connection: runs that follow each
    other in one process (the daemon, the demo's read-back) must see the calls
    the previous client made inside the current windows, or they would burst
    straight into a 429. Only plain timestamps persist between event loops.
    """
    key = (settings.origin, settings.app_id, settings.rate_scale, settings.rate_limits)
    limiter = _SHARED_LIMITERS.get(key)
    if limiter is None:
        limiter = _SHARED_LIMITERS[key] = RateLimiter(scale=settings.rate_scale,
                                                      enabled=settings.rate_limits)
    return limiter


class _FirstRequestTransport(httpx.AsyncBaseTransport):
    """The client's own transport, made when its first request goes out (see
    :class:`FeishuClient`): a client that is never used loads no TLS context and no aiohttp."""

    def __init__(self, origin: str, *, light: bool) -> None:
        self._origin = origin
        self._light = light
        self._transport: httpx.AsyncBaseTransport | None = None

    def _made(self) -> httpx.AsyncBaseTransport:
        if self._transport is None:
            if self._light:
                # Loading the CA bundle costs ~40 ms per client: only for an https origin
                # (as aiohttp_transport). An http origin's context trusts no CA, so it
                # would refuse any https host rather than trust one unverified.
                self._transport = httpx.AsyncHTTPTransport(
                    verify=True if self._origin.startswith("https:")
                    else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
            else:
                from orgsync.feishu.transport import aiohttp_transport  # a slow import

                self._transport = aiohttp_transport(self._origin)
        return self._transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._made().handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


class FeishuClient:
    """Async client for the Feishu APIs orgsync uses; use as ``async with FeishuClient(s) as c``.

    Ids in arguments and results are of the settings' ``user_id_type`` /
    ``department_id_type``. Failures raise :class:`~orgsync.errors.FeishuRetryable` (retries
    exhausted) or :class:`~orgsync.errors.FeishuTerminal`, with ``endpoint`` set to the
    endpoint template; :class:`~orgsync.errors.FeishuUnusable` when no answer came after
    the retries, or the token call refused the credentials (nothing else can work then).
    ``transport`` replaces the network (e.g. ``httpx.MockTransport``); ``clock`` replaces
    the time source of the limiter, back-off and token expiry (tests).

    Making one costs no request and no import: the token is fetched by the first call and
    the transport made for it, so a run can open its client before it knows whether it
    will call Feishu at all. The default transport is aiohttp's (fast per request, slow to
    import); ``light`` picks httpx's own, for a client making a handful of calls (a dry
    run's account lookups) whose time aiohttp's import alone would exceed.
    """

    def __init__(self, settings: FeishuSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Clock | None = None, light: bool = False) -> None:
        self.settings = settings
        self._clock: Clock = clock or MonotonicClock()
        self._http = httpx.AsyncClient(
            base_url=settings.origin,
            timeout=httpx.Timeout(settings.timeout),
            transport=(transport if transport is not None
                       else _FirstRequestTransport(settings.origin, light=light)),
            headers={"User-Agent": "orgsync"},
        )
        self.limiter = (RateLimiter(scale=settings.rate_scale, enabled=settings.rate_limits,
                                    clock=self._clock) if clock is not None
                        else shared_limiter(settings))
        self.tokens = TokenManager(self._http, settings, clock=self._clock)
        self._stats = ClientStats()
        #: The ``Date`` header of the last business answer (Feishu's clock), if any.
        self.server_date: str | None = None

    @property
    def stats(self) -> ClientStats:
        """Live counters (see :class:`ClientStats`)."""
        self._stats.token_fetches = self.tokens.fetch_count
        return self._stats

    async def __aenter__(self) -> FeishuClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ------------------------------------------------------------------ core

    def _contact_params(self, **extra: str) -> dict[str, str]:
        return {"user_id_type": self.settings.user_id_type,
                "department_id_type": self.settings.department_id_type, **extra}

    async def _call(self, endpoint: Endpoint, *, path: Mapping[str, str] | None = None,
                    params: Mapping[str, str | Sequence[str]] | None = None,
                    body: Mapping[str, Any] | None = None,
                    extra_buckets: Sequence[Bucket] = (),
                    done_codes: frozenset[int] = frozenset(),
                    multipart: tuple[Mapping[str, str], Mapping[str, bytes]] | None = None,
                    ) -> dict[str, Any]:
        """One logical call with limiter, token, retries; returns the envelope's ``data``.

        ``multipart``: a ``multipart/form-data`` body instead, as (text fields, files by name).

        ``done_codes`` are codes that, after an attempt whose outcome is unknown, mean that
        attempt already did the work; they then count as success with empty data.
        """
        key = endpoint.key
        url = endpoint.path(**(path or {}))
        content = _encode(body) if body is not None else None
        stats = self._stats
        stats.calls[key] += 1
        retries = 0
        replayed = False
        uncertain = False
        # Feishu is unreachable only when no attempt of this call got an answer: one that
        # answered (a 5xx, a 429) proves it reachable, whatever the last attempt met.
        answered = False
        while True:
            stats.attempts[key] += 1
            token: str | None = None
            try:
                # token first, so that a fetch never sits between admission and sending
                token = await self.tokens.get()
                permit = await self.limiter.acquire(endpoint.buckets, extra_buckets)
                stats.limiter_wait_seconds += permit.waited
                headers = {"Authorization": f"Bearer {token}"}
                if content is not None:
                    headers["Content-Type"] = "application/json; charset=utf-8"
                mark_sending(permit)
                try:
                    response = await self._http.request(
                        endpoint.method, url, params=params, content=content, headers=headers,
                        data=multipart[0] if multipart else None,
                        files={k: (k, v) for k, v in multipart[1].items()} if multipart
                        else None,
                        extensions={"trace": _sent_hook(permit)})
                except httpx.TransportError as exc:
                    raise transport_error(exc, key, self.settings.timeout) from None
                answered = True
                self.server_date = response.headers.get("date", self.server_date)
                envelope = parse_envelope(response, key)
                data = envelope.get("data")
                return data if isinstance(data, dict) else {}
            except FeishuError as error:
                stats.failures[error.code] += 1
                form = rate_limit_form(error)
                if form is not None:
                    stats.rate_limited[form] += 1
                if uncertain and error.code in done_codes:
                    log.info("feishu.retry.already_done", endpoint=key, code=error.code)
                    return {}
                if error.code == TOKEN_INVALID and token is not None and (
                        not replayed or retries < self.settings.max_retries):
                    # The first replay is free; another one (the token was revoked again
                    # meanwhile) spends the retry budget like any other retry.
                    if replayed:
                        retries += 1
                        stats.retries[key] += 1
                    replayed = True
                    stats.token_replays += 1
                    self.tokens.invalidate(token)
                    log.info("feishu.token.replay", endpoint=key)
                    continue
                if not error.retryable or retries >= self.settings.max_retries:
                    stats.errors[error.code] += 1
                    log.warning("feishu.error", endpoint=key, code=error.code,
                                http_status=error.http_status, log_id=error.log_id,
                                attempts=retries + 1, retryable=error.retryable)
                    stop = unusable(error, self.settings.origin, answered=answered)
                    if stop is not None:
                        raise stop from error
                    raise
                retries += 1
                uncertain = uncertain or may_have_applied(error)
                wait = retry_wait(error, retries)
                if form is not None:
                    # 230020 is IM's per-receiver limit: hold that receiver, not every send
                    held = extra_buckets if error.code == IM_RATE_LIMITED and extra_buckets \
                        else (*endpoint.buckets, *extra_buckets)
                    self.limiter.hold(held, wait)
                stats.retries[key] += 1
                log.warning("feishu.retry", endpoint=key, code=error.code,
                            http_status=error.http_status, attempt=retries, wait=round(wait, 3))
                await self._clock.sleep(wait)

    async def _pages(self, endpoint: Endpoint, *, path: Mapping[str, str] | None = None,
                     params: Mapping[str, str],
                     items: str = "items") -> AsyncIterator[dict[str, Any]]:
        page_token: str | None = None
        while True:
            query = dict(params)
            if page_token:
                query["page_token"] = page_token
            data = await self._call(endpoint, path=path, params=query)
            for item in data.get(items) or ():
                yield item
            page_token = data.get("page_token")
            if not data.get("has_more") or not page_token:
                return

    # ----------------------------------------------------------- departments

    async def create_department(self, body: Mapping[str, Any], *,
                                client_token: str | None = None) -> dict[str, Any]:
        """Create a department; returns ``data.department``.

        ``client_token`` makes the create idempotent across retries and resumed runs; one is
        generated when not given (then only this call's retries are covered).
        """
        params = self._contact_params(client_token=client_token or _new_token())
        data = await self._call(ep.DEPARTMENT_CREATE, params=params, body=body)
        return dict(data.get("department") or {})

    async def get_department(self, department_id: str) -> dict[str, Any]:
        """Read one department; returns ``data.department`` (40015 if it does not exist)."""
        data = await self._call(ep.DEPARTMENT_GET, path={"department_id": department_id},
                                params=self._contact_params())
        return dict(data.get("department") or {})

    async def patch_department(self, department_id: str,
                               body: Mapping[str, Any]) -> dict[str, Any]:
        """Partially update a department; returns ``data.department``."""
        data = await self._call(ep.DEPARTMENT_PATCH, path={"department_id": department_id},
                                params=self._contact_params(), body=body)
        return dict(data.get("department") or {})

    async def update_department_id(self, department_id: str, new_department_id: str) -> None:
        """Change a department's custom ``department_id`` (needs
        ``contact:contact:update_department_id``; feishu-api-more.md §3)."""
        await self._call(ep.DEPARTMENT_UPDATE_ID, path={"department_id": department_id},
                         params=self._contact_params(),
                         body={"new_department_id": new_department_id})

    async def delete_department(self, department_id: str) -> None:
        """Delete an empty department (43011 with members, 43012 with sub-departments)."""
        await self._call(ep.DEPARTMENT_DELETE, path={"department_id": department_id},
                         params=self._contact_params())

    def iter_children(self, department_id: str = "0", *, fetch_child: bool = False,
                      page_size: int = 50) -> AsyncIterator[dict[str, Any]]:
        """Every child department of ``department_id`` (all levels with ``fetch_child``)."""
        params = self._contact_params(fetch_child="true" if fetch_child else "false",
                                      page_size=str(page_size))
        return self._pages(ep.DEPARTMENT_CHILDREN, path={"department_id": department_id},
                           params=params)

    # ------------------------------------------------------------------ users

    async def create_user(self, body: Mapping[str, Any], *,
                          client_token: str | None = None) -> dict[str, Any]:
        """Create a user; returns ``data.user``. ``client_token`` as for departments."""
        params = self._contact_params(client_token=client_token or _new_token())
        data = await self._call(ep.USER_CREATE, params=params, body=body)
        return dict(data.get("user") or {})

    async def get_user(self, user_id: str) -> dict[str, Any]:
        """Read one user; returns ``data.user``."""
        data = await self._call(ep.USER_GET, path={"user_id": user_id},
                                params=self._contact_params())
        return dict(data.get("user") or {})

    async def patch_user(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Partially update a user; returns ``data.user``.

        A body with ``department_ids`` or ``is_frozen`` is also paced to 1 QPS.
        """
        extra = (ep.USER_PATCH_SLOW,) if ep.USER_PATCH_SLOW_FIELDS & body.keys() else ()
        data = await self._call(ep.USER_PATCH, path={"user_id": user_id},
                                params=self._contact_params(), body=body, extra_buckets=extra)
        return dict(data.get("user") or {})

    async def delete_user(self, user_id: str,
                          handover: Mapping[str, Any] | None = None) -> None:
        """Delete (resign) a user; ``handover`` names acceptors for their resources."""
        await self._call(ep.USER_DELETE, path={"user_id": user_id},
                         params=self._contact_params(), body=handover or None)

    async def resurrect_user(self, user_id: str,
                             departments: Sequence[Mapping[str, Any]]) -> None:
        """Restore a user resigned within the last 30 days into ``departments``.

        Paced to 10/min. If an attempt's outcome was unknown (5xx, timeout, dropped
        connection) and the retry answers 44033 "not resigned", the earlier attempt did the
        work and the call succeeds.
        """
        await self._call(ep.USER_RESURRECT, path={"user_id": user_id},
                         params=self._contact_params(),
                         body={"departments": [dict(d) for d in departments]},
                         done_codes=frozenset({NOT_RESIGNED}))

    async def update_user_id(self, user_id: str, new_user_id: str) -> None:
        """Change a user's custom ``user_id`` (needs ``contact:contact:update_user_id``)."""
        await self._call(ep.USER_UPDATE_ID, path={"user_id": user_id},
                         params=self._contact_params(), body={"new_user_id": new_user_id})

    # ----------------------------------------------------------------- groups

    async def create_group(self, body: Mapping[str, Any]) -> str:
        """Create a normal user group; returns its ``group_id``.

        The API takes no ``client_token`` (/document/server-docs/contact-v3/group/create):
        callers send a custom ``group_id`` and read 47005 on a replay as "already made".
        """
        data = await self._call(ep.GROUP_CREATE, body=body)
        return str(data.get("group_id") or "")

    async def get_group(self, group_id: str) -> dict[str, Any]:
        """Read one group; returns ``data.group``."""
        data = await self._call(ep.GROUP_GET, path={"group_id": group_id})
        return dict(data.get("group") or {})

    async def patch_group(self, group_id: str, body: Mapping[str, Any]) -> None:
        """Change a group's name or description."""
        await self._call(ep.GROUP_PATCH, path={"group_id": group_id}, body=body)

    async def delete_group(self, group_id: str) -> None:
        """Delete an empty group (42017 while it has members)."""
        await self._call(ep.GROUP_DELETE, path={"group_id": group_id})

    def iter_groups(self) -> AsyncIterator[dict[str, Any]]:
        """Every normal group the app may see (``grouplist`` items)."""
        return self._pages(ep.GROUP_LIST, params={"page_size": str(ep.GROUP_PAGE_SIZE),
                                                  "type": "1"}, items="grouplist")

    def iter_group_members(self, group_id: str) -> AsyncIterator[dict[str, Any]]:
        """A group's user members as ``{member_id, member_type}`` (ids of ``user_id_type``)."""
        params = {"page_size": str(ep.GROUP_PAGE_SIZE), "member_type": "user",
                  "member_id_type": self.settings.user_id_type}
        return self._pages(ep.GROUP_MEMBER_LIST, path={"group_id": group_id}, params=params,
                           items="memberlist")

    def _members(self, user_ids: Sequence[str]) -> dict[str, Any]:
        if not 1 <= len(user_ids) <= ep.GROUP_MEMBER_BATCH:
            raise ValueError(f"1 to {ep.GROUP_MEMBER_BATCH} members per call")
        kind = self.settings.user_id_type
        return {"members": [{"member_id": u, "member_type": "user", "member_id_type": kind}
                            for u in user_ids]}

    async def add_group_members(self, group_id: str, user_ids: Sequence[str]) -> dict[str, int]:
        """Add 1–100 users; returns the members Feishu refused, with their codes.

        42005 "already a member" (documented with HTTP 200) counts as added, so a replayed
        batch succeeds.
        """
        data = await self._call(ep.GROUP_MEMBER_ADD, path={"group_id": group_id},
                                body=self._members(user_ids))
        return {str(r.get("member_id")): int(r.get("code") or 0)
                for r in data.get("results") or ()
                if int(r.get("code") or 0) not in (0, ALREADY_MEMBER)}

    async def remove_group_members(self, group_id: str, user_ids: Sequence[str]) -> None:
        """Remove 1–100 users (40022 when some could not be removed)."""
        await self._call(ep.GROUP_MEMBER_REMOVE, path={"group_id": group_id},
                         body=self._members(user_ids))

    def iter_users_by_department(self, department_id: str, *,
                                 page_size: int = 50) -> AsyncIterator[dict[str, Any]]:
        """Every direct member of ``department_id``."""
        params = self._contact_params(department_id=department_id, page_size=str(page_size))
        return self._pages(ep.USER_FIND_BY_DEPARTMENT, params=params)

    async def batch_get_user_ids(self, *, emails: Sequence[str] = (),
                                 mobiles: Sequence[str] = (),
                                 include_resigned: bool = False) -> list[dict[str, Any]]:
        """The entries of ``data.user_list`` that name an account (a ``user_id``), for all
        emails and mobiles, asked 50 of each per call. Entries without one (not found) are
        dropped as they come: a first sync asks about everyone, and 2 × 10⁵ of them held
        until the end cost tens of megabytes at the plan's peak.

        A few calls are in flight at once (the endpoint's limits pace them: 1000/min and
        50/s, feishu-api.md U-BGI), so a first sync's 10³ calls run at the documented rate
        rather than at one per round trip. The first error stops the others and is raised.
        """
        emails, mobiles = list(emails), list(mobiles)
        size = BATCH_GET_ID_CHUNK
        bodies: list[dict[str, Any]] = []
        for start in range(0, max(len(emails), len(mobiles)), size):
            body: dict[str, Any] = {"include_resigned": include_resigned}
            if emails[start:start + size]:
                body["emails"] = emails[start:start + size]
            if mobiles[start:start + size]:
                body["mobiles"] = mobiles[start:start + size]
            bodies.append(body)
        found: list[list[dict[str, Any]]] = [[] for _ in bodies]
        todo = iter(enumerate(bodies))

        async def lookups() -> None:
            for i, body in todo:
                data = await self._call(ep.USER_BATCH_GET_ID,
                                        params={"user_id_type": self.settings.user_id_type},
                                        body=body)
                found[i] = [r for r in data.get("user_list") or () if r.get("user_id")]

        workers = [asyncio.create_task(lookups())
                   for _ in range(min(_LOOKUPS_IN_FLIGHT, len(bodies)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return [r for part in found for r in part]

    # --------------------------------------------------------------------- IM

    async def upload_avatar(self, image: bytes) -> str:
        """Upload ``image`` as an avatar picture; returns its ``image_key`` for a user's
        ``avatar_key`` (feishu-api-more.md §7: ≤ 10 MB, non-empty, a picture format; the
        app needs the bot capability, else 234007)."""
        data = await self._call(ep.IM_IMAGE_UPLOAD,
                                multipart=({"image_type": "avatar"}, {"image": image}))
        return str(data.get("image_key") or "")

    async def send_message(self, *, receive_id_type: str, receive_id: str, msg_type: str,
                           content: str | Mapping[str, Any],
                           uuid: str | None = None) -> dict[str, Any]:
        """Send one message; returns the message object (``data``).

        ``content`` may be the serialized JSON string Feishu expects or a mapping to
        serialize. ``uuid`` deduplicates for 1 h; one is generated when not given. Paced to
        5 QPS per receiver on top of the endpoint's limits.
        """
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        body = {"receive_id": receive_id, "msg_type": msg_type, "content": text,
                "uuid": uuid or _new_token()}
        return await self._call(ep.IM_SEND, params={"receive_id_type": receive_id_type},
                                body=body,
                                extra_buckets=(ep.im_receiver_bucket(receive_id_type,
                                                                     receive_id),))

    async def create_chat(self, body: Mapping[str, Any], *,
                          uuid: str | None = None) -> dict[str, Any]:
        """Create a group chat; returns the chat object (``data``).

        ``uuid`` deduplicates per owner for 10 h; one is generated when not given.
        """
        params = {"user_id_type": self.settings.user_id_type, "uuid": uuid or _new_token()}
        return await self._call(ep.IM_CHAT_CREATE, params=params, body=body)

    async def get_chat(self, chat_id: str) -> dict[str, Any]:
        """A group chat the bot can see (``data``); refused when the bot is not in it."""
        return await self._call(ep.IM_CHAT_GET, path={"chat_id": chat_id},
                                params={"user_id_type": self.settings.user_id_type})

    # ------------------------------------------------------------- job levels, families

    async def job_catalog(self, kind: str) -> dict[str, str]:
        """The tenant's job levels, job families or custom employee types (``kind``, see
        :data:`~orgsync.feishu.endpoints.CATALOGS`) a user may point at, as name → id."""
        c = ep.CATALOGS[kind]
        return {str(e[c.name_key]): str(e[c.id_key])
                async for e in self._pages(c.listing, params={"page_size": c.page_size})
                if c.usable(e) and e.get(c.name_key) and e.get(c.id_key)}

    async def create_job_catalog_entry(self, kind: str, name: str) -> str:
        """Create an enabled entry named ``name`` in the ``kind`` catalog; returns its id."""
        c = ep.CATALOGS[kind]
        data = await self._call(c.create, body=c.body(name))
        return str((data.get(c.response) or {})[c.id_key])
    # --------------------------------------------------------------- calendar time-off

    async def create_timeoff(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create one time-off event (the 请假 mark, feishu-api-more.md §8.1); returns ``data``
        with the ``timeoff_event_id`` the caller must keep (Feishu cannot list them).

        The endpoint takes no idempotency token, so an attempt whose outcome is unknown and
        is retried may leave a second event: callers accept a duplicate mark over a lost one.
        """
        return await self._call(ep.TIMEOFF_CREATE,
                                params={"user_id_type": self.settings.user_id_type}, body=body)

    async def delete_timeoff(self, event_id: str) -> None:
        """Delete one time-off event (§8.2). After an attempt whose outcome is unknown, the
        retry's 190002 (the id is no longer known) means that attempt deleted it."""
        await self._call(ep.TIMEOFF_DELETE, path={"timeoff_event_id": event_id},
                         done_codes=frozenset({TIMEOFF_BAD_PARAMS}))

    async def rename_job_catalog_entry(self, kind: str, entry_id: str, name: str) -> None:
        """Rename the ``kind`` catalog's entry ``entry_id`` (job levels and families: PUT,
        omitted fields unchanged, §5.2, §5.3); the users pointing at it keep pointing."""
        c = ep.CATALOGS[kind]
        assert c.update is not None, kind
        await self._call(c.update, path={c.id_key: entry_id}, body={"name": name})

    async def custom_attributes(self) -> list[dict[str, Any]]:
        """The tenant's custom profile attributes opened to the API, as listed (§6): see
        :func:`orgsync.custom_attrs.definitions`."""
        return [e async for e in self._pages(ep.CUSTOM_ATTR_LIST, params={"page_size": "100"})]

    # ------------------------------------------------------------- app introspection

    async def contact_scope(self) -> tuple[list[str], list[str]]:
        """The app's contact range as ``(department ids, user ids)``: with the all-members
        range the root's first-level departments and direct users, otherwise exactly the
        granted departments (their subtrees included) and users (§2.1)."""
        depts: list[str] = []
        users: list[str] = []
        page_token: str | None = None
        while True:
            params = self._contact_params(page_size="50")
            if page_token:
                params["page_token"] = page_token
            data = await self._call(ep.CONTACT_SCOPES, params=params)
            depts.extend(str(d) for d in data.get("department_ids") or ())
            users.extend(str(u) for u in data.get("user_ids") or ())
            page_token = data.get("page_token")
            if not data.get("has_more") or not page_token:
                return depts, users

    async def app_scopes(self) -> dict[str, bool]:
        """Every scope the app has asked for → whether it is granted (§2.2; needs no scope)."""
        data = await self._call(ep.APP_SCOPES)
        return {str(s.get("scope_name")): s.get("grant_status") == 1
                for s in data.get("scopes") or () if s.get("scope_name")}
