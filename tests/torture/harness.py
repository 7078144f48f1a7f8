"""Shared parts of the torture suite: configs, runs, sandbox dumps and the convergence check.

``FULL`` is true under ``TORTURE=full`` (or when ``-m torture`` selected the long tests):
the long versions then run their full trial counts.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import httpx

from orgsync.config import Config, config_from_dict
from orgsync.diff import diff
from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.sandbox import SandboxServer
from orgsync.source import SourceData
from orgsync.state import DirectoryState


def full() -> bool:
    """True when the long versions should run (``TORTURE=full`` or ``-m torture``)."""
    return os.environ.get("TORTURE", "").lower() == "full"

class Size(TypedDict):
    """Arguments of :func:`orgsync.synth.generate_org` that set the org's size."""

    employees: int
    departments: int
    levels: int


SCALE = 10.0  # sandbox and client both run the documented limits 10x faster


def config_dict(sb: SandboxServer, source: Path, ledger: Path, **feishu: Any) -> dict[str, Any]:
    """A CSV-source config document for ``sb`` (extra ``feishu`` keys merged in)."""
    return {
        "version": 1,
        "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": sb.config.app_secret, "rate_scale": SCALE, **feishu},
        "source": {"type": "csv", "departments": str(source / "departments.csv"),
                   "employees": str(source / "employees.csv")},
        "ledger": {"url": f"sqlite:///{ledger}"},
    }


def make_config(sb: SandboxServer, source: Path, ledger: Path, **feishu: Any) -> Config:
    """The parsed form of :func:`config_dict`."""
    return config_from_dict(config_dict(sb, source, ledger, **feishu), file="<torture>",
                            base_dir=source)


def dump(sb: SandboxServer) -> dict[str, Any]:
    """The sandbox's whole tenant (``GET /_sandbox/state``)."""
    reply = httpx.get(f"{sb.base_url}/_sandbox/state",
                      headers={"Authorization": f"Bearer {sb.config.effective_admin_token()}"})
    data: dict[str, Any] = reply.json()["data"]
    return data


def writes(sb: SandboxServer) -> list[dict[str, Any]]:
    """Business writes in the request log (no GETs, no token calls)."""
    return [r for r in sb.requests()
            if r["method"] != "GET" and "tenant_access_token" not in r["path"]]


@dataclass(frozen=True, slots=True)
class Duplicates:
    """Entities present more than once in Feishu, by custom id and by natural key."""

    departments: int
    users: int

    @property
    def total(self) -> int:
        """All duplicates together."""
        return self.departments + self.users


def count_duplicates(state: dict[str, Any]) -> Duplicates:
    """Count duplicates the sandbox's uniqueness rules should have refused anyway.

    Departments: same ``department_id``, or same (parent, name). Users: same
    ``user_id``, mobile or email (resigned users excluded).
    """
    depts = [d for d in state["departments"] if str(d.get("department_id")) != "0"]
    d_ids = Counter(d["department_id"] for d in depts)
    d_names = Counter((d.get("parent_department_id"), d.get("name")) for d in depts)
    users = [u for u in state["users"] if not (u.get("status") or {}).get("is_resigned")]
    u_keys: Counter[tuple[str, str]] = Counter()
    for u in users:
        for field in ("user_id", "mobile", "email"):
            if u.get(field):
                u_keys[(field, str(u[field]).lower())] += 1
    return Duplicates(sum(n - 1 for n in d_ids.values()) + sum(n - 1 for n in d_names.values()),
                      sum(n - 1 for n in u_keys.values()))


def assert_matches(state: DirectoryState, snap: Snapshot) -> None:
    """Feishu (read back) equals the source: same keys, and nothing left to diff."""
    assert sorted(state.departments) == sorted(snap.departments)
    assert sorted(state.users) == sorted(snap.active_employees())
    left = diff(SourceData(snap), state)
    assert left.empty, [op.op_id for op in left.operations][:20]


def unexplained(ledger: Ledger, state: dict[str, Any]) -> list[str]:
    """Entities in Feishu with no finished create/adopt in the journal (should be none)."""
    explained = {(r.kind.split(".")[0], r.target_key) for r in ledger.journal()
                 if r.status == "done" and r.kind.split(".")[1] in ("create", "adopt")}
    missing = [f"department:{d['department_id']}" for d in state["departments"]
               if str(d["department_id"]) != "0"
               and ("department", d["department_id"]) not in explained]
    missing += [f"user:{u['user_id']}" for u in state["users"]
                if not (u.get("status") or {}).get("is_resigned")
                and ("user", u["user_id"]) not in explained]
    return missing


def report(name: str, **figures: Any) -> None:
    """Print one figure line (shown with ``-s``; collected in the README)."""
    print(f"[torture] {name}: " + json.dumps(figures, sort_keys=True))

