"""The Feishu (Lark) open-platform client: settings, token, rate limits, retries, endpoints.

The names below load on first use: the config reads :class:`FeishuSettings` in every
command, and only commands that call Feishu pay for the client's HTTP stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from orgsync.feishu.settings import FEISHU_BASE_URL, LARK_BASE_URL, FeishuSettings

if TYPE_CHECKING:
    from orgsync.feishu.client import ClientStats, FeishuClient
    from orgsync.feishu.ratelimit import (
        SAFETY_MARGIN,
        Bucket,
        Clock,
        Limit,
        MonotonicClock,
        Permit,
        RateLimiter,
    )
    from orgsync.feishu.token import TokenManager

_HOMES = {
    "ClientStats": "client", "FeishuClient": "client",
    "SAFETY_MARGIN": "ratelimit", "Bucket": "ratelimit", "Clock": "ratelimit",
    "Limit": "ratelimit", "MonotonicClock": "ratelimit", "Permit": "ratelimit",
    "RateLimiter": "ratelimit", "TokenManager": "token",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)


__all__ = [
    "FEISHU_BASE_URL",
    "LARK_BASE_URL",
    "SAFETY_MARGIN",
    "Bucket",
    "ClientStats",
    "Clock",
    "FeishuClient",
    "FeishuSettings",
    "Limit",
    "MonotonicClock",
    "Permit",
    "RateLimiter",
    "TokenManager",
]
