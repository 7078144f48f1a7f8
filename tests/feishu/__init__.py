"""Tests of the Feishu client; :class:`VirtualClock` runs time-based logic without waiting."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class VirtualClock:
    """A fake :class:`orgsync.feishu.ratelimit.Clock` whose sleeps cost no real time.

    :meth:`run` drives a coroutine: whenever every task is blocked, time jumps to the
    earliest pending sleep and wakes it. Sleepers therefore wake in exact time order and
    at exactly the instant they asked for, so tests can assert admission times.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.slept: list[float] = []

    def now(self) -> float:
        """Virtual seconds."""
        return self.t

    async def sleep(self, seconds: float) -> None:
        """Block until virtual time reaches now + ``seconds``."""
        self.slept.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + max(0.0, seconds), next(self._seq), future))
        await future

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` to completion, advancing virtual time when all else is blocked."""
        task = asyncio.ensure_future(awaitable)
        idle_rounds = 0
        while True:
            for _ in range(100):
                await asyncio.sleep(0)
            if task.done():
                return task.result()
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                idle_rounds += 1
                if idle_rounds > 1000:
                    task.cancel()
                    raise RuntimeError("nothing sleeps and the task never finishes")
                await asyncio.sleep(0.001)
                continue
            idle_rounds = 0
            self.t = max(self.t, self._sleepers[0][0])
            while self._sleepers and self._sleepers[0][0] <= self.t:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
