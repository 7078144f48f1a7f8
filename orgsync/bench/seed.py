"""Put an org into the sandbox and the ledger as if orgsync had applied it, without API calls.

:func:`sandbox_state` renders a snapshot as the sandbox's seed document (custom
ids as orgsync would create them); :func:`stage` seeds the sandbox, fills the
ledger's mirror with the same org and writes the *desired* org as CSV plus a
config, so that a plan holds exactly the operations between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orgsync.bench.common import Context, write_config
from orgsync.bench.mirror import fill_mirror
from orgsync.feishu import schema
from orgsync.identity import feishu_department_id, feishu_user_id
from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.synth import write_csv


def sandbox_state(snapshot: Snapshot, *, with_users: bool = True) -> dict[str, Any]:
    """The sandbox seed document (``POST /_sandbox/seed``) holding ``snapshot``'s active org:
    the create bodies orgsync would send, with the leader and manager links."""
    departments: list[dict[str, Any]] = []
    for key, d in snapshot.departments.items():
        item = schema.department_create_body(
            d, feishu_department_id(key),
            feishu_department_id(d.parent_key) if d.parent_key else schema.ROOT)
        if d.leader_key and with_users:
            item.update(schema.leader_body(feishu_user_id(d.leader_key)))
        departments.append(item)
    users: list[dict[str, Any]] = []
    if with_users:
        for key, e in snapshot.active_employees().items():
            user = schema.user_create_body(
                e.fields(), [feishu_department_id(k) for k in e.department_keys],
                user_id=feishu_user_id(key))
            if e.manager_key:
                user.update(schema.manager_body(feishu_user_id(e.manager_key)))
            users.append(user)
    return {"departments": departments, "users": users}


@dataclass(frozen=True, slots=True)
class Stage:
    """A prepared measurement: its config file and ledger URL."""

    config: Path
    ledger_url: str


def stage(ctx: Context, name: str, applied: Snapshot, desired: Snapshot, *,
          app_id: str, rate_limits: bool = True, concurrency: int | None = None) -> Stage:
    """Seed the sandbox and the mirror with ``applied``; write ``desired`` as the source."""
    work = ctx.workdir / name
    work.mkdir(parents=True, exist_ok=True)
    ctx.sandbox.reset()
    ctx.sandbox.seed(sandbox_state(applied))
    ledger_path = work / "ledger.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger_path}{suffix}").unlink(missing_ok=True)
    ledger_url = f"sqlite:///{ledger_path}"
    ledger = Ledger(ledger_url)
    try:
        fill_mirror(ledger, applied)
    finally:
        ledger.close()
    dept_csv, emp_csv = write_csv(desired, work / "source")
    config = write_config(work / "orgsync.yaml", departments=dept_csv, employees=emp_csv,
                          ledger=ledger_path, base_url=ctx.sandbox.base_url, app_id=app_id,
                          app_secret=ctx.sandbox.app_secret, rate_limits=rate_limits,
                          concurrency=concurrency)
    return Stage(config, ledger_url)
