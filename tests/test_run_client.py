"""One Feishu client per run, over a real socket: every step that calls Feishu shares it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orgsync.feishu import FeishuClient
from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.sandbox_run import SCALE, config, run, with_client

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def test_a_run_that_adopts_applies_and_reports_fetches_one_token(sb: SandboxServer,
                                                                  tmp_path: Path) -> None:
    """Account lookups, the tenant-admin check, the writes and the run report all go through
    the run's one client: the tenant token is fetched once."""
    org = generate_org(employees=30, departments=6, levels=3)
    bosses = {e.manager_key for e in org.employees.values()} | {
        d.leader_key for d in org.departments.values()}
    known = org.employees[min(k for k in org.employees if k not in bosses)]
    write_csv(org, tmp_path / "s")
    probe = config(sb, tmp_path / "s", tmp_path / "l.db")

    async def chat_and_account(c: FeishuClient) -> str:
        await c.create_user({"user_id": "legacy1", "name": known.name, "email": known.email,
                             "mobile": known.mobile, "department_ids": ["0"],
                             "employee_type": 1})
        return str((await c.create_chat({"name": "orgsync-admins"}))["chat_id"])
    admin = with_client(probe, chat_and_account)
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", notify={"admin_chat_id": admin},
                 safety={"takeover_requires_approval": False}, takeover={"rekey_users": False})
    ledger = Ledger(cfg.ledger.url)
    mark = len(sb.requests())

    out = run(cfg, ledger)

    calls = sb.requests()[mark:]
    assert out.exit_code == 0
    assert ("user.adopt", known.key) in {(op.kind.value, op.key) for op in out.plan.operations}
    assert ledger.load_state().users[known.key].feishu_id == "legacy1"
    assert any(r["path"].endswith("/batch_get_id") for r in calls)  # the lookup ran
    reports = [json.loads(m["content"])["text"] for m in sb.tenant.messages
               if m["chat_id"] == admin]
    assert len(reports) == 1
    assert [(r["method"], r["path"]) for r in calls if r["path"] == TOKEN_PATH] == [
        ("POST", TOKEN_PATH)]


def test_a_run_outcome_keeps_its_state_out_of_its_repr(sb: SandboxServer,
                                                        tmp_path: Path) -> None:
    """asyncio formats the repr of ``asyncio.run``'s result when it restores the SIGINT
    handler: an outcome's repr holding its state (10⁵ records at 100k) cost seconds."""
    org = generate_org(employees=30, departments=6, levels=3)
    write_csv(org, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db",
                 safety={"takeover_requires_approval": False})

    out = run(cfg, Ledger(cfg.ledger.url))

    assert out.planned is not None
    assert out.planned.source is not None
    assert len(out.planned.source.employees) == 30
    assert repr(out).startswith(f"RunOutcome(run_id='{out.run_id}', plan=Plan(")
    assert not any(e.name in repr(out) for e in org.employees.values())
