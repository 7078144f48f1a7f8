"""IM: sending messages (validation, receivers, uuid dedup) and creating chats."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from orgsync.sandbox import SandboxServer

M = "/open-apis/im/v1/messages"
CUSTOM = {"department_id_type": "department_id", "user_id_type": "user_id"}
ADMIN = {"Authorization": "Bearer sandbox-secret"}


def ok(reply: httpx.Response) -> Any:
    body = reply.json()
    assert (reply.status_code, body["code"]) == (200, 0), body
    return body["data"]


def code_of(reply: httpx.Response) -> tuple[int, int]:
    return reply.status_code, reply.json()["code"]


def text(receive_id: str, message: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"receive_id": receive_id, "msg_type": "text",
            "content": json.dumps({"text": message}), **extra}


@pytest.fixture
def alice(sandbox_api: httpx.Client) -> dict[str, Any]:
    """A user alice@example.com (user_id alice) in department d1."""
    ok(sandbox_api.post("/open-apis/contact/v3/departments", params=CUSTOM,
                        json={"name": "D1", "parent_department_id": "0", "department_id": "d1"}))
    body = {"user_id": "alice", "name": "Alice", "mobile": "13000000001",
            "email": "alice@example.com", "department_ids": ["d1"], "employee_type": 1}
    return ok(sandbox_api.post("/open-apis/contact/v3/users", params=CUSTOM,  # type: ignore[no-any-return]
                               json=body))["user"]


@pytest.mark.parametrize("kind", ["open_id", "union_id", "user_id", "email"])
def test_send_to_each_receive_id_type(sandbox: SandboxServer, sandbox_api: httpx.Client,
                                      alice: dict[str, Any], kind: str) -> None:
    """A text message reaches the user by any receive_id_type and is stored."""
    receive_id = alice[kind] if kind != "email" else "alice@example.com"
    data = ok(sandbox_api.post(M, params={"receive_id_type": kind}, json=text(receive_id)))
    assert data["message_id"].startswith("om_")
    assert data["msg_type"] == "text"
    assert data["body"] == {"content": json.dumps({"text": "hi"})}
    assert data["create_time"].isdigit()
    assert data["sender"]["sender_type"] == "app"
    stored = sandbox.tenant.messages
    assert [(m["receiver"], m["msg_type"]) for m in stored] == [(alice["open_id"], "text")]


def test_uuid_dedup_returns_first_message(sandbox: SandboxServer, sandbox_api: httpx.Client,
                                          alice: dict[str, Any]) -> None:
    """The same uuid returns the first message and stores nothing new."""
    params = {"receive_id_type": "user_id"}
    first = ok(sandbox_api.post(M, params=params, json=text("alice", "one", uuid="u-1")))
    again = ok(sandbox_api.post(M, params=params, json=text("alice", "two", uuid="u-1")))
    assert again == first
    assert len(sandbox.tenant.messages) == 1
    other = ok(sandbox_api.post(M, params=params, json=text("alice", "two", uuid="u-2")))
    assert other["message_id"] != first["message_id"]


@pytest.mark.parametrize(("params", "body"), [
    ({}, text("alice")),
    ({"receive_id_type": "nope"}, text("alice")),
    ({"receive_id_type": "user_id"}, {**text("alice"), "msg_type": "fax"}),
    ({"receive_id_type": "user_id"}, {**text("alice"), "content": {"text": "not a string"}}),
    ({"receive_id_type": "user_id"}, {**text("alice"), "content": "{not json"}),
    ({"receive_id_type": "user_id"}, {**text("alice"), "uuid": "x" * 51}),
])
def test_invalid_messages_are_230001(sandbox_api: httpx.Client, alice: dict[str, Any],
                                     params: dict[str, str], body: dict[str, Any]) -> None:
    """Bad receive_id_type, msg_type, content or uuid → 230001 (HTTP 400)."""
    assert code_of(sandbox_api.post(M, params=params, json=body)) == (400, 230001)


def test_unknown_resigned_and_unreachable_receivers(sandbox: SandboxServer,
                                                    sandbox_api: httpx.Client,
                                                    alice: dict[str, Any]) -> None:
    """Unknown → 230034, unreachable (admin knob) → 230013, resigned → 230029."""
    params = {"receive_id_type": "user_id"}
    assert code_of(sandbox_api.post(M, params=params, json=text("ghost"))) == (400, 230034)
    reply = sandbox_api.post("/_sandbox/users/alice/reachable", json={"reachable": False},
                             headers=ADMIN)
    assert reply.json()["code"] == 0
    assert code_of(sandbox_api.post(M, params=params, json=text("alice"))) == (400, 230013)
    ok(sandbox_api.delete("/open-apis/contact/v3/users/alice", params=CUSTOM))
    assert code_of(sandbox_api.post(M, params=params, json=text("alice"))) == (400, 230029)
    assert sandbox.tenant.messages == []


def test_per_target_limit_is_230020(sandbox: SandboxServer, sandbox_api: httpx.Client,
                                    alice: dict[str, Any]) -> None:
    """The 6th message to one user within a second → 230020 with HTTP 400."""
    params = {"receive_id_type": "user_id"}
    for _ in range(5):
        ok(sandbox_api.post(M, params=params, json=text("alice")))
    assert code_of(sandbox_api.post(M, params=params, json=text("alice"))) == (400, 230020)
    assert len(sandbox.tenant.messages) == 5


def test_create_chat_and_message_it(sandbox_api: httpx.Client, alice: dict[str, Any]) -> None:
    """A created chat gets an oc_ id, dedups on uuid + owner, and can receive messages."""
    body = {"name": "HR", "owner_id": "alice", "user_id_list": ["alice"]}
    params = {"user_id_type": "user_id", "uuid": "chat-1"}
    chat = ok(sandbox_api.post("/open-apis/im/v1/chats", params=params, json=body))
    assert chat["chat_id"].startswith("oc_")
    assert (chat["name"], chat["owner_id"], chat["owner_id_type"]) == ("HR", "alice", "user_id")
    again = ok(sandbox_api.post("/open-apis/im/v1/chats", params=params, json=body))
    assert again["chat_id"] == chat["chat_id"]
    sent = ok(sandbox_api.post(M, params={"receive_id_type": "chat_id"},
                               json=text(chat["chat_id"])))
    assert sent["chat_id"] == chat["chat_id"]
    bad = sandbox_api.post("/open-apis/im/v1/chats", params={"user_id_type": "user_id"},
                           json={"name": "x", "user_id_list": ["ghost"]})
    assert code_of(bad) == (400, 232043)
