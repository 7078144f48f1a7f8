"""Turning HTTP outcomes into data or typed errors, and how long to wait before a retry.

``code != 0`` in the envelope is an error whatever the HTTP status. Retryable: rate limits
(99991400 in both its HTTP 429 and legacy HTTP 400 forms, IM send 230020, chat create
232019), lock conflicts
(43024, 43030, 44025), internal 40003, any HTTP 5xx, timeouts and connection errors —
except 41031/41032, tenant settings that Feishu answers with HTTP 504 (feishu-api-more.md
§1.14, ``U/create``, ``U/patch``). Everything else is terminal: the same request cannot
succeed by repetition (out of the contact range, wrong credentials: see
:mod:`orgsync.feishu.codes`).
"""

from __future__ import annotations

import json
import random
import socket
import ssl
from typing import Any

import httpx
import orjson

from orgsync.errors import FeishuError, FeishuRetryable, FeishuTerminal
from orgsync.feishu.codes import Kind, codes_of

RATE_LIMITED = 99991400
IM_RATE_LIMITED = 230020
CHAT_RATE_LIMITED = 232019
TOKEN_INVALID = 99991663
# Calendar time-off (feishu-api-more.md §8): method, app and contention throttles, HTTP 429.
CALENDAR_RATE_LIMITED = frozenset({190004, 190005, 190010})
RATE_LIMIT_CODES = frozenset({RATE_LIMITED, IM_RATE_LIMITED, CHAT_RATE_LIMITED,
                              *CALENDAR_RATE_LIMITED})
LOCK_CODES = frozenset({43024, 43030, 44025})
INTERNAL_ERROR = 40003
RETRYABLE_CODES = RATE_LIMIT_CODES | LOCK_CODES | {INTERNAL_ERROR}
#: Answered with HTTP 504 but permanent: retrying would only repeat the refusal.
PERMANENT_5XX = codes_of(Kind.TENANT_SETTING)

NO_ENVELOPE = -1
"""``code`` of errors that carry no Feishu envelope (timeouts, dropped connections, HTML)."""

RATE_LIMIT_FALLBACK = 1.0
BACKOFF_BASE = 0.2
BACKOFF_CAP = 10.0


def rate_limit_form(error: FeishuError) -> str | None:
    """The form of a rate-limit error (``http_429``, legacy ``http_400``, ``im_230020``) or None."""
    if error.code == RATE_LIMITED:
        return "http_429" if error.http_status == 429 else f"http_{error.http_status}"
    if error.code in CALENDAR_RATE_LIMITED:
        return f"calendar_{error.code}"
    if error.code in RATE_LIMIT_CODES:
        return f"im_{error.code}"
    return None


def _reset_seconds(response: httpx.Response) -> float:
    raw = response.headers.get("x-ogw-ratelimit-reset")
    try:
        seconds = float(raw) if raw is not None else RATE_LIMIT_FALLBACK
    except ValueError:
        seconds = RATE_LIMIT_FALLBACK
    return seconds if seconds > 0 else RATE_LIMIT_FALLBACK


def _error(retryable: bool, code: int, msg: str, *, http_status: int, log_id: str | None,
           endpoint: str, retry_after: float | None = None) -> FeishuError:
    cls = FeishuRetryable if retryable else FeishuTerminal
    return cls(code, msg, http_status=http_status, log_id=log_id, endpoint=endpoint,
               retry_after=retry_after)


def loads(content: bytes) -> Any:
    """JSON from a response body: orjson (a full resync parses 5,000 pages of 50 people,
    at twice the standard parser's speed), and what it refuses (an int beyond 64 bits, a
    byte-order mark) as ``json.loads`` reads it. Raises ``ValueError`` for non-JSON."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


def parse_envelope(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    """The whole JSON envelope of a successful response, or raise the typed error.

    A body that is not a JSON object with an integer ``code`` is retryable when the status
    is 5xx (a proxy's HTML error page) and terminal otherwise.
    """
    status = response.status_code
    log_id = response.headers.get("x-tt-logid")
    try:
        body = loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("code"), int):
        kind = response.headers.get("content-type", "no content-type")
        raise _error(status >= 500, NO_ENVELOPE,
                     f"response is not a Feishu JSON envelope (HTTP {status}, {kind})",
                     http_status=status, log_id=log_id, endpoint=endpoint)
    code: int = body["code"]
    msg = str(body.get("msg", ""))
    if code == 0 and status < 400:
        return body
    if code in RATE_LIMIT_CODES:
        raise _error(True, code, msg, http_status=status, log_id=log_id, endpoint=endpoint,
                     retry_after=_reset_seconds(response))
    retryable = code not in PERMANENT_5XX and (
        code in RETRYABLE_CODES or status >= 500 or status == 429)
    if code == 0:
        msg = msg or f"HTTP {status} with code 0"
    raise _error(retryable, code, msg, http_status=status, log_id=log_id, endpoint=endpoint)


def transport_error(exc: httpx.TransportError, endpoint: str, timeout: float) -> FeishuRetryable:
    """A retryable error for a request that got no response (timeout, refused, dropped).

    The message spells out which step failed — the DNS lookup, the TLS handshake, the
    connection, or the wait for an answer — and the system's own words for it.
    """
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    names = " ".join(type(c).__name__ for c in chain)
    if isinstance(exc, httpx.TimeoutException):
        step = f"no response within {timeout:g}s"
    elif any(isinstance(c, socket.gaierror) for c in chain) or "DNS" in names:
        step = "DNS lookup failed"
    elif any(isinstance(c, ssl.SSLError | ssl.CertificateError) for c in chain) \
            or "SSL" in names or "Certificate" in names:
        step = "TLS handshake failed"
    elif isinstance(exc, httpx.ConnectError):
        step = "connection failed"
    else:
        step = "connection lost"
    reason = str(exc).strip()
    return FeishuRetryable(NO_ENVELOPE, f"{step} ({type(exc).__name__}"
                           + (f": {reason})" if reason else ")"), endpoint=endpoint)


def may_have_applied(error: FeishuError) -> bool:
    """True when the failed attempt may still have taken effect on the server.

    Rate limits and lock conflicts are rejections before any write; a 5xx, a timeout
    or a dropped connection leaves the outcome unknown.
    """
    return error.code not in RATE_LIMIT_CODES | LOCK_CODES | {TOKEN_INVALID}


def backoff(retry: int, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``retry`` (1-based): 0.2 s doubling to a 10 s cap, jittered.

    The jitter draws from the upper half of the step so that retries of many concurrent
    calls spread out while the wait never collapses to zero.
    """
    step: float = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (retry - 1))
    jitter: float = (rng or random).uniform(0.5, 1.0)
    return step * jitter


def retry_wait(error: FeishuError, retry: int, rng: random.Random | None = None) -> float:
    """How long to wait before retrying after ``error``: the server's reset for rate limits."""
    if error.code in RATE_LIMIT_CODES:
        return error.retry_after if error.retry_after is not None else RATE_LIMIT_FALLBACK
    return backoff(retry, rng)
