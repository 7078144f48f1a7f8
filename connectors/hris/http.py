"""HTTP for the HRIS connector: auth, retries, and every pagination style HR APIs use.

:class:`Fetcher` makes one JSON request with the configured auth, retrying
``429`` / ``503`` after ``Retry-After`` (capped) and other 5xx and network
errors with exponential back-off; anything else that is not a 2xx raises
:class:`~orgsync.errors.SourceError`. :func:`iter_pages` walks one endpoint's
pages and yields their records; it raises SourceError as soon as a page fails
or the pages disagree with the totals the server announced, so a caller never
sees a partial list as if it were whole.

Every request but the OAuth2 token call goes to ``base_url``'s origin (scheme,
host and port): a next-page link or cursor URL pointing anywhere else (another
host, or https → http) raises SourceError instead of carrying the credentials
there.

Errors name the endpoint path and the page, never a token, password or query
value (:func:`orgsync.urls.mask_url`).
"""

from __future__ import annotations

import email.utils
import re
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin

import httpx
import structlog

from connectors.mapping import FieldPath
from orgsync.errors import SourceError
from orgsync.urls import mask_url, mask_urls

log = structlog.get_logger("orgsync.connectors.hris")

AuthKind = Literal["none", "bearer", "basic", "oauth2"]
PagingKind = Literal["none", "offset", "page", "cursor", "link", "page_token"]
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


@dataclass(frozen=True)
class Auth:
    """How to authenticate. Secrets are masked in the repr."""

    kind: AuthKind = "none"
    token: str | None = field(default=None, repr=False)
    header: str = "Authorization"
    scheme: str = "Bearer"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token_url: str | None = None
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None
    client_auth: Literal["body", "basic"] = "body"


@dataclass(frozen=True)
class Paging:
    """How an endpoint pages (see ``config/example.yaml`` for each style's options)."""

    kind: PagingKind = "none"
    size: int = 100
    size_param: str | None = None
    offset_param: str = "offset"
    start: int = 0
    page_param: str = "page"
    cursor_param: str = "cursor"
    token_param: str = "page_token"  # noqa: S105 - a query parameter name
    next: FieldPath | None = None          # cursor / page_token: where the next one is
    has_more: FieldPath | None = None      # page / page_token: "more pages follow"
    total: FieldPath | None = None         # offset: total records; page: total pages
    location: Literal["query", "body"] = "query"
    max_pages: int = 100_000


@dataclass(frozen=True)
class Envelope:
    """A body-level status (Feishu-style ``{"code": 0, "msg": ...}``): not ``ok`` → error."""

    code: FieldPath
    ok: str = "0"
    message: FieldPath | None = None


@dataclass(frozen=True)
class Request:
    """One endpoint that lists records."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    records: FieldPath | None = None       # None: the body itself is the list
    paging: Paging = field(default_factory=Paging)
    envelope: Envelope | None = None


class Fetcher:
    """A synchronous JSON client for one HR API (one connection pool, one token)."""

    def __init__(self, base_url: str, auth: Auth, *, timeout: float = 30.0, max_retries: int = 5,
                 max_retry_wait: float = 120.0, backoff: float = 0.5, verify: bool | str = True,
                 headers: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.origin = _origin(self.base_url)
        self.auth = auth
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.backoff = backoff
        self.timeout = timeout
        self._token: str | None = None
        basic = (auth.username or "", auth.password or "") if auth.kind == "basic" else None
        tls = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self.client = httpx.Client(timeout=timeout, verify=tls, auth=basic,
                                   headers={"Accept": "application/json", **(headers or {})},
                                   follow_redirects=False)
        self.requests = 0
        self.waited = 0.0

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()

    def url(self, path: str) -> str:
        """``path`` resolved against the base URL (absolute URLs are kept)."""
        if re.match(r"https?://", path):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def get_json(self, method: str, url: str, *, what: str, params: Mapping[str, Any] | None = None,
                 body: Any = None) -> tuple[Any, httpx.Response]:
        """The decoded JSON body of one call (with retries); SourceError naming ``what``."""
        # httpx replaces a URL's own query with params={}: pass None for next-links
        response = self._call(method, url, what=what, params=params or None, body=body)
        try:
            return response.json(), response
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise SourceError(f"{what}: the response is not JSON ({kind}); check base_url and "
                              "the endpoint path") from None

    def _call(self, method: str, url: str, *, what: str, params: Mapping[str, Any] | None,
              body: Any) -> httpx.Response:
        if _origin(url) != self.origin:
            raise SourceError(
                f"{what}: refusing to send the credentials to {mask_url(url)}, outside "
                f"base_url's origin {self.origin}; the read is aborted, nothing was synced "
                "(if the API really moved there, change base_url)")
        refreshed = False
        attempt = 0
        while True:
            headers = self._auth_headers(what)
            self.requests += 1
            try:
                response = self.client.request(method, url, params=params, json=body,
                                               headers=headers)
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout:g}s"
            except httpx.TransportError as exc:
                problem = f"cannot connect ({type(exc).__name__}: {mask_urls(str(exc))})"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                if status == 401 and self.auth.kind == "oauth2" and not refreshed:
                    refreshed = True
                    self._token = None
                    continue
                if status in (429, 503) and "retry-after" in response.headers:
                    wait = _retry_after(response.headers["retry-after"])
                    if wait is not None and attempt < self.max_retries:
                        if wait > self.max_retry_wait:
                            raise SourceError(
                                f"{what}: rate limited (HTTP {status}), and Retry-After asks for "
                                f"{wait:g}s, more than max_retry_wait {self.max_retry_wait:g}s")
                        log.info("hris.rate_limited", what=what, status=status, wait=wait)
                        self._sleep(wait)
                        attempt += 1
                        continue
                    raise SourceError(f"{what}: still rate limited (HTTP {status}) after "
                                      f"{attempt + 1} attempts; try again later or raise "
                                      "max_retries")
                if status < 500:
                    raise SourceError(f"{what}: HTTP {status} {response.reason_phrase}"
                                      f"{_detail(response)}{_hint(status)}")
                problem = f"HTTP {status} {response.reason_phrase}{_detail(response)}"
            if attempt >= self.max_retries:
                raise SourceError(f"{what}: {problem} ({attempt + 1} attempts); the read is "
                                  "aborted, nothing was synced")
            log.info("hris.retry", what=what, problem=problem, attempt=attempt + 1)
            self._sleep(min(self.backoff * 2 ** attempt, 30.0))
            attempt += 1

    def _sleep(self, seconds: float) -> None:
        self.waited += seconds
        time.sleep(seconds)

    def _auth_headers(self, what: str) -> dict[str, str]:
        auth = self.auth
        if auth.kind == "bearer":
            return {auth.header: f"{auth.scheme} {auth.token}".strip()}
        if auth.kind == "oauth2":
            if self._token is None:
                self._token = self._fetch_token(what)
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def _fetch_token(self, what: str) -> str:
        """OAuth2 client credentials (RFC 6749 §4.4)."""
        auth = self.auth
        assert auth.token_url is not None
        form = {"grant_type": "client_credentials"}
        if auth.scope:
            form["scope"] = auth.scope
        basic: tuple[str, str] | None = None
        if auth.client_auth == "basic":
            basic = (auth.client_id or "", auth.client_secret or "")
        else:
            form.update(client_id=auth.client_id or "", client_secret=auth.client_secret or "")
        url = self.url(auth.token_url)
        try:
            response = self.client.post(url, data=form, auth=basic or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise SourceError(f"{what}: cannot reach the OAuth2 token endpoint "
                              f"({type(exc).__name__})") from None
        if response.status_code != 200:
            raise SourceError(f"{what}: the OAuth2 token endpoint refused the client credentials "
                              f"(HTTP {response.status_code}); check client_id / client_secret")
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            raise SourceError(f"{what}: the OAuth2 token response has no access_token") from None
        if not isinstance(token, str) or not token:
            raise SourceError(f"{what}: the OAuth2 token response has an empty access_token")
        return token


def _retry_after(value: str) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date)."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _detail(response: httpx.Response) -> str:
    """A short, single-line excerpt of an error body."""
    text = " ".join(response.text.split())[:200]
    return f": {mask_urls(text)}" if text else ""


def _hint(status: int) -> str:
    return {401: "; check the credentials (auth)", 403: "; the credentials lack permission",
            404: "; check base_url and the endpoint path"}.get(status, "")


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the port made explicit), to compare origins."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return f"{parsed.scheme}://{parsed.host}:{port}"


def iter_pages(fetcher: Fetcher, request: Request, *, label: str) -> Iterator[tuple[int, list[Any]]]:
    """Yield ``(page number, records)`` for every page of ``request`` (page numbers from 1).

    Raises SourceError on a failed page, a page without the records list, a
    repeated cursor, or fewer records than the announced total.
    """
    paging = request.paging
    params = dict(request.params)
    body = dict(request.body) if request.body is not None else None
    url = fetcher.url(request.path)
    kind = paging.kind
    offset, page_no, token = paging.start, paging.start, None
    seen_tokens: set[str] = set()
    received = 0
    for number in range(1, paging.max_pages + 1):
        what = f"{label} {mask_url(request.path)} page {number}"
        values: dict[str, Any] = {}
        if kind != "none" and paging.size_param:
            values[paging.size_param] = paging.size
        if kind == "offset":
            values[paging.offset_param] = offset
        elif kind == "page":
            values[paging.page_param] = page_no
        elif kind in ("cursor", "page_token") and token is not None and not _is_url(token):
            values[paging.cursor_param if kind == "cursor" else paging.token_param] = token
        call_params, call_body = dict(params), body
        if paging.location == "body" and request.method == "POST":
            call_body = {**(body or {}), **values}
        else:
            call_params.update(values)
        target = token if kind in ("cursor", "link") and token and _is_url(token) else url
        if target is not url:
            call_params = {}  # a next-URL carries its own query
        data, response = fetcher.get_json(request.method, fetcher.url(target), what=what,
                                          params=call_params, body=call_body)
        _check_envelope(request.envelope, data, what)
        records = _records(request.records, data, what)
        received += len(records)
        yield number, records

        if kind == "none":
            return
        if kind == "offset":
            total = _int_at(paging.total, data, what) if paging.total else None
            if total is not None:
                if offset - paging.start + len(records) >= total:
                    return
                if not records:
                    raise SourceError(f"{what}: empty page at offset {offset} but the server "
                                      f"announced {total} records; the read is incomplete")
            elif not records:
                return
            offset += len(records)
        elif kind == "page":
            more = _more(paging, data, what)
            total_pages = _int_at(paging.total, data, what) if paging.total else None
            if total_pages is not None:
                if page_no - paging.start + 1 >= total_pages:
                    return
            elif more is False or (more is None and not records):
                return
            page_no += 1
        elif kind == "link":
            m = _LINK_NEXT.search(response.headers.get("link", ""))
            token = m.group(1) if m else None
            if token is None:
                return
            token = urljoin(str(response.url), token)
        else:  # cursor, page_token
            assert paging.next is not None
            found = paging.next.get(data)
            token = str(found) if found not in (None, "") else None
            more = _more(paging, data, what)
            if more is False or (more is None and token is None):
                return
            if token is None:
                raise SourceError(f"{what}: the server says more pages follow but gave no "
                                  f"{paging.next.text}; the read is incomplete")
        if token is not None:
            if token in seen_tokens:
                raise SourceError(f"{what}: the server repeated a page cursor; the paging "
                                  "never ends")
            seen_tokens.add(token)
    raise SourceError(f"{label} {mask_url(request.path)}: more than {paging.max_pages} pages; raise "
                      "pagination.max_pages if the source really is that large")


def _is_url(token: str) -> bool:
    return token.startswith(("http://", "https://", "/"))


def _more(paging: Paging, data: Any, what: str) -> bool | None:
    if paging.has_more is None:
        return None
    value = paging.has_more.get(data)
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    raise SourceError(f"{what}: '{paging.has_more.text}' is {value!r}, not true/false")


def _int_at(path: FieldPath | None, data: Any, what: str) -> int | None:
    if path is None:
        return None
    value = path.get(data)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SourceError(f"{what}: '{path.text}' is {value!r}, not a number") from None


def _check_envelope(envelope: Envelope | None, data: Any, what: str) -> None:
    if envelope is None:
        return
    code = envelope.code.get(data)
    if code is None or str(code) != envelope.ok:
        message = envelope.message.get(data) if envelope.message else None
        raise SourceError(f"{what}: the API answered {envelope.code.text}={code!r}"
                          + (f" ({mask_urls(str(message))[:200]})" if message else ""))


def _records(path: FieldPath | None, data: Any, what: str) -> list[Any]:
    value = data if path is None else path.get(data)
    if isinstance(value, Mapping):  # a map keyed by id (BambooHR's changed-employees shape)
        value = list(value.values())
    if value is None and path is not None and isinstance(data, Mapping):
        # an absent list on a page is an empty page only when the server says so elsewhere
        return []
    if not isinstance(value, list):
        where = f"'{path.text}'" if path else "the body"
        raise SourceError(f"{what}: {where} is not a list of records; check the 'records' path")
    return value
