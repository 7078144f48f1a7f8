"""Server-side rate limiting of the sandbox: exact sliding windows, as Feishu documents them.

Feishu limits each API per app (and per tenant) with a per-minute and a per-second window
checked independently (feishu-api.md §3). The sandbox keeps, per bucket, the timestamps of the
admitted calls; a call is admitted only if *every* window it belongs to has room, and only an
admitted call is recorded, so a rejected call consumes no quota.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """At most ``count`` calls in any ``seconds``-long interval."""

    count: int
    seconds: float


@dataclass(frozen=True)
class Rejection:
    """Why a call was refused: the window's (scaled) quota and whole seconds until a slot frees."""

    limit: int
    reset: int


# Tier 4 of the frequency-control table: 1000/min and 50/s.
TIER_4: tuple[Window, ...] = (Window(1000, 60.0), Window(50, 1.0))
# PATCH users/:id that changes department_ids or is_frozen: an extra 1 QPS (U-PATCH).
USER_MOVE_OR_FREEZE: tuple[Window, ...] = (Window(1, 1.0),)
# POST users/:id/resurrect: 10/min (U-RES).
RESURRECT: tuple[Window, ...] = (Window(10, 60.0),)
# PATCH users/:id/update_user_id: 20/s (feishu-api-more.md §3, /document/contact-v3/user/update_user_id).
UPDATE_USER_ID: tuple[Window, ...] = (Window(20, 1.0),)
# job_levels and job_families, every method: 10/s (feishu-api-more.md §5.2, §5.3).
JOB_CATALOG: tuple[Window, ...] = (Window(10, 1.0),)
# POST employee_type_enums: 20/s (feishu-api-more.md §5.1).
EMPLOYEE_TYPE_CREATE: tuple[Window, ...] = (Window(20, 1.0),)
# Group create/patch/delete and member batch_add/batch_remove: 100/min (feishu-api-more.md §4).
GROUP_WRITE: tuple[Window, ...] = (Window(100, 60.0),)
# POST im/v1/messages: 5 QPS per target user or group (IM-SEND).
IM_PER_TARGET: tuple[Window, ...] = (Window(5, 1.0),)

Bucket = tuple[Hashable, Window]


def scaled(count: int, scale: float) -> int:
    """The allowed count of a window under ``rate_scale``; never below one call."""
    return max(1, round(count * scale))


class SlidingWindowLimiter:
    """Exact sliding-window limiter over named buckets.

    Each bucket is a key plus a :class:`Window`; callers pass every bucket a call belongs to,
    and :meth:`try_acquire` admits the call in all of them or in none.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._log: dict[tuple[Hashable, Window], deque[float]] = {}

    def reset(self) -> None:
        """Forget every recorded call."""
        self._log.clear()

    def try_acquire(self, buckets: Sequence[Bucket], scale: float = 1.0) -> Rejection | None:
        """Admit the call (recording it in every bucket) or return the tightest rejection."""
        now = self._now()
        worst: Rejection | None = None
        for key, window in buckets:
            stamps = self._log.setdefault((key, window), deque())
            while stamps and stamps[0] <= now - window.seconds:
                stamps.popleft()
            allowed = scaled(window.count, scale)
            if len(stamps) >= allowed:
                # The call fits once len - allowed + 1 entries have expired.
                frees_at = stamps[len(stamps) - allowed] + window.seconds
                reset = max(1, math.ceil(frees_at - now))
                if worst is None or reset > worst.reset:
                    worst = Rejection(limit=allowed, reset=reset)
        if worst is not None:
            return worst
        for key, window in buckets:
            self._log[(key, window)].append(now)
        return None
