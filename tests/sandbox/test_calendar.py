"""Calendar time-off events in the sandbox (feishu-api-more.md §8): create, delete, rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orgsync.sandbox import SandboxServer

T = "/open-apis/calendar/v4/timeoff_events"
CUSTOM = {"department_id_type": "department_id", "user_id_type": "user_id"}


def ok(reply: httpx.Response) -> Any:
    body = reply.json()
    assert (reply.status_code, body["code"]) == (200, 0), body
    return body["data"]


def code_of(reply: httpx.Response) -> tuple[int, int]:
    return reply.status_code, reply.json()["code"]


@pytest.fixture
def alice(sandbox_api: httpx.Client) -> dict[str, Any]:
    """A user with user_id alice in department d1."""
    ok(sandbox_api.post("/open-apis/contact/v3/departments", params=CUSTOM,
                        json={"name": "D1", "parent_department_id": "0", "department_id": "d1"}))
    body = {"user_id": "alice", "name": "Alice", "mobile": "13000000001",
            "department_ids": ["d1"], "employee_type": 1}
    return ok(sandbox_api.post("/open-apis/contact/v3/users", params=CUSTOM,  # type: ignore[no-any-return]
                               json=body))["user"]


def dump(sandbox: SandboxServer) -> list[dict[str, Any]]:
    """The time-off events in the admin state dump, read over the socket."""
    reply = httpx.get(sandbox.base_url + "/_sandbox/state",
                      headers={"Authorization": f"Bearer {sandbox.config.app_secret}"})
    return reply.json()["data"]["timeoff_events"]  # type: ignore[no-any-return]


def leave(**extra: str) -> dict[str, str]:
    return {"user_id": "alice", "timezone": "Asia/Shanghai", "start_time": "2026-12-24",
            "end_time": "2026-12-25", "title": "年假", **extra}


def test_create_all_day_and_hourly_then_delete(sandbox: SandboxServer,
                                               sandbox_api: httpx.Client,
                                               alice: dict[str, Any]) -> None:
    """Both documented time formats create an event the state dump shows; delete removes it."""
    day = ok(sandbox_api.post(T, params={"user_id_type": "user_id"}, json=leave()))
    assert day["timeoff_event_id"].startswith("timeoff:")
    assert (day["user_id"], day["start_time"], day["end_time"], day["title"]) == (
        "alice", "2026-12-24", "2026-12-25", "年假")
    hour = ok(sandbox_api.post(T, params={"user_id_type": "user_id"}, json=leave(
        start_time="1798092000", end_time="1798099200", title="")))
    assert hour["title"] == "请假中(全天) / 1-Day Time Off"
    dumped = {e["timeoff_event_id"]: e for e in dump(sandbox)}
    assert set(dumped) == {day["timeoff_event_id"], hour["timeoff_event_id"]}
    assert dumped[day["timeoff_event_id"]]["open_id"] == alice["open_id"]
    assert ok(sandbox_api.delete(f"{T}/{day['timeoff_event_id']}")) == {}
    assert [e["timeoff_event_id"] for e in dump(sandbox)] == [
        hour["timeoff_event_id"]]
    assert code_of(sandbox_api.delete(f"{T}/{day['timeoff_event_id']}")) == (400, 190002)


@pytest.mark.parametrize("body", [
    {"start_time": "2026-12-24", "end_time": "1798092000"},   # mixed formats
    {"start_time": "2026-12-25", "end_time": "2026-12-24"},   # end before start
    {"start_time": "2026-13-01", "end_time": "2026-13-02"},   # no such date
    {"timezone": "Mars/Olympus"},
    {"timezone": ""},
])
def test_bad_parameters_answer_190002(sandbox: SandboxServer, sandbox_api: httpx.Client,
                                      alice: dict[str, Any], body: dict[str, str]) -> None:
    reply = sandbox_api.post(T, params={"user_id_type": "user_id"}, json=leave(**body))
    assert code_of(reply) == (400, 190002)
    assert dump(sandbox) == []


def test_resigned_or_unknown_user_answers_195100(sandbox: SandboxServer,
                                                 sandbox_api: httpx.Client,
                                                 alice: dict[str, Any]) -> None:
    assert code_of(sandbox_api.post(T, params={"user_id_type": "user_id"},
                                    json=leave(user_id="nobody"))) == (404, 195100)
    ok(sandbox_api.delete("/open-apis/contact/v3/users/alice", params=CUSTOM))
    assert code_of(sandbox_api.post(T, params={"user_id_type": "user_id"},
                                    json=leave())) == (404, 195100)


def test_bot_scope_and_other_apps(sandbox: SandboxServer, sandbox_api: httpx.Client,
                                  alice: dict[str, Any]) -> None:
    """No bot → 190007; no calendar scope → 99991672; another app's event → 195000."""
    sandbox.configure(bot_enabled=False)
    assert code_of(sandbox_api.post(T, params={"user_id_type": "user_id"},
                                    json=leave())) == (404, 190007)
    sandbox.configure(bot_enabled=True, permissions=["contact:contact"])
    assert code_of(sandbox_api.post(T, params={"user_id_type": "user_id"},
                                    json=leave()))[1] == 99991672
    sandbox.configure(permissions=["calendar:time_off:create"])
    event = ok(sandbox_api.post(T, params={"user_id_type": "user_id"}, json=leave()))
    assert code_of(sandbox_api.delete(f"{T}/{event['timeoff_event_id']}"))[1] == 99991672
    sandbox.configure(permissions=None)
    sandbox.tenant.timeoff_events[event["timeoff_event_id"]]["app_id"] = "cli_other"
    assert code_of(sandbox_api.delete(f"{T}/{event['timeoff_event_id']}")) == (403, 195000)


def test_state_round_trips(sandbox: SandboxServer, sandbox_api: httpx.Client,
                           alice: dict[str, Any]) -> None:
    ok(sandbox_api.post(T, params={"user_id_type": "user_id"}, json=leave()))
    events = dump(sandbox)
    sandbox.load(sandbox.sandbox.state())
    assert dump(sandbox) == events != []
