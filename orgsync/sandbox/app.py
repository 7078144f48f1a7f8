"""The sandbox's HTTP face: Feishu's routes, envelopes, auth, rate limits, faults and admin API.

``/open-apis/...`` behaves like open.feishu.cn: every answer is a JSON envelope
(``application/json; charset=utf-8``), including 404/405/429/5xx, with an ``X-Tt-Logid``
header in that exact casing (the Python SDK reads it case-sensitively). ``/_sandbox/...`` is
the admin API, guarded by ``Authorization: Bearer <admin_token>``.

One business call runs: route match (404 99991201 / 405 99991301) → injected latency → token
check (99991661 / 99991663) → forced 429 bursts → documented rate limits (429 99991400) →
injected faults → the tenant handler. Handlers are synchronous and run under one lock, so
every request changes state atomically; only the injected sleeps await.
"""

from __future__ import annotations

import asyncio
import copy
import email.policy
import itertools
import json
import random
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, fields
from email.parser import BytesParser
from email.utils import formatdate
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orgsync.sandbox import introspection
from orgsync.sandbox.config import KNOB_NAMES, MASK, SandboxConfig
from orgsync.sandbox.ratelimit import (
    EMPLOYEE_TYPE_CREATE,
    GROUP_WRITE,
    IM_PER_TARGET,
    JOB_CATALOG,
    RESURRECT,
    TIER_4,
    UPDATE_USER_ID,
    USER_MOVE_OR_FREEZE,
    Bucket,
    SlidingWindowLimiter,
    Window,
)
from orgsync.sandbox.tenant import (
    JSON,
    ApiError,
    IdTypes,
    SandboxClock,
    Tenant,
    TokenStore,
    field_error,
)
from orgsync.sandbox.tenant.job_catalog import FAMILY, LEVEL, Kind

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MEDIA_TYPE = "application/json; charset=utf-8"
LOGID_HEADER = b"X-Tt-Logid"
AUTH_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
RATE_LIMITED_MSG = "request trigger frequency limit"
# Feishu documents no body for gateway 5xx answers; the sandbox sends its internal-error code.
INTERNAL_ERROR = 40003

_logids = itertools.count(1)


@dataclass
class Reply:
    """An HTTP answer: status, JSON payload, extra headers."""

    status: int
    payload: JSON
    headers: dict[str, str] = field(default_factory=dict)


class Refusal(ApiError):
    """An error answer that also carries response headers (rate limiting)."""

    def __init__(self, code: int, msg: str, status: int, headers: dict[str, str]) -> None:
        super().__init__(code, msg, status)
        self.headers = headers


def error_reply(err: ApiError) -> Reply:
    """The envelope of a refused call."""
    headers = err.headers if isinstance(err, Refusal) else {}
    return Reply(err.status, {"code": err.code, "msg": err.msg, "data": {}}, headers)


def json_response(reply: Reply) -> Response:
    """Serialize a reply as UTF-8 JSON with Feishu's content type."""
    # orjson: a full resync's 5,000 pages at the documented rate keep the sandbox busy;
    # what it refuses (an int beyond 64 bits) as the standard encoder writes it.
    try:
        body = orjson.dumps(reply.payload)
    except orjson.JSONEncodeError:
        body = json.dumps(reply.payload, ensure_ascii=False).encode()
    return Response(body, status_code=reply.status, headers=reply.headers, media_type=MEDIA_TYPE)


def parse_bool(value: str | None, name: str) -> bool:
    """Query booleans, case-insensitive: the SDK sends ``True``/``False``."""
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise field_error(f"{name} must be a boolean")


def new_logid() -> str:
    """A unique request id in the spirit of Feishu's (timestamp + counter + random)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{stamp}{next(_logids):08X}{secrets.token_hex(4).upper()}"


# --------------------------------------------------------------------------- runtime


class Sandbox:
    """The running sandbox: config, clock, tenant, tokens, limiter, request log, fault RNG.

    Shared by the HTTP app and :class:`~orgsync.sandbox.server.SandboxServer`; every method
    that touches state takes ``lock`` so the test thread and the server loop never interleave.
    """

    def __init__(self, config: SandboxConfig | None = None, seed_state: JSON | None = None) -> None:
        self.config = config or SandboxConfig()
        self.lock = threading.RLock()
        self.clock = SandboxClock()
        self.tenant = Tenant(self.clock, seed=self.config.seed)
        self.tenant.new_users_unjoined = self.config.users_unjoined
        self.tenant.permissions = self.config.held_permissions()
        self.tenant.knobs = self.config
        self.tokens = TokenStore(self.clock)
        self.limiter = SlidingWindowLimiter()
        self.log: list[JSON] = []
        self.fault_rng = random.Random(f"faults:{self.config.seed}")
        self.burst = 0
        self.burst_legacy = False
        if seed_state is not None:
            self.tenant.load(seed_state)

    def reset(self) -> None:
        """Empty tenant (root ``"0"`` only); clear the log, limiter, bursts and clock offset.

        Issued tokens stay valid, so clients that cache them keep working across tests.
        """
        with self.lock:
            self.clock.reset()
            self.tokens.clamp(self.config.token_ttl)
            self.tenant.reset(seed=self.config.seed)
            self.tenant.new_users_unjoined = self.config.users_unjoined
            self.tenant.permissions = self.config.held_permissions()
            self.limiter.reset()
            self.log.clear()
            self.fault_rng = random.Random(f"faults:{self.config.seed}")
            self.burst = 0
            self.burst_legacy = False

    def configure(self, **knobs: Any) -> None:
        """Change knobs (names of :class:`SandboxConfig`); ValueError for unknown names/types."""
        unknown = set(knobs) - KNOB_NAMES
        if unknown:
            raise ValueError(f"unknown sandbox knobs: {', '.join(sorted(unknown))}")
        types = {f.name: f.type for f in fields(SandboxConfig)}
        coerced: dict[str, Any] = {}
        for name, value in knobs.items():
            kind = str(types[name])
            if value is None and "None" in kind:
                coerced[name] = None
            elif kind.startswith("bool"):
                if not isinstance(value, bool):
                    raise ValueError(f"knob {name} must be a boolean")
                coerced[name] = value
            elif kind.startswith("list[dict"):
                if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                    raise ValueError(f"knob {name} must be a list of objects")
                coerced[name] = [dict(v) for v in value]
            elif kind.startswith("list"):
                if isinstance(value, str):  # "a b,c": names separated by spaces or commas
                    value = value.replace(",", " ").split()
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"knob {name} must be a list of strings")
                coerced[name] = list(value)
            elif kind.startswith(("int", "float")):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"knob {name} must be a number")
                coerced[name] = int(value) if kind.startswith("int") else float(value)
            elif kind.startswith("list"):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"knob {name} must be a list of strings")
                coerced[name] = list(value)
            elif isinstance(value, str):
                coerced[name] = value
            else:
                raise ValueError(f"knob {name} must be a string")
        with self.lock:
            for name, value in coerced.items():
                setattr(self.config, name, value)
            if "seed" in coerced:
                self.tenant.seed = self.config.seed
                self.fault_rng = random.Random(f"faults:{self.config.seed}")
            self.tenant.new_users_unjoined = self.config.users_unjoined
            self.tenant.permissions = self.config.held_permissions()

    def requests(self) -> list[JSON]:
        """A copy of the request log."""
        with self.lock:
            return copy.deepcopy(self.log)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self.lock:
            self.log.clear()

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock (token expiry, the 30-day resurrect window, dedup windows)."""
        with self.lock:
            self.clock.advance(seconds)

    def load(self, state: JSON) -> None:
        """Replace the tenant with a state document (ValueError if it does not hold together)."""
        with self.lock:
            self.tenant.load(state)

    def state(self) -> JSON:
        """The tenant as JSON."""
        with self.lock:
            return self.tenant.state()


# --------------------------------------------------------------------------- business routes


@dataclass
class Call:
    """One authenticated business call, as the handlers see it."""

    sandbox: Sandbox
    params: dict[str, str]
    query: QueryParams
    body: Any
    app_id: str

    def q(self, name: str) -> str | None:
        """A single query value."""
        return self.query.get(name)

    @property
    def ids(self) -> IdTypes:
        """The request's id types."""
        return IdTypes.parse(self.q("user_id_type"), self.q("department_id_type"))

    def json_body(self, *, optional: bool = False) -> JSON:
        """The body as a JSON object (``{}`` when optional and absent)."""
        if self.body is None and optional:
            return {}
        if not isinstance(self.body, dict):
            raise field_error("the request body must be a JSON object")
        return self.body


Handler = Callable[[Tenant, Call], JSON]


def _send_message(tenant: Tenant, call: Call) -> JSON:
    sandbox = call.sandbox

    def admit(target: str) -> None:
        config = sandbox.config
        if config.im_throttled:
            raise ApiError(230020, "This operation triggers the frequency limit")
        if not config.rate_limits:
            return
        buckets: list[Bucket] = [((call.app_id, "im-target", target), w) for w in IM_PER_TARGET]
        if sandbox.limiter.try_acquire(buckets, config.rate_scale) is not None:
            raise ApiError(230020, "This operation triggers the frequency limit")

    return tenant.send_message(call.q("receive_id_type"), call.json_body(),
                               app_id=call.app_id, admit=admit)


def _department_children(tenant: Tenant, call: Call) -> JSON:
    introspection.check_root_listing(call.sandbox.config, call.params["id"])
    return tenant.department_children(
        call.params["id"], call.ids, fetch_child=parse_bool(call.q("fetch_child"), "fetch_child"),
        page_size=call.q("page_size"), page_token=call.q("page_token"))


def _catalog_routes(kind: Kind) -> list[tuple[str, dict[str, ApiRoute]]]:
    """job_levels / job_families: list, create and update, all 10/s."""
    def listing(t: Tenant, c: Call) -> JSON:
        return t.list_catalog(kind, name=c.q("name"), page_size=c.q("page_size"),
                              page_token=c.q("page_token"))

    def create(t: Tenant, c: Call) -> JSON:
        return t.create_catalog(kind, c.json_body())

    def update(t: Tenant, c: Call) -> JSON:
        return t.update_catalog(kind, c.params["id"], c.json_body())

    path = f"/open-apis/contact/v3/{kind.path}"
    return [(path, {"GET": ApiRoute(listing, JOB_CATALOG), "POST": ApiRoute(create, JOB_CATALOG)}),
            (f"{path}/{_ID}", {"PUT": ApiRoute(update, JOB_CATALOG)})]


@dataclass(frozen=True)
class ApiRoute:
    """One business endpoint: its handler and the rate-limit windows it counts against."""

    handler: Handler
    windows: tuple[Window, ...] = TIER_4


_D = "/open-apis/contact/v3/departments"
_G = "/open-apis/contact/v3/group"
_U = "/open-apis/contact/v3/users"
_ID = r"(?P<id>[^/]+)"

# feishu-api-more.md §4: writes 100/min, reads and single-member calls tier 4.
_GROUP_ROUTES: list[tuple[str, dict[str, ApiRoute]]] = [
    (_G, {"POST": ApiRoute(lambda t, c: t.create_group(c.json_body()), GROUP_WRITE)}),
    (_G + "/simplelist", {"GET": ApiRoute(lambda t, c: t.list_groups(
        c.q("type"), c.q("page_size"), c.q("page_token")))}),
    (_G + f"/{_ID}/member/batch_add", {"POST": ApiRoute(
        lambda t, c: t.add_group_members(c.params["id"], c.json_body()), GROUP_WRITE)}),
    (_G + f"/{_ID}/member/batch_remove", {"POST": ApiRoute(
        lambda t, c: t.remove_group_members(c.params["id"], c.json_body()), GROUP_WRITE)}),
    (_G + f"/{_ID}/member/simplelist", {"GET": ApiRoute(lambda t, c: t.list_group_members(
        c.params["id"], IdTypes.parse(c.q("member_id_type"), None), c.q("member_type"),
        c.q("page_size"), c.q("page_token")))}),
    (_G + f"/{_ID}", {
        "GET": ApiRoute(lambda t, c: t.get_group(c.params["id"])),
        "PATCH": ApiRoute(lambda t, c: t.patch_group(c.params["id"], c.json_body()), GROUP_WRITE),
        "DELETE": ApiRoute(lambda t, c: t.delete_group(c.params["id"]), GROUP_WRITE),
    }),
]

# Ordered: the first path pattern that matches owns the path (then 405 for other methods).
# GET departments/:id is "special" rate control in the docs; tier 4 stands in for it.
ROUTES: list[tuple[str, dict[str, ApiRoute]]] = [
    (_D, {"POST": ApiRoute(lambda t, c: t.create_department(c.json_body(), c.ids,
                                                              c.q("client_token")))}),
    (_D + "/batch", {"GET": ApiRoute(lambda t, c: t.batch_departments(
        c.query.getlist("department_ids"), c.ids))}),
    (_D + "/parent", {"GET": ApiRoute(lambda t, c: t.department_parents(
        c.q("department_id") or "", c.ids, page_size=c.q("page_size"),
        page_token=c.q("page_token")))}),
    (_D + f"/{_ID}/children", {"GET": ApiRoute(_department_children)}),
    (_D + f"/{_ID}/update_department_id", {"PATCH": ApiRoute(
        lambda t, c: t.update_department_id(c.params["id"], c.json_body(), c.ids))}),
    (_D + f"/{_ID}", {
        "GET": ApiRoute(lambda t, c: t.get_department(c.params["id"], c.ids)),
        "PATCH": ApiRoute(lambda t, c: t.patch_department(c.params["id"], c.json_body(), c.ids)),
        "PUT": ApiRoute(lambda t, c: t.put_department(c.params["id"], c.json_body(), c.ids)),
        "DELETE": ApiRoute(lambda t, c: t.delete_department(c.params["id"], c.ids)),
    }),
    (_U, {"POST": ApiRoute(lambda t, c: t.create_user(c.json_body(), c.ids,
                                                        c.q("client_token")))}),
    (_U + "/find_by_department", {"GET": ApiRoute(lambda t, c: t.find_by_department(
        c.q("department_id"), c.ids, page_size=c.q("page_size"),
        page_token=c.q("page_token")))}),
    (_U + "/batch", {"GET": ApiRoute(lambda t, c: t.batch_users(c.query.getlist("user_ids"),
                                                                 c.ids))}),
    (_U + "/batch_get_id", {"POST": ApiRoute(lambda t, c: t.batch_get_id(c.json_body(),
                                                                           c.ids))}),
    (_U + f"/{_ID}/update_user_id", {"PATCH": ApiRoute(
        lambda t, c: t.update_user_id(c.params["id"], c.json_body(), c.ids), UPDATE_USER_ID)}),
    (_U + f"/{_ID}/resurrect", {"POST": ApiRoute(
        lambda t, c: t.resurrect_user(c.params["id"], c.json_body(optional=True), c.ids),
        RESURRECT)}),
    (_U + f"/{_ID}", {
        "GET": ApiRoute(lambda t, c: t.get_user(c.params["id"], c.ids)),
        "PATCH": ApiRoute(lambda t, c: t.patch_user(c.params["id"], c.json_body(), c.ids)),
        "DELETE": ApiRoute(lambda t, c: t.delete_user(c.params["id"],
                                                      c.json_body(optional=True), c.ids)),
    }),
    *(route for kind in (LEVEL, FAMILY) for route in _catalog_routes(kind)),
    # GET is 特殊频控 (special, unpublished) on the docs page: tier 4 stands in for it.
    ("/open-apis/contact/v3/employee_type_enums", {
        "GET": ApiRoute(lambda t, c: t.list_employee_types(c.q("page_size"), c.q("page_token"))),
        "POST": ApiRoute(lambda t, c: t.create_employee_type(c.json_body()),
                         EMPLOYEE_TYPE_CREATE)}),
    *_GROUP_ROUTES,
    ("/open-apis/contact/v3/custom_attrs", {"GET": ApiRoute(
        lambda t, c: t.list_custom_attrs(c.q("page_size"), c.q("page_token")))}),
    ("/open-apis/im/v1/messages", {"POST": ApiRoute(_send_message)}),
    # feishu-api-more.md §7 (avatar_key): standard tier.
    ("/open-apis/im/v1/images", {"POST": ApiRoute(lambda t, c: t.upload_image(
        c.body if isinstance(c.body, dict) else {}, bot_enabled=c.sandbox.config.bot_enabled))}),
    ("/open-apis/im/v1/chats", {"POST": ApiRoute(lambda t, c: t.create_chat(
        c.json_body(optional=True), c.ids, c.q("uuid")))}),
    (f"/open-apis/im/v1/chats/{_ID}", {"GET": ApiRoute(
        lambda t, c: introspection.get_chat(t, c.params["id"]))}),
    # feishu-api-more.md §8: standard tier for both.
    ("/open-apis/calendar/v4/timeoff_events", {"POST": ApiRoute(lambda t, c: t.create_timeoff(
        c.json_body(), c.ids, app_id=c.app_id, bot_enabled=c.sandbox.config.bot_enabled))}),
    (f"/open-apis/calendar/v4/timeoff_events/{_ID}", {"DELETE": ApiRoute(
        lambda t, c: t.delete_timeoff(c.params["id"], app_id=c.app_id))}),
    ("/open-apis/contact/v3/scopes", {"GET": ApiRoute(lambda t, c: introspection.contact_scopes(
        t, c.sandbox.config, c.ids, c.q("page_size"), c.q("page_token")))}),
    # 特殊频控 (special, unpublished) on the docs page: tier 4 stands in for it.
    ("/open-apis/application/v6/scopes", {"GET": ApiRoute(
        lambda t, c: introspection.app_scopes(c.sandbox.config))}),
]
_COMPILED = [(re.compile(f"^{pattern}$"), pattern, methods) for pattern, methods in ROUTES]
_USER_PATCH = (_U + f"/{_ID}", "PATCH")


def match_route(method: str, path: str) -> tuple[str, ApiRoute, dict[str, str]]:
    """``(pattern, route, path params)``, or ApiError 404 (99991201) / 405 (99991301)."""
    for regex, pattern, methods in _COMPILED:
        found = regex.match(path)
        if found is None:
            continue
        route = methods.get(method)
        if route is None:
            raise ApiError(99991301, f"method {method} is not allowed for {path}", 405)
        return pattern, route, found.groupdict()
    raise ApiError(99991201, f"path not found: {path}", 404)


# --------------------------------------------------------------------------- /open-apis


def multipart_form(content_type: str, raw: bytes) -> dict[str, str | bytes]:
    """A ``multipart/form-data`` body's fields: a file's content as bytes, text as str."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
    form: dict[str, str | bytes] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(data, bytes):
            form[name] = data if part.get_filename() else data.decode("utf-8", "replace")
    return form


def _query_for_log(query: QueryParams) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for key in query:
        values = query.getlist(key)
        out[key] = values[0] if len(values) == 1 else values
    return out


class OpenApi:
    """ASGI app for everything under ``/open-apis``."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        method, path = scope["method"], scope["path"]
        body: Any = None
        bad_body = False
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            body = multipart_form(kind, raw)  # the image upload (tenant.images)
        elif raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                bad_body = True
        entry = self._log(method, path, request.query_params, body, scope.get("x_tt_logid"))
        config = self.sandbox.config
        # The gateway checks the token and counts the call against the rate limits as it
        # arrives, as Feishu's does; the injected latency comes after. Counting after the
        # sleep would count the timer's jitter (a loop stall bunches many wake-ups), not
        # the client's spacing.
        admitted: tuple[str, ApiRoute, dict[str, str], str] | None = None
        reply: Reply | None = None
        if path != AUTH_PATH:
            try:
                pattern, route, params = match_route(method, path)
                with self.sandbox.lock:
                    app_id = self._authenticate(request.headers.get("authorization"))
                    if bad_body:
                        raise field_error("the request body is not valid JSON")
                    self._admit(pattern, method, route, app_id, body)
                admitted = (pattern, route, params, app_id)
            except ApiError as err:
                reply = error_reply(err)
        if config.latency_ms > 0:
            # The knob is read again while waiting: lowering it releases the calls already
            # held (a test holds a run open exactly as long as it needs, then lets it go).
            arrived = time.monotonic()
            for _ in itertools.count():  # polls the knob: an Event would need every setter
                left = config.latency_ms / 1000 - (time.monotonic() - arrived)
                if left <= 0:
                    break
                await asyncio.sleep(min(left, 0.05))

        fault: str | None = None
        try:
            if path == AUTH_PATH:
                if method != "POST":
                    raise ApiError(99991301, f"method {method} is not allowed for {path}", 405)
                reply = self._issue_token(body, bad_body)
            elif admitted is not None:
                pattern, route, params, app_id = admitted
                with self.sandbox.lock:
                    fault = self._draw_fault()
                    call = Call(self.sandbox, params, request.query_params, body, app_id)
                    if fault is None:
                        reply = self._run(route, call)
                    elif fault == "5xx":
                        status = self.sandbox.fault_rng.choice((500, 503))
                        text = "internal error" if status == 500 else "service unavailable"
                        reply = Reply(status, {"code": INTERNAL_ERROR, "msg": text, "data": {}})
                    elif method != "GET" and \
                            self.sandbox.fault_rng.random() < config.fault_after_apply:
                        self._run(route, call)  # applied, but the client never hears of it
                        entry["applied"] = True
        except ApiError as err:
            reply = error_reply(err)

        entry["fault"] = fault
        if fault == "timeout":
            await asyncio.sleep(self.sandbox.config.hang_seconds)
            reply = Reply(504, {"code": INTERNAL_ERROR, "msg": "gateway timeout", "data": {}})
        if fault == "drop":
            await _drop_connection(send)
            return
        assert reply is not None
        entry["status"] = reply.status
        entry["code"] = reply.payload.get("code")
        await json_response(reply)(scope, receive, send)

    def _log(self, method: str, path: str, query: QueryParams, body: Any,
             logid: str | None) -> JSON:
        logged = copy.deepcopy(body)
        if isinstance(logged, dict):  # a form's file is logged by its size
            logged = {k: f"<{len(v)} bytes>" if isinstance(v, bytes) else v
                      for k, v in logged.items()}
        if path == AUTH_PATH and isinstance(logged, dict) and "app_secret" in logged:
            logged["app_secret"] = MASK
        with self.sandbox.lock:
            log = self.sandbox.log
            entry: JSON = {"seq": len(log) + 1, "time": self.sandbox.clock.now(),
                           "method": method, "path": path, "query": _query_for_log(query),
                           "status": None, "code": None, "body": logged, "logid": logid,
                           "fault": None, "applied": False}
            log.append(entry)
            return entry

    def _issue_token(self, body: Any, bad_body: bool) -> Reply:
        config = self.sandbox.config
        if bad_body or not isinstance(body, dict) or not isinstance(body.get("app_id"), str) \
                or not isinstance(body.get("app_secret"), str):
            return Reply(400, {"code": 10003, "msg": "invalid param"})
        # /document/server-docs/api-call-guide/generic-error-code (feishu-api-more.md §1.10):
        # 10003 for an unknown app_id (as larksuite/cli's stub), 10015 for a wrong secret,
        # 10014 for a disabled app. UNCONFIRMED: the HTTP status (400 here).
        if body["app_id"] != config.app_id:
            return Reply(400, {"code": 10003, "msg": "invalid param"})
        if body["app_secret"] != config.app_secret:
            return Reply(400, {"code": 10015, "msg": "app secret invalid"})
        if config.app_disabled:
            return Reply(400, {"code": 10014, "msg": "app unauthorized"})
        with self.sandbox.lock:
            token, expire = self.sandbox.tokens.issue(config.app_id, config.token_ttl)
        return Reply(200, {"code": 0, "msg": "ok", "tenant_access_token": token,
                           "expire": expire})

    def _authenticate(self, header: str | None) -> str:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(99991661, "Missing access token for authorization. Please make a "
                                     "request with token attached.")
        app_id = self.sandbox.tokens.app_for(token.strip())
        if app_id is None:
            raise ApiError(99991663, "Invalid access token for authorization. Please make a "
                                     "request with token attached.")
        return app_id

    def _admit(self, pattern: str, method: str, route: ApiRoute, app_id: str,
               body: Any) -> None:
        sandbox, config = self.sandbox, self.sandbox.config
        if sandbox.burst > 0:
            sandbox.burst -= 1
            raise _rate_limited(1, 1, legacy=sandbox.burst_legacy)
        if not config.rate_limits:
            return
        key = f"{method} {pattern}"
        buckets: list[Bucket] = [((app_id, key), w) for w in route.windows]
        if (pattern, method) == _USER_PATCH and isinstance(body, dict) and \
                ("department_ids" in body or "is_frozen" in body):
            buckets += [((app_id, key + " department_ids|is_frozen"), w)
                        for w in USER_MOVE_OR_FREEZE]
        rejection = sandbox.limiter.try_acquire(buckets, config.rate_scale)
        if rejection is not None:
            raise _rate_limited(rejection.limit, rejection.reset)

    def _draw_fault(self) -> str | None:
        config = self.sandbox.config
        chances = (("5xx", config.fault_5xx), ("timeout", config.fault_timeout),
                   ("drop", config.fault_drop))
        if not any(p > 0 for _, p in chances):
            return None
        draw = self.sandbox.fault_rng.random()
        for name, probability in chances:
            if draw < probability:
                return name
            draw -= probability
        return None

    def _run(self, route: ApiRoute, call: Call) -> Reply:
        try:
            data = route.handler(self.sandbox.tenant, call)
        except ApiError as err:
            return error_reply(err)
        return Reply(200, {"code": 0, "msg": "success", "data": data})


def _rate_limited(limit: int, reset: int, *, legacy: bool = False) -> Refusal:
    headers = {"x-ogw-ratelimit-limit": str(limit), "x-ogw-ratelimit-reset": str(reset)}
    return Refusal(99991400, RATE_LIMITED_MSG, 400 if legacy else 429, headers)


async def _drop_connection(send: Send) -> None:
    """Start a response and stop mid-body: the server then closes the connection."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", b"64")]})
    await send({"type": "http.response.body", "body": b'{"code":0,', "more_body": True})


# --------------------------------------------------------------------------- /_sandbox


def _admin_reply(data: Any = None, status: int = 200, msg: str = "success") -> Response:
    code = 0 if status == 200 else status
    return json_response(Reply(status, {"code": code, "msg": msg,
                                        "data": {} if data is None else data}))


def _sandbox_of(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def _admin_body(request: Request) -> JSON:
    raw = await request.body()
    if not raw.strip():
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


AdminHandler = Callable[[Sandbox, Request, JSON], Any]


def _admin(handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an admin handler: bearer check (401), JSON body, ValueError/KeyError → 400/404."""

    async def endpoint(request: Request) -> Response:
        sandbox = _sandbox_of(request)
        expected = sandbox.config.effective_admin_token()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # Compared as bytes: header text is the raw bytes decoded as latin-1, and
        # compare_digest refuses non-ASCII str.
        given = token.strip().encode("latin-1")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given, expected.encode()):
            return _admin_reply(status=401, msg="admin bearer token required")
        try:
            body = await _admin_body(request)
            return _admin_reply(handler(sandbox, request, body))
        except KeyError as exc:
            return _admin_reply(status=404, msg=f"not found: {exc.args[0]}")
        except ValueError as exc:
            return _admin_reply(status=400, msg=str(exc))

    return endpoint


def _set_config(sandbox: Sandbox, _request: Request, body: JSON) -> JSON:
    sandbox.configure(**body)
    return sandbox.config.public_view()


def _clock(sandbox: Sandbox, _request: Request, body: JSON) -> JSON:
    advance = body.get("advance", 0)
    if isinstance(advance, bool) or not isinstance(advance, int | float):
        raise ValueError("advance must be a number of seconds")
    sandbox.advance_clock(float(advance))
    return {"offset": sandbox.clock.offset, "now": sandbox.clock.now()}


def _burst(sandbox: Sandbox, _request: Request, body: JSON) -> JSON:
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError("count must be a non-negative integer")
    with sandbox.lock:
        sandbox.burst = count
        sandbox.burst_legacy = bool(body.get("legacy_400", False))
    return {"count": count}


def _reachable(sandbox: Sandbox, request: Request, body: JSON) -> JSON:
    reachable = body.get("reachable", True)
    if not isinstance(reachable, bool):
        raise ValueError("reachable must be a boolean")
    with sandbox.lock:
        user = sandbox.tenant.set_reachable(request.path_params["user_id"], reachable)
    return {"open_id": user.open_id, "reachable": user.reachable}


def _join(sandbox: Sandbox, request: Request, _body: JSON) -> JSON:
    with sandbox.lock:
        user = sandbox.tenant.set_joined(request.path_params["user_id"])
    return {"open_id": user.open_id, "is_unjoin": user.unjoin}


def _revoke(sandbox: Sandbox, _request: Request, _body: JSON) -> None:
    with sandbox.lock:
        sandbox.tokens.revoke_all()


def _requests(sandbox: Sandbox, request: Request, _body: JSON) -> Any:
    if request.method == "DELETE":
        sandbox.clear_requests()
        return None
    return sandbox.requests()


ADMIN_ROUTES = [
    Route("/_sandbox/state", _admin(lambda s, r, b: s.state()), methods=["GET"]),
    Route("/_sandbox/reset", _admin(lambda s, r, b: s.reset()), methods=["POST"]),
    Route("/_sandbox/requests", _admin(_requests), methods=["GET", "DELETE"]),
    Route("/_sandbox/seed", _admin(lambda s, r, b: s.load(b)), methods=["POST"]),
    Route("/_sandbox/config", _admin(lambda s, r, b: s.config.public_view()), methods=["GET"]),
    Route("/_sandbox/config", _admin(_set_config), methods=["POST"]),
    Route("/_sandbox/revoke_tokens", _admin(_revoke), methods=["POST"]),
    Route("/_sandbox/clock", _admin(_clock), methods=["POST"]),
    Route("/_sandbox/ratelimit_burst", _admin(_burst), methods=["POST"]),
    Route("/_sandbox/users/{user_id}/reachable", _admin(_reachable), methods=["POST"]),
    Route("/_sandbox/users/{user_id}/join", _admin(_join), methods=["POST"]),
]


# --------------------------------------------------------------------------- assembly


class LogIdMiddleware:
    """Adds a unique ``X-Tt-Logid`` (exact casing) to every response; exposes it in the scope.

    Also the ``Date`` header, from the sandbox clock (as Feishu's gateway sends its own
    time; moving the clock is how tests make a skewed Feishu).
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 clock: SandboxClock | None = None) -> None:
        self.app = app
        self.clock = clock or SandboxClock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        logid = new_logid()
        scope["x_tt_logid"] = logid

        async def send_with_logid(message: Message) -> None:
            if message["type"] == "http.response.start":
                date = formatdate(self.clock.now(), usegmt=True).encode()
                headers = [*message.get("headers", []), (LOGID_HEADER, logid.encode()),
                           (b"Date", date)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_logid)


async def _not_found(request: Request, _exc: Exception) -> Response:
    return json_response(error_reply(ApiError(99991201, f"path not found: {request.url.path}",
                                              404)))


async def _method_not_allowed(request: Request, _exc: Exception) -> Response:
    return json_response(error_reply(ApiError(
        99991301, f"method {request.method} is not allowed for {request.url.path}", 405)))


def build_app(sandbox: Sandbox) -> Starlette:
    """The ASGI app around an existing :class:`Sandbox` runtime (``app.state.sandbox``)."""
    app = Starlette(
        routes=[Route("/open-apis/{rest:path}", OpenApi(sandbox)), *ADMIN_ROUTES],
        middleware=[Middleware(LogIdMiddleware, clock=sandbox.clock)],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.sandbox = sandbox
    return app


def create_app(config: SandboxConfig, *, seed_state: JSON | None = None) -> Starlette:
    """A fresh sandbox as a Starlette app (serve it with any ASGI server)."""
    return build_app(Sandbox(config, seed_state))
