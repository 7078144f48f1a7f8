"""Client-side pacing to Feishu's documented rate limits.

Feishu counts requests per API × app × tenant in a per-second and a per-minute window,
independently; exceeding either one returns 429 / 99991400. Some calls also fall under an
extra bucket (1 QPS for user patches that touch ``department_ids`` or ``is_frozen``, 5 QPS
per IM receiver). A call names every :class:`Bucket` it counts against and is admitted
only when all of them have room.

Each bucket is a sliding-window log: at most ``count`` requests in any interval of
``period + margin`` seconds. The server counts *arrival* times, so the log holds, for each
request, the moment it actually went on the wire (:meth:`Permit.sent`, reported by the
client once the request headers are written), not merely when it was admitted: under a
burst of new tasks the event loop can take tens of milliseconds between admitting a request
and writing it. What remains is the difference in transit and server-side handling between
two requests, a few milliseconds on a loopback socket. The **margin** covers it: two
requests ``period + margin`` apart can never land within one server window.
:data:`SAFETY_MARGIN` (25 ms) keeps the 1-second windows at 1/1.025 ≈ 97.6 % of the ceiling
and the 1-minute windows at 99.96 %. Against a distant server the jitter can be larger; a
rare 429 is then waited out and retried, and the endpoint is held until the server's reset.

**Pacing.** Windows of at most :data:`PACED_PERIOD` (1 s) and a count above one also space
requests ``PACING × period / count`` apart (21 ms at 50/s, 2.1 ms at 500/s), on a grid of due
times one gap apart: neither the lag from an admission to its send nor a late wake-up
(asyncio's timers round every wait up to a whole millisecond) pushes the next call back, so
the calls leave at the grid's rate; one two gaps late or more restarts the grid. The gap is 5 %
longer than the count allows, so the grid, not the count, is what binds: no second window of
the server ever holds more than about 95 % of its count, and the rest absorbs requests the
server counts late when it is busy. When the count bound instead (a gap shorter than the
count's, which the millisecond timers used to stretch, until a read without collector stalls
kept pace with it), the server saw a full window's worth in under a second at times and
answered 429 (the 100k resync read in ``orgsync.bench``: 2 in 5,139 pages). Without pacing a
window's worth of calls leaves at once and queues at the server, so their arrivals spread over
tens to hundreds of milliseconds while the next burst, on warm connections, lands within a
few: the server then sees more than ``count`` arrivals in one period (measured against the
sandbox: 50 simultaneous creates arrived over 160 ms and the next burst drew 429s). Longer
windows (1000/min, resurrect's 10/min) are not paced, so short bursts within them still go out
at the per-second rate; a window of one (1 QPS) is spaced by its count alone.

Waiters are served first-in, first-out in every bucket they share: a call joins the queues
of its endpoint's buckets at once and is admitted when it is at the head of all of them and
all of them have room. The oldest waiter overall is always at the head of each of its
queues, so the scheme cannot deadlock. A call's *extra* buckets are queued for first (see
:meth:`RateLimiter.acquire`), so a slow 1 QPS call does not hold up the 50/s calls behind it.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

SAFETY_MARGIN = 0.025
"""Seconds added to every window's period; see the module docstring for why."""

PACED_PERIOD = 1.0
"""Windows with a period up to this many seconds also space admissions apart (see PACING)."""

PACING = 1.05
"""Paced windows space admissions ``PACING × period / count`` apart: 5 % slower than the
count allows (see the module docstring for why the spacing must be what binds)."""

_EPSILON = 1e-9
_PRUNE_ABOVE = 1024


class Clock(Protocol):
    """Time source for the limiter and for retry back-off; injectable for tests."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds``."""
        ...


class MonotonicClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    def now(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds``."""
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Limit:
    """At most ``count`` requests in any ``period`` seconds (a documented limit)."""

    count: int
    period: float

    def scaled(self, scale: float) -> Limit:
        """This limit with its count multiplied by ``scale``: ``max(1, round(count × scale))``.

        The same rule as the sandbox's (``orgsync.sandbox.ratelimit.scaled``), so a client
        and a sandbox at the same scale agree on every window; at scale 1.0 (the real API)
        every documented count is already whole.
        """
        if scale == 1.0:
            return self
        return Limit(max(1, round(self.count * scale)), self.period)


@dataclass(frozen=True)
class Bucket:
    """One counter a request is charged to: a name and its limit.

    Buckets with the same name and limit share one window, so e.g. the endpoint's
    per-second and per-minute windows are two buckets under the endpoint's name.
    """

    key: str
    limit: Limit


class _Ticket:
    """A waiting call; its event is set when it may have reached the head of a queue."""

    __slots__ = ("wake",)

    def __init__(self) -> None:
        self.wake = asyncio.Event()


class _Window:
    """One sliding-window log (sorted send times) with its FIFO of waiters and a hold."""

    __slots__ = ("count", "due", "gap", "hold_until", "log", "period", "queue")

    def __init__(self, count: int, period: float, gap: float) -> None:
        self.count = count
        self.period = period
        self.gap = gap
        self.due = 0.0
        self.log: list[float] = []
        self.queue: deque[_Ticket] = deque()
        self.hold_until = 0.0

    def delay(self, now: float) -> float:
        """Seconds until one more request fits (0 when it fits now)."""
        expired = bisect.bisect_right(self.log, now - self.period)
        if expired:
            del self.log[:expired]
        held = len(self.log)
        wait = 0.0 if held < self.count else self.log[held - self.count] + self.period - now
        if self.gap and held:
            # Paced on a grid of due times, one gap apart: neither the lag from an admission
            # to its write nor a late wake-up (the event loop's timers are ~1 ms coarse; at
            # 500/s the gap is 2.1 ms) adds to the next gap. The window's count, kept in send
            # times, stays the bound no schedule may cross.
            wait = max(wait, self.due - now)
        return max(wait, self.hold_until - now)

    def restamp(self, old: float, new: float) -> None:
        """Move one logged request from ``old`` to ``new`` (when it really went out)."""
        index = bisect.bisect_left(self.log, old)
        if index < len(self.log) and self.log[index] == old:
            del self.log[index]
            bisect.insort(self.log, new)

    def idle(self, now: float) -> bool:
        """True when forgetting this window changes nothing."""
        return (not self.queue and self.hold_until <= now
                and (not self.log or self.log[-1] <= now - self.period))


class Permit:
    """One admitted request. Call :meth:`sent` when it actually goes on the wire."""

    __slots__ = ("_clock", "_stamps", "waited")

    def __init__(self, clock: Clock, windows: Sequence[_Window], stamp: float,
                 waited: float) -> None:
        self._clock = clock
        self._stamps = [(window, stamp) for window in windows]
        self.waited = waited
        """Seconds the request waited for admission."""

    def sent(self) -> None:
        """Record now as the request's time in every window it was charged to."""
        now = self._clock.now()
        for i, (window, stamp) in enumerate(self._stamps):
            if now > stamp:
                window.restamp(stamp, now)
                self._stamps[i] = (window, now)


_SENDING: ContextVar[Permit | None] = ContextVar("orgsync_feishu_sending", default=None)


def mark_sending(permit: Permit | None) -> None:
    """Name ``permit`` as the one of the next request the current task makes (the
    transport stamps it with :meth:`Permit.sent` when the request leaves)."""
    _SENDING.set(permit)


def sending_permit() -> Permit | None:
    """The permit :func:`mark_sending` named in the current task."""
    return _SENDING.get()


class RateLimiter:
    """Admits calls so that no bucket's documented limit is ever exceeded.

    ``scale`` multiplies every count (see :meth:`Limit.scaled`); ``margin`` is added to
    every period; ``enabled=False`` admits everything at once. One limiter serves one
    app in one tenant, i.e. one :class:`~orgsync.feishu.client.FeishuClient`.
    """

    def __init__(self, *, scale: float = 1.0, margin: float = SAFETY_MARGIN,
                 enabled: bool = True, clock: Clock | None = None) -> None:
        self.scale = scale
        self.margin = margin
        self.enabled = enabled
        self.clock: Clock = clock or MonotonicClock()
        self._windows: dict[tuple[str, int, float], _Window] = {}

    def _window(self, bucket: Bucket) -> _Window:
        limit = bucket.limit.scaled(self.scale)
        key = (bucket.key, limit.count, limit.period)
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= _PRUNE_ABOVE:
                self._prune()
            gap = (PACING * limit.period / limit.count
                   if limit.period <= PACED_PERIOD and limit.count > 1 else 0.0)
            window = self._windows[key] = _Window(limit.count, limit.period + self.margin, gap)
        return window

    def _prune(self) -> None:
        now = self.clock.now()
        for key in [k for k, w in self._windows.items() if w.idle(now)]:
            del self._windows[key]

    def _windows_for(self, buckets: Sequence[Bucket]) -> list[_Window]:
        unique: dict[int, _Window] = {}
        for bucket in buckets:
            window = self._window(bucket)
            unique[id(window)] = window
        return list(unique.values())

    async def acquire(self, buckets: Sequence[Bucket], extra: Sequence[Bucket] = ()) -> Permit:
        """Wait until every bucket has room and charge one request to each.

        The returned :class:`Permit` says how long the call waited; its :meth:`Permit.sent`
        moves the charge to the moment the request is written.

        ``extra`` buckets are narrower limits that only some of an endpoint's calls count
        against (1 QPS department moves, 5 QPS per IM receiver). A call queues for them
        first and joins the endpoint's queues only once they have room, so a call waiting
        on its extra bucket never holds up the endpoint's other calls. All buckets are
        charged at the same instant, when the call is admitted. Cancelling a waiting call
        leaves the queues consistent and charges nothing.
        """
        if not self.enabled or not (buckets or extra):
            return Permit(self.clock, (), 0.0, 0.0)
        gate = self._windows_for(extra)
        main = [w for w in self._windows_for(buckets) if all(w is not g for g in gate)]
        ticket = _Ticket()
        joined: list[_Window] = []
        start = self.clock.now()
        try:
            for stage in (gate, main):
                if not stage:
                    continue
                for window in stage:
                    window.queue.append(ticket)
                    joined.append(window)
                await self._wait_turn(ticket, joined)
            now = self.clock.now()
            for window in joined:
                bisect.insort(window.log, now)
                # On the grid when this call is less than two gaps past its due time; else
                # (idle, held by the count, or a wake-up that late) one gap from now. The
                # grid's rate is under the count's, so the one call that may follow a late
                # one at once never makes a server window overflow.
                late = now - window.due
                window.due = (window.due if 0 <= late < 2 * window.gap else now) + window.gap
            return Permit(self.clock, joined, now, now - start)
        finally:
            for window in joined:
                window.queue.remove(ticket)
                if window.queue:
                    window.queue[0].wake.set()

    async def _wait_turn(self, ticket: _Ticket, windows: list[_Window]) -> None:
        """Return once ``ticket`` heads every window's queue and every window has room."""
        while True:
            if all(window.queue[0] is ticket for window in windows):
                now = self.clock.now()
                wait = max(window.delay(now) for window in windows)
                if wait <= _EPSILON:
                    return
                await self.clock.sleep(wait)
            else:
                await ticket.wake.wait()
                ticket.wake.clear()

    def hold(self, buckets: Sequence[Bucket], seconds: float) -> None:
        """Admit nothing to these buckets for ``seconds`` (the server said its window is full)."""
        if not self.enabled or seconds <= 0:
            return
        until = self.clock.now() + seconds
        for window in self._windows_for(buckets):
            window.hold_until = max(window.hold_until, until)
