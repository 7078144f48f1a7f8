"""tenant_access_token issuance and token checks on business APIs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orgsync.sandbox import SandboxServer

TOKEN = "/open-apis/auth/v3/tenant_access_token/internal"
CREDENTIALS = {"app_id": "cli_sandbox", "app_secret": "sandbox-secret"}


@pytest.fixture
def client(sandbox: SandboxServer) -> httpx.Client:
    """A plain client without any token; tokens issued by earlier tests are revoked."""
    sandbox.revoke_tokens()
    return httpx.Client(base_url=sandbox.base_url, timeout=10)


def token(client: httpx.Client) -> dict[str, object]:
    reply = client.post(TOKEN, json=CREDENTIALS)
    assert reply.status_code == 200
    return reply.json()  # type: ignore[no-any-return]


def get_root(client: httpx.Client, tok: object) -> httpx.Response:
    return client.get("/open-apis/contact/v3/departments/0",
                      headers={"Authorization": f"Bearer {tok}"})


def test_token_response_is_flat(client: httpx.Client) -> None:
    """The token call answers flat {code, msg, tenant_access_token, expire} with a t- token."""
    body = token(client)
    assert set(body) == {"code", "msg", "tenant_access_token", "expire"}
    assert body["code"] == 0
    assert str(body["tenant_access_token"]).startswith("t-")
    assert body["expire"] == 7200


def test_body_is_parsed_without_content_type(client: httpx.Client) -> None:
    """The SDK sends the token body with no Content-Type; it must still be read as JSON."""
    reply = client.post(TOKEN, content=b'{"app_id":"cli_sandbox","app_secret":"sandbox-secret"}')
    assert reply.json()["code"] == 0


def test_same_token_while_30_minutes_remain(sandbox: SandboxServer,
                                            client: httpx.Client) -> None:
    """With ≥ 1800 s left the same token comes back with a smaller expire."""
    first = token(client)
    sandbox.advance_clock(7200 - 1801)  # 1801 s left, minus the real time between calls
    again = token(client)
    assert again["tenant_access_token"] == first["tenant_access_token"]
    assert again["expire"] == 1800


def test_new_token_below_30_minutes_old_stays_valid(sandbox: SandboxServer,
                                                    client: httpx.Client) -> None:
    """Below 1800 s a new token is minted; the old one works until it expires."""
    first = token(client)
    sandbox.advance_clock(7200 - 1799)
    second = token(client)
    assert second["tenant_access_token"] != first["tenant_access_token"]
    assert second["expire"] == 7200
    assert get_root(client, first["tenant_access_token"]).json()["code"] == 0
    sandbox.advance_clock(1800)
    expired = get_root(client, first["tenant_access_token"])
    assert (expired.status_code, expired.json()["code"]) == (400, 99991663)
    assert get_root(client, second["tenant_access_token"]).json()["code"] == 0


def test_token_ttl_knob(sandbox: SandboxServer, client: httpx.Client) -> None:
    """token_ttl sets the lifetime of new tokens."""
    sandbox.configure(token_ttl=60)
    assert token(client)["expire"] == 60


@pytest.mark.parametrize(("credentials", "answer"), [
    ({"app_id": "cli_sandbox", "app_secret": "wrong"},
     {"code": 10015, "msg": "app secret invalid"}),
    ({"app_id": "cli_other", "app_secret": "sandbox-secret"},
     {"code": 10003, "msg": "invalid param"}),
])
def test_wrong_credentials(client: httpx.Client, credentials: dict[str, str],
                           answer: dict[str, Any]) -> None:
    """A wrong secret → 10015, an unknown app id → 10003 (feishu-api-more.md §1.10), HTTP 400."""
    reply = client.post(TOKEN, json=credentials)
    assert (reply.status_code, reply.json()) == (400, answer)


def test_malformed_token_request(client: httpx.Client) -> None:
    """A body without credentials → 10003."""
    reply = client.post(TOKEN, content=b"nope")
    assert (reply.status_code, reply.json()["code"]) == (400, 10003)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "t-abc"])
def test_missing_or_malformed_authorization(client: httpx.Client, header: str | None) -> None:
    """No usable Authorization header → 99991661 (HTTP 400)."""
    headers = {"Authorization": header} if header is not None else {}
    reply = client.get("/open-apis/contact/v3/departments/0", headers=headers)
    assert (reply.status_code, reply.json()["code"]) == (400, 99991661)


def test_unknown_token(client: httpx.Client) -> None:
    """A token the sandbox never issued → 99991663 (HTTP 400)."""
    reply = get_root(client, "t-unknown")
    assert (reply.status_code, reply.json()["code"]) == (400, 99991663)


def test_revoked_tokens(sandbox: SandboxServer, client: httpx.Client) -> None:
    """After /_sandbox/revoke_tokens the old token → 99991663 and a new one is issued."""
    old = token(client)["tenant_access_token"]
    reply = client.post("/_sandbox/revoke_tokens",
                        headers={"Authorization": "Bearer sandbox-secret"})
    assert reply.json()["code"] == 0
    assert get_root(client, old).json()["code"] == 99991663
    fresh = token(client)["tenant_access_token"]
    assert fresh != old
    assert get_root(client, fresh).json()["code"] == 0


def test_token_endpoint_ignores_faults_and_limits(sandbox: SandboxServer,
                                                  client: httpx.Client) -> None:
    """The token call is not rate limited and never faulted."""
    sandbox.configure(fault_5xx=1.0, rate_scale=0.01)
    for _ in range(30):
        assert token(client)["code"] == 0
