"""Envelope mapping, retry policy and request shapes, with scripted HTTP answers.

The client under test is the real one; only the network is replaced by
``httpx.MockTransport`` and time by :class:`tests.feishu.VirtualClock`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from structlog.testing import capture_logs

from orgsync.errors import FeishuError, FeishuRetryable, FeishuTerminal
from orgsync.feishu import FeishuClient, FeishuSettings
from orgsync.feishu.ratelimit import SAFETY_MARGIN
from orgsync.feishu.retry import BACKOFF_CAP, backoff, parse_envelope
from tests.feishu import VirtualClock

T = TypeVar("T")
SECRET = "app-secret-xyz"
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
USERS = "/open-apis/contact/v3/users"


def _response(status: int, body: Any = None, **headers: str) -> httpx.Response:
    if body is None:
        body = {"code": 0, "msg": "success", "data": {}}
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers={"content-type": "text/html", **headers})
    return httpx.Response(status, json=body, headers=headers)


def _ok(data: dict[str, Any]) -> httpx.Response:
    return _response(200, {"code": 0, "msg": "success", "data": data})


class Script:
    """A fake Feishu: answers each business path from a queue, then with ``default``."""

    def __init__(self, **queues: list[httpx.Response | Exception]) -> None:
        self.queues = {path.replace("__", "/"): list(q) for path, q in queues.items()}
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0
        self.default = _ok({})

    def add(self, path: str, *answers: httpx.Response | Exception) -> Script:
        self.queues.setdefault(path, []).extend(answers)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == TOKEN_PATH:
            self.tokens_issued += 1
            return _response(200, {"code": 0, "msg": "ok", "expire": 7200,
                                   "tenant_access_token": f"t-{self.tokens_issued}"})
        self.requests.append(request)
        queue = self.queues.get(request.url.path)
        answer = queue.pop(0) if queue else self.default
        if isinstance(answer, Exception):
            raise answer
        return answer

    def business(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


def _run(script: Script, call: Callable[[FeishuClient], Awaitable[T]], *,
         max_retries: int = 6, clock: VirtualClock | None = None,
         rate_limits: bool = True) -> tuple[T, FeishuClient, VirtualClock]:
    clock = clock or VirtualClock()
    settings = FeishuSettings(app_id="cli_t", app_secret=SECRET, base_url="http://feishu.test",
                              max_retries=max_retries, rate_limits=rate_limits)
    client = FeishuClient(settings, transport=httpx.MockTransport(script), clock=clock)

    async def main() -> T:
        async with client:
            return await call(client)

    return asyncio.run(clock.run(main())), client, clock


def _user_body() -> dict[str, Any]:
    return {"user_id": "E1", "name": "Ann", "mobile": "+8613800000001",
            "department_ids": ["D1"], "employee_type": 1}


class TestParseEnvelope:
    """HTTP responses to data or typed errors."""

    @pytest.mark.parametrize(("status", "body", "cls", "code"), [
        (400, {"code": 41001, "msg": "mobile already exists"}, FeishuTerminal, 41001),
        (200, {"code": 40015, "msg": "department not exist"}, FeishuTerminal, 40015),
        (429, {"code": 99991400, "msg": "request trigger frequency limit"}, FeishuRetryable,
         99991400),
        (400, {"code": 99991400, "msg": "request trigger frequency limit"}, FeishuRetryable,
         99991400),
        (400, {"code": 230020, "msg": "frequency limit"}, FeishuRetryable, 230020),
        (400, {"code": 232019, "msg": "rate limited"}, FeishuRetryable, 232019),
        (400, {"code": 43024, "msg": "tenant lock failed"}, FeishuRetryable, 43024),
        (400, {"code": 43030, "msg": "update lock"}, FeishuRetryable, 43030),
        (400, {"code": 44025, "msg": "update user lock error"}, FeishuRetryable, 44025),
        (400, {"code": 40003, "msg": "internal error"}, FeishuRetryable, 40003),
        (503, {"code": 1, "msg": "unavailable"}, FeishuRetryable, 1),
        (502, "<html>Bad Gateway</html>", FeishuRetryable, -1),
        (404, "<html>Not Found</html>", FeishuTerminal, -1),
        (400, {"code": 99991663, "msg": "Invalid access token"}, FeishuTerminal, 99991663),
    ])
    def test_error_classification(self, status: int, body: Any, cls: type[FeishuError],
                                  code: int) -> None:
        """code != 0 (or no envelope) raises the documented class with the code."""
        response = _response(status, body, **{"X-Tt-Logid": "L1"})
        with pytest.raises(FeishuError) as caught:
            parse_envelope(response, "GET /x/:id")
        error = caught.value
        assert type(error) is cls
        assert (error.code, error.http_status, error.log_id, error.endpoint) == (
            code, status, "L1", "GET /x/:id")

    def test_rate_limit_carries_reset_header(self) -> None:
        """retry_after comes from x-ogw-ratelimit-reset, 1 s when absent."""
        body = {"code": 99991400, "msg": "request trigger frequency limit"}
        with pytest.raises(FeishuRetryable) as caught:
            parse_envelope(_response(429, body, **{"x-ogw-ratelimit-reset": "3"}), "e")
        assert caught.value.retry_after == 3.0
        with pytest.raises(FeishuRetryable) as caught:
            parse_envelope(_response(429, body), "e")
        assert caught.value.retry_after == 1.0

    def test_non_json_message_names_status_and_type(self) -> None:
        """A non-envelope body yields a clear message without echoing the body."""
        with pytest.raises(FeishuTerminal) as caught:
            parse_envelope(_response(404, "<html>secret page</html>"), "e")
        assert caught.value.msg == "response is not a Feishu JSON envelope (HTTP 404, text/html)"

    def test_backoff_doubles_from_200ms_to_a_10s_cap(self) -> None:
        """Retry n waits within [½, 1] × min(10, 0.2 × 2^(n-1)) seconds."""
        rng = random.Random(1)
        for retry in range(1, 12):
            step = min(BACKOFF_CAP, 0.2 * 2 ** (retry - 1))
            assert step / 2 <= backoff(retry, rng) <= step


class TestRetries:
    """The client's retry loop."""

    def test_create_retries_5xx_with_one_client_token(self) -> None:
        """Two 503s then success: three attempts, all with the same client_token."""
        script = Script().add(USERS, _response(503, {"code": 1, "msg": "busy"}),
                              _response(500, "<html>oops</html>"),
                              _ok({"user": {"user_id": "E1"}}))
        user, client, _ = _run(script, lambda c: c.create_user(_user_body()))
        assert user == {"user_id": "E1"}
        tokens = {r.url.params["client_token"] for r in script.business(USERS)}
        assert len(tokens) == 1
        assert len(script.business(USERS)) == 3
        assert client.stats.retries["POST /open-apis/contact/v3/users"] == 2

    def test_caller_client_token_is_sent(self) -> None:
        """A caller's client_token goes out unchanged with the id types from settings."""
        script = Script()
        _run(script, lambda c: c.create_department({"name": "R&D", "parent_department_id": "0"},
                                                   client_token="ct-1"))
        params = script.requests[0].url.params
        sent = (params["client_token"], params["user_id_type"], params["department_id_type"])
        assert sent == ("ct-1", "user_id", "department_id")

    def test_rate_limit_waits_reset_and_holds_the_endpoint(self) -> None:
        """A 429 with reset 2 s is retried after exactly 2 s; the stats name its form."""
        limited = _response(429, {"code": 99991400, "msg": "request trigger frequency limit"},
                            **{"x-ogw-ratelimit-reset": "2", "x-ogw-ratelimit-limit": "50"})
        legacy = _response(400, {"code": 99991400, "msg": "request trigger frequency limit"})
        script = Script().add(USERS + "/E1", limited, legacy)
        clock = VirtualClock()
        start = clock.now()
        _, client, _ = _run(script, lambda c: c.get_user("E1"), clock=clock)
        assert clock.slept[:2] == [2.0, 1.0]
        assert round(clock.now() - start, 6) == 3.0
        assert dict(client.stats.rate_limited) == {"http_429": 1, "http_400": 1}

    def test_exhausted_retries_raise_retryable_with_context(self) -> None:
        """After max_retries the last error is raised with endpoint template and log id."""
        fail = _response(503, {"code": 2, "msg": "unavailable"}, **{"X-Tt-Logid": "LOG9"})
        script = Script().add(USERS + "/E1", *[fail] * 5)
        with pytest.raises(FeishuRetryable) as caught:
            _run(script, lambda c: c.patch_user("E1", {"name": "B"}), max_retries=2)
        error = caught.value
        context = (error.code, error.http_status, error.log_id, error.endpoint)
        assert context == (2, 503, "LOG9", "PATCH /open-apis/contact/v3/users/:user_id")
        assert len(script.business(USERS + "/E1")) == 3

    def test_terminal_error_is_not_retried(self) -> None:
        """41001 is raised at once: one attempt."""
        script = Script().add(USERS, _response(400, {"code": 41001, "msg": "mobile exists"}))
        with pytest.raises(FeishuTerminal) as caught:
            _run(script, lambda c: c.create_user(_user_body()))
        assert caught.value.code == 41001
        assert len(script.business(USERS)) == 1

    def test_transport_errors_are_retried(self) -> None:
        """A timeout and a dropped connection are retried; the call then succeeds."""
        request = httpx.Request("GET", "http://feishu.test")
        script = Script().add(USERS + "/E1", httpx.ReadTimeout("slow", request=request),
                              httpx.RemoteProtocolError("dropped", request=request),
                              _ok({"user": {"user_id": "E1"}}))
        user, client, _ = _run(script, lambda c: c.get_user("E1"))
        assert user["user_id"] == "E1"
        assert client.stats.failures[-1] == 2

    def test_invalid_token_is_refetched_and_replayed_once(self) -> None:
        """99991663 triggers one new token and one replay, outside the retry budget."""
        invalid = _response(400, {"code": 99991663, "msg": "Invalid access token"})
        script = Script().add(USERS + "/E1", invalid, _ok({"user": {"user_id": "E1"}}))
        _, client, _ = _run(script, lambda c: c.get_user("E1"), max_retries=0)
        auth = [r.headers["authorization"] for r in script.business(USERS + "/E1")]
        assert auth == ["Bearer t-1", "Bearer t-2"]
        assert client.stats.token_replays == 1
        assert client.stats.token_fetches == 2

    def test_token_revoked_again_is_refetched_within_the_retry_budget(self) -> None:
        """A replay that meets 99991663 again fetches another token, spending one retry."""
        invalid = _response(400, {"code": 99991663, "msg": "Invalid access token"})
        script = Script().add(USERS + "/E1", invalid, invalid, _ok({"user": {"user_id": "E1"}}))
        user, client, _ = _run(script, lambda c: c.get_user("E1"), max_retries=1)
        assert user["user_id"] == "E1"
        auth = [r.headers["authorization"] for r in script.business(USERS + "/E1")]
        assert auth == ["Bearer t-1", "Bearer t-2", "Bearer t-3"]
        assert (client.stats.token_replays,
                client.stats.retries["GET /open-apis/contact/v3/users/:user_id"]) == (2, 1)

    def test_invalid_token_beyond_the_retry_budget_is_terminal(self) -> None:
        """With the budget spent, 99991663 is raised."""
        invalid = _response(400, {"code": 99991663, "msg": "Invalid access token"})
        script = Script().add(USERS + "/E1", invalid, invalid, invalid)
        with pytest.raises(FeishuTerminal) as caught:
            _run(script, lambda c: c.get_user("E1"), max_retries=1)
        assert caught.value.code == 99991663
        assert len(script.business(USERS + "/E1")) == 3

    def test_resurrect_after_unknown_outcome_accepts_not_resigned(self) -> None:
        """A 500 then 44033 (already active) means the first attempt worked."""
        path = USERS + "/E1/resurrect"
        script = Script().add(path, _response(500, {"code": 3, "msg": "oops"}),
                              _response(400, {"code": 44033, "msg": "user not resigned"}))
        _run(script, lambda c: c.resurrect_user("E1", [{"department_id": "D1"}]))
        body = json.loads(script.business(path)[0].content)
        assert body == {"departments": [{"department_id": "D1"}]}

    def test_resurrect_not_resigned_first_time_is_terminal(self) -> None:
        """44033 on the first attempt is a genuine error."""
        path = USERS + "/E1/resurrect"
        script = Script().add(path, _response(400, {"code": 44033, "msg": "user not resigned"}))
        with pytest.raises(FeishuTerminal):
            _run(script, lambda c: c.resurrect_user("E1", [{"department_id": "D1"}]))

    def test_logs_hold_no_secret_token_or_body(self) -> None:
        """Retry and error logs name endpoint and code only."""
        script = Script().add(USERS, _response(503, {"code": 5, "msg": "busy"}),
                              _response(400, {"code": 41001, "msg": "mobile exists"}))
        with capture_logs() as logs, pytest.raises(FeishuTerminal):
            _run(script, lambda c: c.create_user(_user_body()))
        text = repr(logs)
        assert [e["event"] for e in logs if e["event"].startswith("feishu.retry")] == [
            "feishu.retry"]
        for secret in (SECRET, "t-1", "+8613800000001", "Ann"):
            assert secret not in text


class TestRequestShapes:
    """Bodies, params, paging and chunking."""

    def test_patch_with_department_ids_is_paced_to_one_per_second(self) -> None:
        """Three department moves go out 1 + margin apart; a plain patch only keeps its pace."""
        script = Script()
        clock = VirtualClock()
        start = clock.now()
        sent: list[tuple[str, float]] = []

        async def calls(c: FeishuClient) -> None:
            async def patch(uid: str, body: dict[str, Any]) -> None:
                await c.patch_user(uid, body)
                sent.append((uid, round(clock.now() - start, 6)))

            await asyncio.gather(patch("A", {"department_ids": ["D2"]}),
                                 patch("B", {"is_frozen": True}),
                                 patch("C", {"department_ids": ["D3"]}),
                                 patch("D", {"name": "x"}))

        _run(script, calls, clock=clock)
        m = SAFETY_MARGIN
        assert dict(sent) == {"A": 0.0, "B": round(1 + m, 6), "C": round(2 + 2 * m, 6),
                              "D": 0.021}

    def test_children_pages_until_has_more_is_false(self) -> None:
        """iter_children follows page_token and sends fetch_child in lower case."""
        path = "/open-apis/contact/v3/departments/0/children"
        script = Script().add(
            path, _ok({"has_more": True, "page_token": "p2", "items": [{"department_id": "A"}]}),
            _ok({"has_more": False, "items": [{"department_id": "B"}]}))

        async def collect(c: FeishuClient) -> list[str]:
            return [d["department_id"] async for d in c.iter_children(fetch_child=True)]

        ids, _, _ = _run(script, collect)
        assert ids == ["A", "B"]
        params = [r.url.params for r in script.business(path)]
        assert [p["fetch_child"] for p in params] == ["true", "true"]
        assert [p.get("page_token") for p in params] == [None, "p2"]

    def test_batch_get_ids_chunks_by_fifty(self) -> None:
        """120 emails and 30 mobiles go out as three calls of at most 50 each."""
        path = USERS + "/batch_get_id"
        script = Script()
        script.default = _ok({"user_list": [{"user_id": "x"}]})
        emails = [f"u{i}@example.com" for i in range(120)]
        mobiles = [f"+86138000{i:05d}" for i in range(30)]
        result, _, _ = _run(script, lambda c: c.batch_get_user_ids(emails=emails,
                                                                     mobiles=mobiles))
        bodies = [json.loads(r.content) for r in script.business(path)]
        sizes = [(len(b.get("emails", [])), len(b.get("mobiles", []))) for b in bodies]
        assert sizes == [(50, 30), (50, 0), (20, 0)]
        assert len(result) == 3

    def test_delete_user_sends_handover_body(self) -> None:
        """delete_user puts the acceptors in the DELETE body."""
        script = Script()
        handover = {"docs_acceptor_user_id": "M1"}
        _run(script, lambda c: c.delete_user("E1", handover))
        request = script.requests[0]
        assert ("DELETE", handover) == (request.method, json.loads(request.content))

    def test_send_message_serializes_content_and_keeps_uuid_across_retries(self) -> None:
        """A mapping content becomes a JSON string; a generated uuid is reused on retry."""
        path = "/open-apis/im/v1/messages"
        script = Script().add(path, _response(400, {"code": 230020, "msg": "limit"}),
                              _ok({"message_id": "om_1"}))
        message, client, _ = _run(script, lambda c: c.send_message(
            receive_id_type="user_id", receive_id="E1", msg_type="text",
            content={"text": "你好"}))
        bodies = [json.loads(r.content) for r in script.business(path)]
        assert message["message_id"] == "om_1"
        assert json.loads(bodies[0]["content"]) == {"text": "你好"}
        assert bodies[0]["uuid"] == bodies[1]["uuid"]
        assert dict(client.stats.rate_limited) == {"im_230020": 1}
        assert script.business(path)[0].url.params["receive_id_type"] == "user_id"
