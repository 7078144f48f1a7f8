"""Connection settings for one Feishu (Lark) tenant app."""

from __future__ import annotations

from dataclasses import dataclass, field

from orgsync.errors import ConfigError
from orgsync.urls import mask_url

FEISHU_BASE_URL = "https://open.feishu.cn"
LARK_BASE_URL = "https://open.larksuite.com"


@dataclass(frozen=True)
class FeishuSettings:
    """How to reach Feishu and how hard to push it.

    ``app_secret`` never appears in ``repr``, logs or error messages. ``rate_scale``
    multiplies every documented rate-limit count; it must equal the scale a sandbox
    enforces, and stays ``1.0`` against the real API. ``max_retries`` counts retries
    after the first attempt of one call.
    """

    app_id: str
    app_secret: str = field(repr=False)
    base_url: str = FEISHU_BASE_URL
    timeout: float = 10.0
    max_retries: int = 6
    rate_limits: bool = True
    rate_scale: float = 1.0
    user_id_type: str = "user_id"
    department_id_type: str = "department_id"

    def __post_init__(self) -> None:
        if not self.app_id:
            raise ConfigError("app_id is empty", key="feishu.app_id",
                              remedy="set the self-built app's App ID (cli_...)")
        if not self.app_secret:
            raise ConfigError("app_secret is empty", key="feishu.app_secret",
                              remedy="set the app secret, e.g. from an environment variable")
        if not self.base_url.startswith(("https://", "http://")):
            raise ConfigError(f"base_url '{mask_url(self.base_url)}' is not an http(s) URL",
                              key="feishu.base_url",
                              remedy=f"use {FEISHU_BASE_URL} or {LARK_BASE_URL}")
        if self.timeout <= 0:
            raise ConfigError("timeout must be positive", key="feishu.timeout")
        if self.max_retries < 0:
            raise ConfigError("max_retries must be 0 or more", key="feishu.max_retries")
        if self.rate_scale <= 0:
            raise ConfigError("rate_scale must be positive", key="feishu.rate_scale")

    @property
    def origin(self) -> str:
        """``base_url`` without a trailing slash; paths start with ``/open-apis``."""
        return self.base_url.rstrip("/")
