"""The client's time-off calls against the sandbox over a real socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orgsync.errors import FeishuError, FeishuRetryable
from orgsync.feishu import FeishuClient, FeishuSettings
from orgsync.feishu.retry import may_have_applied, rate_limit_form
from orgsync.sandbox import SandboxServer


def _settings(sandbox: SandboxServer) -> FeishuSettings:
    return FeishuSettings(app_id=sandbox.config.app_id, app_secret=sandbox.config.app_secret,
                          base_url=sandbox.base_url)


def _seed_alice(sandbox: SandboxServer) -> None:
    sandbox.load({"departments": [{"department_id": "d1", "name": "D1"}],
                  "users": [{"user_id": "alice", "name": "Alice", "mobile": "+8613000000001",
                             "department_ids": ["d1"]}]})


def test_create_then_delete(sandbox: SandboxServer) -> None:
    _seed_alice(sandbox)

    async def go() -> tuple[dict[str, Any], int]:
        async with FeishuClient(_settings(sandbox)) as client:
            made = await client.create_timeoff({
                "user_id": "alice", "timezone": "Europe/Berlin", "start_time": "1798092000",
                "end_time": "1798099200", "title": "病假"})
            during = len(sandbox.tenant.timeoff_events)
            await client.delete_timeoff(made["timeoff_event_id"])
            return made, during

    made, during = asyncio.run(go())
    assert made["timeoff_event_id"].startswith("timeoff:")
    assert during == 1
    assert sandbox.tenant.timeoff_events == {}


def test_resigned_person_is_a_terminal_195100(sandbox: SandboxServer) -> None:
    _seed_alice(sandbox)
    sandbox.tenant.find_user("alice", "user_id").resigned = True  # type: ignore[union-attr]

    async def go() -> None:
        async with FeishuClient(_settings(sandbox)) as client:
            await client.create_timeoff({"user_id": "alice", "timezone": "Asia/Shanghai",
                                         "start_time": "2026-12-24", "end_time": "2026-12-24"})

    with pytest.raises(FeishuError) as caught:
        asyncio.run(go())
    assert (caught.value.code, caught.value.retryable) == (195100, False)


def test_calendar_throttles_are_rate_limits() -> None:
    """190004/190005/190010 are rejections before any write: waited out, never 'uncertain'."""
    for code in (190004, 190005, 190010):
        error = FeishuRetryable(code, "throttled", http_status=429)
        assert rate_limit_form(error) == f"calendar_{code}"
        assert not may_have_applied(error)
