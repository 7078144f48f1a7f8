"""What Feishu's documented limits allow, and how close a measured run came to it.

Feishu counts each API in sliding windows (1000/min and 50/s for most contact
endpoints, plus 1 QPS for user patches that move or freeze). The fastest legal
schedule of ``n`` calls admits each one at the earliest moment every window has
room; :func:`ideal_span` is the time from its first call to its last. A run's
"share of the allowed rate" is ``ideal_span / measured_span`` over the same
calls, both measured between first and last arrival.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

STANDARD: tuple[tuple[int, float], ...] = ((1000, 60.0), (50, 1.0))
"""Tier 4: 1000 per minute and 50 per second, counted independently."""
MOVE: tuple[tuple[int, float], ...] = (*STANDARD, (1, 1.0))
"""A user patch that changes ``department_ids``: tier 4 plus 1 QPS."""


def ideal_span(n: int, windows: Sequence[tuple[int, float]] = STANDARD) -> float:
    """Seconds from the first to the last of ``n`` calls on the fastest legal schedule."""
    times: list[float] = []
    for k in range(n):
        t = 0.0
        for count, period in windows:
            if k >= count:
                t = max(t, times[k - count] + period)
        times.append(t)
    return times[-1] if times else 0.0


def calls(log: Iterable[Mapping[str, Any]], method: str, path_prefix: str) -> list[dict[str, Any]]:
    """The request-log entries of one API (method and path prefix), in arrival order."""
    return [dict(e) for e in log if e["method"] == method
            and str(e["path"]).startswith(path_prefix)]


def span(entries: Sequence[Mapping[str, Any]]) -> float:
    """Seconds between the first and the last arrival."""
    if len(entries) < 2:
        return 0.0
    times = [float(e["time"]) for e in entries]
    return max(times) - min(times)


def rate_limited(log: Iterable[Mapping[str, Any]]) -> int:
    """How many answers were rate limits (HTTP 429 or code 99991400)."""
    return sum(1 for e in log if e.get("status") == 429 or e.get("code") == 99991400)


def repeated_pages(entries: Iterable[Mapping[str, Any]]) -> int:
    """Pages read more than once: the same path and query seen again."""
    seen = Counter((e["method"], e["path"], tuple(sorted((k, str(v)) for k, v in
                                                         (e.get("query") or {}).items())))
                   for e in entries)
    return sum(n - 1 for n in seen.values() if n > 1)
