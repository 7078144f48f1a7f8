"""Admin API, request log, state dump/seed, and the HTTP surface (404/405, headers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from orgsync.sandbox import SandboxConfig, SandboxServer

D = "/open-apis/contact/v3/departments"
U = "/open-apis/contact/v3/users"
CUSTOM = {"department_id_type": "department_id", "user_id_type": "user_id"}
ADMIN = {"Authorization": "Bearer sandbox-secret"}


def ok(reply: httpx.Response) -> Any:
    body = reply.json()
    assert (reply.status_code, body["code"]) == (200, 0), body
    return body["data"]


def populate(api: httpx.Client) -> None:
    ok(api.post(D, params=CUSTOM, json={"name": "Eng", "parent_department_id": "0",
                                        "department_id": "eng"}))
    ok(api.post(D, params=CUSTOM, json={"name": "Gone", "parent_department_id": "0",
                                        "department_id": "gone"}))
    ok(api.delete(f"{D}/gone", params=CUSTOM))
    for user_id, mobile in (("boss", "13000000001"), ("dev", "13000000002")):
        ok(api.post(U, params=CUSTOM, json={"user_id": user_id, "name": user_id,
                                            "mobile": mobile, "department_ids": ["eng"],
                                            "employee_type": 1}))
    ok(api.patch(f"{U}/dev", params=CUSTOM, json={"leader_user_id": "boss"}))
    ok(api.patch(f"{D}/eng", params=CUSTOM, json={"leader_user_id": "boss"}))


class TestAdminAuth:
    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                         {"Authorization": "sandbox-secret"}])
    def test_admin_needs_the_bearer_token(self, sandbox: SandboxServer,
                                          headers: dict[str, str]) -> None:
        """Without the admin bearer token every admin route answers 401 JSON."""
        reply = httpx.get(f"{sandbox.base_url}/_sandbox/state", headers=headers)
        assert reply.status_code == 401
        assert reply.headers["content-type"] == "application/json; charset=utf-8"
        assert reply.json()["code"] == 401

    @pytest.mark.parametrize("token", ["令牌-wrong", "sandbox-secret\u00e9"])
    def test_a_non_ascii_token_is_refused_like_any_wrong_one(self, sandbox: SandboxServer,
                                                              token: str) -> None:
        """A bearer token outside ASCII is a 401, not a 500 with a traceback."""
        reply = httpx.get(f"{sandbox.base_url}/_sandbox/state",
                          headers={"Authorization": f"Bearer {token}".encode()})
        assert reply.status_code == 401
        assert reply.json() == {"code": 401, "msg": "admin bearer token required", "data": {}}

    def test_a_non_ascii_admin_token_works_sent_as_utf8(self, sandbox: SandboxServer) -> None:
        """A configured non-ASCII admin token matches the same token sent as UTF-8 bytes."""
        sandbox.configure(admin_token="管理-令牌")
        url = f"{sandbox.base_url}/_sandbox/state"
        assert httpx.get(url, headers={"Authorization": "Bearer 管理-令牌".encode()}
                         ).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Bearer 管理-令".encode()}
                         ).status_code == 401

    def test_admin_token_knob(self, sandbox: SandboxServer) -> None:
        """admin_token replaces the app secret as the admin credential."""
        sandbox.configure(admin_token="adm")
        url = f"{sandbox.base_url}/_sandbox/state"
        assert httpx.get(url, headers=ADMIN).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer adm"}).status_code == 200


class TestState:
    def test_state_lists_everything(self, sandbox: SandboxServer,
                                    sandbox_api: httpx.Client) -> None:
        """GET /_sandbox/state has departments (with deleted), users, messages and chats."""
        populate(sandbox_api)
        state = ok(sandbox_api.get("/_sandbox/state", headers=ADMIN))
        assert [d["department_id"] for d in state["departments"]] == ["eng", "gone"]
        assert [d["status"]["is_deleted"] for d in state["departments"]] == [False, True]
        assert [u["user_id"] for u in state["users"]] == ["boss", "dev"]
        assert state["messages"] == []
        assert state["chats"] == []

    def test_state_round_trips_through_seed(self, sandbox: SandboxServer,
                                            sandbox_api: httpx.Client) -> None:
        """POST /_sandbox/seed with a dumped state restores exactly that state."""
        populate(sandbox_api)
        state = ok(sandbox_api.get("/_sandbox/state", headers=ADMIN))
        ok(sandbox_api.post("/_sandbox/reset", headers=ADMIN))
        assert ok(sandbox_api.get("/_sandbox/state", headers=ADMIN))["users"] == []
        ok(sandbox_api.post("/_sandbox/seed", json=state, headers=ADMIN))
        assert ok(sandbox_api.get("/_sandbox/state", headers=ADMIN)) == state

    def test_hand_written_seed_with_custom_ids(self, sandbox: SandboxServer,
                                               sandbox_api: httpx.Client) -> None:
        """A seed may name parents, leaders and memberships by custom id and omit open ids."""
        seed = {
            "departments": [
                {"department_id": "hq", "name": "HQ"},
                {"department_id": "eng", "name": "Eng", "parent_department_id": "hq",
                 "leader_user_id": "cto"}],
            "users": [
                {"user_id": "cto", "name": "CTO", "mobile": "13000000001",
                 "department_ids": ["eng"], "is_tenant_manager": True},
                {"user_id": "dev", "name": "Dev", "mobile": "13000000002",
                 "department_ids": ["eng"], "leader_user_id": "cto"}],
        }
        ok(sandbox_api.post("/_sandbox/seed", json=seed, headers=ADMIN))
        eng = ok(sandbox_api.get(f"{D}/eng", params=CUSTOM))["department"]
        assert (eng["parent_department_id"], eng["leader_user_id"], eng["member_count"]) == \
            ("hq", "cto", 2)
        dev = ok(sandbox_api.get(f"{U}/dev", params=CUSTOM))["user"]
        assert dev["leader_user_id"] == "cto"
        refused = sandbox_api.delete(f"{U}/cto", params=CUSTOM)
        assert refused.json()["code"] == 44037

    def test_bad_seed_is_400_and_leaves_an_empty_tenant(self, sandbox: SandboxServer,
                                                        sandbox_api: httpx.Client) -> None:
        """A seed with a dangling reference is refused with 400."""
        seed = {"departments": [{"department_id": "x", "name": "X",
                                 "parent_department_id": "missing"}]}
        reply = sandbox_api.post("/_sandbox/seed", json=seed, headers=ADMIN)
        assert (reply.status_code, reply.json()["code"]) == (400, 400)
        assert "missing" in reply.json()["msg"]
        assert list(sandbox.tenant.departments) == ["0"]

    def test_seed_file(self, tmp_path: Path) -> None:
        """SandboxServer(seed_file=...) starts with that state."""
        path = tmp_path / "seed.json"
        path.write_text(json.dumps({"departments": [{"department_id": "hq", "name": "HQ"}]}))
        with SandboxServer(SandboxConfig(), seed_file=path) as server:
            assert server.tenant.find_department("hq", "department_id") is not None


class TestRequestLog:
    def test_log_entries(self, sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
        """Every /open-apis call is logged with seq, method, path, query, status, code, body."""
        sandbox_api.post(D, params={"client_token": "c1"},
                         json={"name": "X", "parent_department_id": "0"})
        sandbox_api.get(f"{D}/nope")
        log = ok(sandbox_api.get("/_sandbox/requests", headers=ADMIN))
        assert [e["seq"] for e in log] == [1, 2, 3]
        token_call, create, get = log
        assert token_call["body"] == {"app_id": "cli_sandbox", "app_secret": "***"}
        assert (create["method"], create["path"], create["query"], create["status"],
                create["code"]) == ("POST", D, {"client_token": "c1"}, 200, 0)
        assert create["body"] == {"name": "X", "parent_department_id": "0"}
        assert (get["status"], get["code"], get["body"]) == (400, 40015, None)
        assert sandbox.requests() == log

    def test_repeated_query_keys_are_lists(self, sandbox: SandboxServer,
                                           sandbox_api: httpx.Client) -> None:
        """Repeated query keys show as lists in the log."""
        sandbox_api.get(f"{D}/batch", params=[("department_ids", "a"), ("department_ids", "b")])
        assert sandbox.requests()[-1]["query"] == {"department_ids": ["a", "b"]}

    def test_delete_clears_the_log(self, sandbox: SandboxServer,
                                   sandbox_api: httpx.Client) -> None:
        """DELETE /_sandbox/requests empties the log; admin calls are not logged."""
        ok(sandbox_api.delete("/_sandbox/requests", headers=ADMIN))
        assert ok(sandbox_api.get("/_sandbox/requests", headers=ADMIN)) == []


class TestAdminKnobs:
    def test_config_endpoint(self, sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
        """POST /_sandbox/config changes knobs; secrets are masked; unknown knobs → 400."""
        view = ok(sandbox_api.post("/_sandbox/config", json={"latency_ms": 5},
                                   headers=ADMIN))
        assert (view["latency_ms"], view["app_secret"]) == (5.0, "***")
        assert sandbox.config.latency_ms == 5.0
        bad = sandbox_api.post("/_sandbox/config", json={"nope": 1}, headers=ADMIN)
        assert bad.status_code == 400
        bad = sandbox_api.post("/_sandbox/config", json={"rate_limits": "yes"}, headers=ADMIN)
        assert bad.status_code == 400

    def test_clock_endpoint(self, sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
        """POST /_sandbox/clock advances the sandbox clock."""
        data = ok(sandbox_api.post("/_sandbox/clock", json={"advance": 3600}, headers=ADMIN))
        assert data["offset"] == 3600
        assert sandbox.sandbox.clock.offset == 3600

    def test_join_endpoint(self, sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
        """POST /_sandbox/users/{id}/join activates an unjoined user; unknown ids → 404."""
        sandbox.configure(users_unjoined=True)
        populate_user = {"user_id": "u", "name": "U", "mobile": "13000000009",
                         "department_ids": ["0"], "employee_type": 1}
        ok(sandbox_api.post(U, params=CUSTOM, json=populate_user))
        ok(sandbox_api.post("/_sandbox/users/u/join", headers=ADMIN))
        ok(sandbox_api.patch(f"{U}/u", params=CUSTOM, json={"name": "V"}))
        missing = sandbox_api.post("/_sandbox/users/ghost/join", headers=ADMIN)
        assert missing.status_code == 404


class TestHttpSurface:
    @pytest.mark.parametrize(("method", "path", "status", "code"), [
        ("GET", "/open-apis/contact/v3/nothing", 404, 99991201),
        ("GET", "/elsewhere", 404, 99991201),
        ("DELETE", "/open-apis/contact/v3/users", 405, 99991301),
        ("GET", "/open-apis/auth/v3/tenant_access_token/internal", 405, 99991301),
        ("PUT", "/_sandbox/state", 405, 99991301),
    ])
    def test_unknown_paths_and_methods_are_json(self, sandbox_api: httpx.Client, method: str,
                                                path: str, status: int, code: int) -> None:
        """404 and 405 are JSON envelopes with 99991201 / 99991301."""
        reply = sandbox_api.request(method, path)
        assert (reply.status_code, reply.json()["code"]) == (status, code)
        assert reply.headers["content-type"] == "application/json; charset=utf-8"

    def test_logid_header_exact_casing_and_unique(self, sandbox_api: httpx.Client) -> None:
        """Every response has X-Tt-Logid spelled exactly so, unique per request."""
        replies = [sandbox_api.get(f"{D}/0"), sandbox_api.get("/nowhere")]
        logids = []
        for reply in replies:
            raw_names = [name for name, _ in reply.headers.raw]
            assert b"X-Tt-Logid" in raw_names
            logids.append(reply.headers["x-tt-logid"])
        assert len(set(logids)) == 2

    def test_invalid_json_body(self, sandbox_api: httpx.Client) -> None:
        """A body that is not JSON → 99992402."""
        reply = sandbox_api.post(D, content=b"{oops", headers={"content-type":
                                                                "application/json"})
        assert (reply.status_code, reply.json()["code"]) == (400, 99992402)
