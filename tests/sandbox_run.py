"""A CSV-source config pointed at the test sandbox, one applying run of it, and Feishu
read back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from orgsync.config import Config, config_from_dict
from orgsync.feishu import FeishuClient
from orgsync.feishu.reader import read_directory
from orgsync.ledger import Ledger
from orgsync.runner import RunOutcome, run_once
from orgsync.sandbox import SandboxServer
from orgsync.state import DirectoryState

#: Sandbox and client both run the documented limits this many times faster.
SCALE = 10.0

T = TypeVar("T")


def config(sb: SandboxServer, src: Path, ledger: Path, **sections: Any) -> Config:
    """``src/departments.csv`` + ``src/employees.csv`` synced into ``sb`` (plus ``sections``)."""
    return config_from_dict({
        "version": 1,
        "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": sb.config.app_secret, "rate_scale": SCALE},
        "source": {"type": "csv", "departments": str(src / "departments.csv"),
                   "employees": str(src / "employees.csv")},
        "ledger": {"url": f"sqlite:///{ledger}"},
        **sections,
    }, file="<test>", base_dir=src)


def run(cfg: Config, ledger: Ledger, at: datetime | None = None, **kw: Any) -> RunOutcome:
    """One ``apply`` run (at ``at`` on the clock the lifecycle rules read)."""
    return asyncio.run(run_once(cfg, ledger, apply=True, now=at, **kw))


def with_client(cfg: Config, step: Callable[[FeishuClient], Awaitable[T]]) -> T:
    """``step`` given a Feishu client of its own, as a run gives its client to each step
    (e.g. ``with_client(cfg, lambda c: make_plan(cfg, ledger, c))``)."""
    async def go() -> T:
        async with FeishuClient(cfg.feishu) as client:
            return await step(client)
    return asyncio.run(go())


def read_back(cfg: Config) -> DirectoryState:
    """Feishu as orgsync reads it."""
    return with_client(cfg, read_directory)
