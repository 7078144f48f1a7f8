"""The Feishu (Lark) open-platform client: settings, token, rate limits, retries, endpoints."""

from __future__ import annotations

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
from orgsync.feishu.settings import FEISHU_BASE_URL, LARK_BASE_URL, FeishuSettings
from orgsync.feishu.token import TokenManager

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
