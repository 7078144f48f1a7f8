"""Server-side rate limits: sliding windows, 429 headers, the 1 QPS rule, forced bursts."""

from __future__ import annotations

import time
from typing import Any

import httpx

from orgsync.sandbox import SandboxServer
from orgsync.sandbox.ratelimit import SlidingWindowLimiter, Window, scaled

D = "/open-apis/contact/v3/departments"
U = "/open-apis/contact/v3/users"
CUSTOM = {"department_id_type": "department_id", "user_id_type": "user_id"}
ADMIN = {"Authorization": "Bearer sandbox-secret"}


def ok(reply: httpx.Response) -> Any:
    body = reply.json()
    assert (reply.status_code, body["code"]) == (200, 0), body
    return body["data"]


def assert_limited(reply: httpx.Response, *, limit: int, status: int = 429) -> None:
    assert reply.status_code == status
    assert reply.json() == {"code": 99991400, "msg": "request trigger frequency limit",
                            "data": {}}
    assert reply.headers["x-ogw-ratelimit-limit"] == str(limit)
    assert int(reply.headers["x-ogw-ratelimit-reset"]) >= 1


def test_sixth_call_in_a_second_is_429(sandbox: SandboxServer,
                                       sandbox_api: httpx.Client) -> None:
    """rate_scale=0.1 → 5/s: the 6th call within a second is 429 with the headers."""
    sandbox.configure(rate_scale=0.1)
    for _ in range(5):
        ok(sandbox_api.get(f"{D}/0/children"))
    assert_limited(sandbox_api.get(f"{D}/0/children"), limit=5)
    # A rejected call takes no quota; other endpoints have their own windows.
    ok(sandbox_api.get(f"{D}/0"))


def test_window_slides(sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
    """After the window has passed, calls are admitted again."""
    sandbox.configure(rate_scale=0.02)  # 50/s → 1/s
    ok(sandbox_api.get(f"{D}/0/children"))
    assert_limited(sandbox_api.get(f"{D}/0/children"), limit=1)
    time.sleep(1.05)
    ok(sandbox_api.get(f"{D}/0/children"))


def test_department_ids_patch_has_its_own_1_qps_bucket(sandbox: SandboxServer,
                                                       sandbox_api: httpx.Client) -> None:
    """Two department_ids PATCHes in a second → 429; plain PATCHes still pass."""
    ok(sandbox_api.post(D, params=CUSTOM, json={"name": "D", "parent_department_id": "0",
                                                "department_id": "d"}))
    for user_id, mobile in (("a", "13000000001"), ("b", "13000000002")):
        ok(sandbox_api.post(U, params=CUSTOM, json={
            "user_id": user_id, "name": user_id, "mobile": mobile, "department_ids": ["d"],
            "employee_type": 1}))
    ok(sandbox_api.patch(f"{U}/a", params=CUSTOM, json={"department_ids": ["d"]}))
    assert_limited(sandbox_api.patch(f"{U}/b", params=CUSTOM, json={"is_frozen": True}),
                   limit=1)
    ok(sandbox_api.patch(f"{U}/b", params=CUSTOM, json={"name": "B"}))


def test_rate_limits_can_be_disabled(sandbox: SandboxServer,
                                     sandbox_api: httpx.Client) -> None:
    """rate_limits=False admits everything."""
    sandbox.configure(rate_limits=False, rate_scale=0.01)
    for _ in range(10):
        ok(sandbox_api.get(f"{D}/0"))


def test_forced_burst(sandbox: SandboxServer, sandbox_api: httpx.Client) -> None:
    """ratelimit_burst answers the next N calls with 429 (or the legacy HTTP 400 form)."""
    reply = sandbox_api.post("/_sandbox/ratelimit_burst", json={"count": 2}, headers=ADMIN)
    assert reply.json()["code"] == 0
    assert_limited(sandbox_api.get(f"{D}/0"), limit=1)
    assert_limited(sandbox_api.get(f"{D}/0"), limit=1)
    ok(sandbox_api.get(f"{D}/0"))
    sandbox_api.post("/_sandbox/ratelimit_burst", json={"count": 1, "legacy_400": True},
                     headers=ADMIN)
    assert_limited(sandbox_api.get(f"{D}/0"), limit=1, status=400)


def test_limiter_reset_header_counts_whole_seconds() -> None:
    """The reset value is the whole seconds until the oldest call leaves the window."""
    now = [100.0]
    limiter = SlidingWindowLimiter(now=lambda: now[0])
    window = Window(2, 60.0)
    assert limiter.try_acquire([("k", window)]) is None
    now[0] = 110.0
    assert limiter.try_acquire([("k", window)]) is None
    rejection = limiter.try_acquire([("k", window)])
    assert rejection is not None
    assert (rejection.limit, rejection.reset) == (2, 50)
    now[0] = 160.0
    assert limiter.try_acquire([("k", window)]) is None


def test_all_windows_or_none() -> None:
    """A call refused by one window is recorded in none of them."""
    now = [0.0]
    limiter = SlidingWindowLimiter(now=lambda: now[0])
    per_second, per_minute = Window(1, 1.0), Window(3, 60.0)
    assert limiter.try_acquire([("s", per_second), ("m", per_minute)]) is None
    assert limiter.try_acquire([("s", per_second), ("m", per_minute)]) is not None
    now[0] = 1.5
    assert limiter.try_acquire([("s", per_second), ("m", per_minute)]) is None
    now[0] = 3.0
    assert limiter.try_acquire([("s", per_second), ("m", per_minute)]) is None
    now[0] = 4.5
    rejection = limiter.try_acquire([("s", per_second), ("m", per_minute)])
    assert rejection is not None
    assert rejection.limit == 3


def test_scaled_never_below_one() -> None:
    """Scaling keeps at least one call per window."""
    assert (scaled(50, 0.1), scaled(1, 0.1), scaled(1000, 2.0)) == (5, 1, 2000)
