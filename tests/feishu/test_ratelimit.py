"""The client-side rate limiter, on virtual time (no server, no real waiting)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from orgsync.feishu.endpoints import USER_PATCH, USER_PATCH_SLOW
from orgsync.feishu.ratelimit import SAFETY_MARGIN, Bucket, Limit, RateLimiter
from tests.feishu import VirtualClock

M = SAFETY_MARGIN


def _admit_all(limiter: RateLimiter, clock: VirtualClock,
               calls: Sequence[tuple[Sequence[Bucket], Sequence[Bucket]]]) -> list[float]:
    """Start every call at once (in order) and return each one's admission time, relative."""
    start = clock.now()
    times: list[float] = [0.0] * len(calls)

    async def one(i: int, buckets: Sequence[Bucket], extra: Sequence[Bucket]) -> None:
        await limiter.acquire(buckets, extra)
        times[i] = round(clock.now() - start, 9)

    async def main() -> None:
        await asyncio.gather(*(one(i, b, e) for i, (b, e) in enumerate(calls)))

    asyncio.run(clock.run(main()))
    return times


def _limiter(clock: VirtualClock, *, scale: float = 1.0, enabled: bool = True) -> RateLimiter:
    return RateLimiter(clock=clock, scale=scale, enabled=enabled)


def _assert_within(times: Sequence[float], limit: Limit) -> None:
    """No interval of ``limit.period`` seconds holds more than ``limit.count`` admissions."""
    ordered = sorted(times)
    for i in range(len(ordered) - limit.count):
        assert ordered[i + limit.count] - ordered[i] > limit.period, (i, ordered)


class TestLimit:
    """Scaling of documented counts."""

    @pytest.mark.parametrize(("limit", "scale", "expected"), [
        (Limit(50, 1.0), 0.2, Limit(10, 1.0)),
        (Limit(1000, 60.0), 0.2, Limit(200, 60.0)),
        (Limit(10, 60.0), 0.2, Limit(2, 60.0)),
        (Limit(1, 1.0), 0.2, Limit(1, 1.0)),
        (Limit(5, 1.0), 0.3, Limit(2, 1.0)),
        (Limit(50, 1.0), 1.0, Limit(50, 1.0)),
    ])
    def test_scaled_matches_the_sandbox_rule(self, limit: Limit, scale: float,
                                              expected: Limit) -> None:
        """Counts scale as max(1, round(count × scale)), the sandbox's rule; periods stay."""
        assert expected == limit.scaled(scale)


class TestWindows:
    """Sliding-window admission."""

    def test_burst_fills_window_then_waits_period_plus_margin(self) -> None:
        """Five fit at once; the sixth and seventh wait exactly period + margin."""
        clock = VirtualClock()
        bucket = Bucket("e", Limit(5, 2.0))
        times = _admit_all(_limiter(clock), clock, [((bucket,), ())] * 7)
        assert times == [0.0] * 5 + [2 + M] * 2

    def test_short_windows_are_paced(self) -> None:
        """A 1-second window spaces its calls 1.05 × period / count apart: the spacing, not
        the count (5 in any 1 + M seconds), is what binds."""
        clock = VirtualClock()
        bucket = Bucket("e", Limit(5, 1.0))
        times = _admit_all(_limiter(clock), clock, [((bucket,), ())] * 7)
        assert times == pytest.approx([0.0, 0.21, 0.42, 0.63, 0.84, 1.05, 1.26])

    def test_a_window_of_one_is_spaced_by_its_count(self) -> None:
        """1 QPS (department moves): one call every 1 + M seconds, no pacing on top."""
        clock = VirtualClock()
        bucket = Bucket("e", Limit(1, 1.0))
        times = _admit_all(_limiter(clock), clock, [((bucket,), ())] * 3)
        assert times == pytest.approx([0.0, 1 + M, 2 + 2 * M])

    @pytest.mark.parametrize("seed", range(3))
    def test_late_wake_ups_never_fill_a_server_window(self, seed: int) -> None:
        """Calls at 500/s woken up to 3 ms late (asyncio's timers round up to whole
        milliseconds; a busy loop adds more): no second holds more than the grid's 476
        and the two calls it may catch up, far under the count of 500, and the calls
        still leave at the grid's rate."""
        rng = random.Random(seed)
        clock = VirtualClock()
        limiter = _limiter(clock)
        bucket = (Bucket("e", Limit(500, 1.0)),)
        times: list[float] = []

        async def main() -> None:
            for _ in range(3000):
                await limiter.acquire(bucket)
                times.append(clock.now())
                clock.t += rng.uniform(0.0, 0.003)

        asyncio.run(clock.run(main()))
        _assert_within(times, Limit(478, 1.0))
        assert len(times) / (times[-1] - times[0]) > 0.9 * 500

    def test_sent_moves_the_charge_to_the_real_send_time(self) -> None:
        """A request that left 0.3 s after admission frees its slot 0.3 s later."""
        assert _next_after_a_late_send(Limit(1, 2.0), 0.3) == pytest.approx(2.3 + M)

    def test_the_pacing_gap_runs_from_the_last_admission(self) -> None:
        """A request that left 0.1 s after its admission does not push the next one back:
        the gap (1.05 × period / count) runs from the admission; the count, from the send."""
        assert _next_after_a_late_send(Limit(5, 1.0), 0.1) == pytest.approx(0.21)

    def test_a_late_admission_does_not_push_the_next_one_back(self) -> None:
        """Admitted 0.09 s after its due time (a late wake-up), a call keeps the grid: the
        next is due one gap after the missed due time, not one gap after the late one."""
        # the second call comes 0.09 s after it was due (0.21)
        assert _two_calls_after(0.3) == pytest.approx([0.3, 0.42])

    def test_a_call_less_than_two_gaps_late_lets_the_next_take_its_slot(self) -> None:
        """Admitted 0.29 s after its due time (under two 0.21 s gaps), a call keeps the
        grid, so the next one, already due, follows at once: the calls keep the grid's
        rate, which is under the count's."""
        assert _two_calls_after(0.5) == pytest.approx([0.5, 0.5])

    def test_a_call_two_gaps_late_or_more_restarts_the_grid(self) -> None:
        """Admitted 0.49 s after its due time, a call does not let more calls catch up (a
        burst would crowd the server's window): the next is due one gap after this one."""
        assert _two_calls_after(0.7) == pytest.approx([0.7, 0.91])

    def test_both_windows_are_enforced_independently(self) -> None:
        """A per-second and a per-10-second window each bind in turn."""
        clock = VirtualClock()
        buckets = (Bucket("e", Limit(3, 2.0)), Bucket("e", Limit(5, 10.0)))
        times = _admit_all(_limiter(clock), clock, [(buckets, ())] * 9)
        assert times == [0.0, 0.0, 0.0, 2 + M, 2 + M, 10 + M, 10 + M, 10 + M, 12 + 2 * M]

    def test_scale_applies_to_counts(self) -> None:
        """At scale 0.2 a window of 50 admits 10."""
        clock = VirtualClock()
        bucket = Bucket("e", Limit(50, 2.0))
        times = _admit_all(_limiter(clock, scale=0.2), clock, [((bucket,), ())] * 21)
        assert times == [0.0] * 10 + [2 + M] * 10 + [4 + 2 * M]

    def test_distinct_endpoints_do_not_share_windows(self) -> None:
        """Two endpoints with the same limit are counted apart."""
        clock = VirtualClock()
        a, b = Bucket("a", Limit(2, 2.0)), Bucket("b", Limit(2, 2.0))
        times = _admit_all(_limiter(clock), clock, [((a,), ()), ((b,), ())] * 2)
        assert times == [0.0] * 4

    @pytest.mark.parametrize("seed", range(5))
    def test_random_mixes_never_exceed_any_window(self, seed: int) -> None:
        """Random calls over shared and extra buckets respect every window."""
        rng = random.Random(seed)
        clock = VirtualClock()
        limiter = _limiter(clock)
        endpoint = (Bucket("e", Limit(4, 1.0)), Bucket("e", Limit(10, 5.0)))
        slow = Bucket("slow", Limit(1, 1.0))
        calls: list[tuple[tuple[Bucket, ...], tuple[Bucket, ...]]] = [
            (endpoint, (slow,) if rng.random() < 0.3 else ()) for _ in range(40)]
        times = _admit_all(limiter, clock, calls)
        _assert_within(times, Limit(4, 1.0))
        _assert_within(times, Limit(10, 5.0))
        _assert_within([t for t, (_, extra) in zip(times, calls, strict=True) if extra],
                       Limit(1, 1.0))


class TestFairnessAndExtras:
    """FIFO order, extra buckets, holds, cancellation, switching off."""

    def test_waiters_are_admitted_in_arrival_order(self) -> None:
        """Calls queued behind a full window leave it first-in, first-out."""
        clock = VirtualClock()
        limiter = _limiter(clock)
        bucket = (Bucket("e", Limit(1, 1.0)),)
        order: list[int] = []

        async def one(i: int) -> None:
            await limiter.acquire(bucket)
            order.append(i)

        async def main() -> None:
            await asyncio.gather(*(one(i) for i in range(8)))

        asyncio.run(clock.run(main()))
        assert list(range(8)) == order

    def test_slow_patches_do_not_hold_up_plain_patches(self) -> None:
        """department_ids patches go 1 per second while plain patches keep their 50/s pace."""
        clock = VirtualClock()
        slow: tuple[Bucket, ...] = (USER_PATCH_SLOW,)
        calls = [(USER_PATCH.buckets, slow), (USER_PATCH.buckets, ())] * 3
        times = _admit_all(_limiter(clock), clock, calls)
        assert times == [0.0, 0.021, 1 + M, 0.042, 2 + 2 * M, 0.063]

    def test_hold_pauses_only_the_held_buckets(self) -> None:
        """After a hold of 3 s the held endpoint waits 3 s; another endpoint does not."""
        clock = VirtualClock()
        limiter = _limiter(clock)
        held, other = (Bucket("a", Limit(50, 1.0)),), (Bucket("b", Limit(50, 1.0)),)
        limiter.hold(held, 3.0)
        times = _admit_all(limiter, clock, [(held, ()), (other, ())])
        assert times == [3.0, 0.0]

    def test_cancelled_waiter_is_not_charged_and_frees_the_queue(self) -> None:
        """Cancelling a queued call lets the next one in at the same time it would have had."""
        clock = VirtualClock()
        limiter = _limiter(clock)
        bucket = (Bucket("e", Limit(1, 1.0)),)
        admitted: list[float] = []

        async def main() -> None:
            await limiter.acquire(bucket)
            first = asyncio.ensure_future(limiter.acquire(bucket))
            second = asyncio.ensure_future(limiter.acquire(bucket))
            await asyncio.sleep(0)
            first.cancel()
            await second
            admitted.append(clock.now())
            await limiter.acquire(bucket)
            admitted.append(clock.now())

        start = clock.now()
        asyncio.run(clock.run(main()))
        assert [round(t - start, 9) for t in admitted] == [1 + M, 2 + 2 * M]

    def test_disabled_limiter_admits_everything_at_once(self) -> None:
        """rate_limits=False: no pacing and no holds."""
        clock = VirtualClock()
        limiter = _limiter(clock, enabled=False)
        bucket = Bucket("e", Limit(1, 1.0))
        limiter.hold((bucket,), 10.0)
        times = _admit_all(limiter, clock, [((bucket,), ())] * 20)
        assert times == [0.0] * 20

    def test_acquire_reports_seconds_waited(self) -> None:
        """The return value is the time spent waiting for admission."""
        clock = VirtualClock()
        limiter = _limiter(clock)
        bucket = (Bucket("e", Limit(1, 1.0)),)

        async def main() -> list[float]:
            return [(await limiter.acquire(bucket)).waited,
                    (await limiter.acquire(bucket)).waited]

        assert [round(w, 9) for w in asyncio.run(clock.run(main()))] == [0.0, 1 + M]


def _next_after_a_late_send(limit: Limit, lag: float) -> float:
    """When a second call is admitted, the first having gone on the wire ``lag`` after its
    admission."""
    clock = VirtualClock()
    limiter = _limiter(clock)
    bucket = (Bucket("e", limit),)
    start = clock.now()

    async def main() -> float:
        permit = await limiter.acquire(bucket)
        clock.t += lag
        permit.sent()
        await limiter.acquire(bucket)
        return round(clock.now() - start, 9)

    return asyncio.run(clock.run(main()))


def _two_calls_after(pause: float) -> list[float]:
    """When two calls are admitted (at 5/s, gap 0.21 s) that come ``pause`` after a first."""
    clock = VirtualClock()
    limiter = _limiter(clock)
    bucket = (Bucket("e", Limit(5, 1.0)),)
    start = clock.now()

    async def main() -> list[float]:
        times = []
        await limiter.acquire(bucket)
        clock.t += pause
        for _ in range(2):
            await limiter.acquire(bucket)
            times.append(round(clock.now() - start, 9))
        return times

    return asyncio.run(clock.run(main()))
