"""Day one: taking over a Feishu directory built by hand, over a real socket (issue 17)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.config import Config
from orgsync.errors import EXIT_HELD, EXIT_OK, FeishuRetryable, FeishuUnusable, PlanHeld
from orgsync.feishu import FeishuClient
from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.render import render_markdown
from orgsync.runner import RunOutcome
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from orgsync.synth_tenant import FEISHU_ONLY, existing_tenant
from tests.sandbox_run import SCALE, config, run
from tests.takeover_tenant import check_taken_over, hand_made, take_over, writes


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def test_takeover_of_a_hand_made_tenant(sb: SandboxServer, tmp_path: Path) -> None:
    org = generate_org(employees=60, departments=12, levels=4)
    write_csv(org, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
    made, feishu_only = hand_made(sb, cfg, org)
    ledger = Ledger(cfg.ledger.url)

    held, out = take_over(sb, cfg, ledger)

    assert "a takeover" in str(held)
    summary = out.plan.takeover
    assert summary is not None
    assert summary["users"]["matched"] == {rule: len(keys) for rule, keys in
                                           sorted(made.by_rule.items())}
    assert summary["users"]["to_create"] == len(made.absent)
    assert summary["departments"]["ambiguous"] == [made.ambiguous]
    assert summary["departments"]["matched"] == {
        "id": 1, "normalised path": 1, "path": len(org.departments) - 3}
    assert summary["feishu_only"]["count"] == len(FEISHU_ONLY)
    assert out.plan.summary().get("department.create", 0) == 0
    assert out.plan.summary()["user.create"] == len(made.absent)
    md = render_markdown(out.plan)
    assert md.index("Feishu-only account") < md.index("| Department | Key |")
    check_taken_over(sb, org, made, feishu_only, out, ledger)

    mark = len(writes(sb))
    again = run(cfg, ledger)
    assert [(op.kind.value, op.key, op.changes) for op in again.plan.operations] == []
    assert again.plan.takeover is None
    assert writes(sb)[mark:] == []


def test_resync_on_a_lost_ledger_takes_over_instead_of_duplicating(
        sb: SandboxServer, tmp_path: Path) -> None:
    """A ledger lost after a sync: `resync` on a new one adopts everything orgsync made."""
    org = generate_org(employees=40, departments=8, levels=3)
    write_csv(org, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
    assert run(cfg, Ledger(cfg.ledger.url)).exit_code == 0
    fresh = config(sb, tmp_path / "s", tmp_path / "new.db")
    ledger = Ledger(fresh.ledger.url)
    with pytest.raises(PlanHeld) as held:
        asyncio.run(_resync(fresh, ledger))
    assert ledger.approve_plan(held.value.plan_id)
    mark = len(writes(sb))
    out = asyncio.run(_resync(fresh, ledger))
    assert out.exit_code == 0
    assert [(op.kind.value, op.key, op.changes) for op in out.plan.operations
            if not op.kind.value.endswith(".adopt")] == []
    assert out.plan.summary() == {"department.adopt": len(org.departments),
                                  "user.adopt": len(org.employees)}
    # Adopting what orgsync made changes nothing in Feishu but the ledger.
    assert not [r for r in writes(sb)[mark:] if r["method"] == "POST"]
    assert set(ledger.load_state().users) == set(org.employees)
    assert run(fresh, ledger).plan.empty


async def _resync(cfg: Config, ledger: Ledger) -> RunOutcome:
    from orgsync.runner import run_once
    return await run_once(cfg, ledger, apply=True, full=True)


@pytest.mark.parametrize("policy", ["report", "ignore"])
def test_feishu_only_accounts_are_left_alone_and_reported_by_policy(
        sb: SandboxServer, tmp_path: Path, policy: str) -> None:
    """Never changed either way; the run report names them only with ``report``."""
    org = generate_org(employees=20, departments=4, levels=2)
    write_csv(org, tmp_path / "s")
    probe = config(sb, tmp_path / "s", tmp_path / "l.db")
    _, feishu_only = hand_made(sb, probe, org)

    async def admin_chat() -> str:
        async with FeishuClient(probe.feishu) as c:
            return str((await c.create_chat({"name": "orgsync-admins"}))["chat_id"])
    chat = asyncio.run(admin_chat())
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", notify={"admin_chat_id": chat},
                 safety={"takeover_requires_approval": False},
                 takeover={"unmatched_users": policy})
    out = run(cfg, Ledger(cfg.ledger.url))
    assert out.exit_code == 0
    assert json.loads(json.dumps(out.plan.to_dict()))["takeover"]["feishu_only"] == {
        "count": 3, "names": ["外包1", "外包2", "外包0"]}  # by user_id
    by_uid = {u["user_id"]: u for u in sb.tenant.state()["users"]}
    assert {uid: by_uid[uid] for uid in FEISHU_ONLY} == feishu_only
    [report] = [json.loads(m["content"])["text"] for m in sb.tenant.messages
                if m["chat_id"] == chat]
    assert ("3 Feishu-only account(s) left as they are (matched by no HR record): "
            "外包1, 外包2, 外包0" in report) is (policy == "report")

def test_the_cli_shows_the_takeover_holds_it_and_status_lists_feishu_only(
        sb: SandboxServer, tmp_path: Path) -> None:
    """`plan` shows the matching before the operations and exits 5 (held); `approve` applies
    that plan id; `status` names the Feishu-only accounts."""
    org = generate_org(employees=20, departments=4, levels=2)
    write_csv(org, tmp_path / "src")
    conf = tmp_path / "orgsync.yaml"
    conf.write_text(json.dumps({
        "version": 1,
        "feishu": {"base_url": sb.base_url, "app_id": sb.config.app_id,
                   "app_secret": "${TAKEOVER_SECRET}", "rate_scale": SCALE},
        "source": {"type": "csv", "departments": "src/departments.csv",
                   "employees": "src/employees.csv"},
        "ledger": {"url": "sqlite:///ledger.db"}}), encoding="utf-8")
    hand_made(sb, config(sb, tmp_path / "src", tmp_path / "unused.db"), org)

    def cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [*args, "-c", str(conf)],
                                    env={"TAKEOVER_SECRET": sb.config.app_secret})
        return result.exit_code, " ".join(result.output.split())

    code, text = cli("plan")
    assert code == EXIT_HELD
    assert text.index("Takeover: Feishu already holds a directory") < text.index("Plan ")
    assert "3 Feishu-only account(s) left as they are" in text
    assert "ambiguous (" in text
    plan_id = text.split("orgsync approve ")[1].split("'")[0]
    code, text = cli("approve", plan_id, "--yes")
    assert code == EXIT_OK, text
    code, text = cli("status")
    assert "3 Feishu-only account(s) left as they are (matched by no HR record): " \
           "外包1, 外包2, 外包0 (at the takeover)" in text


DEMO = Path(__file__).resolve().parent.parent / "config" / "demo"


def test_the_readme_walkthrough_takes_over_the_seeded_demo_tenant(
        sb: SandboxServer, tmp_path: Path) -> None:
    """`orgsync sandbox --seed-file config/demo/existing-tenant.json` holds the demo company's
    hand-made tenant (the file is existing_tenant() of week 1, kept in step here); syncing
    week 1 into it is a takeover that passes every check."""
    org = generate_org()
    tenant = existing_tenant(org)
    assert json.loads((DEMO / "existing-tenant.json").read_text("utf-8")) == tenant.state
    sb.load(tenant.state)
    feishu_only = {u["user_id"]: u for u in sb.tenant.state()["users"]
                   if u["user_id"] in FEISHU_ONLY}
    cfg = config(sb, DEMO / "week1", tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    _, out = take_over(sb, cfg, ledger)
    check_taken_over(sb, org, tenant, feishu_only, out, ledger)


def test_a_new_hire_whose_account_exists_is_adopted_and_takes_the_hr_id(
        sb: SandboxServer, tmp_path: Path) -> None:
    """On a later run, an account found by email is adopted, then its user_id becomes the HR
    id (takeover.rekey_users); links to the person follow."""
    org = generate_org(employees=20, departments=4, levels=2)
    bosses = {e.manager_key for e in org.employees.values()}
    hire = org.employees[max(k for k in org.employees if k not in bosses)]
    write_csv(Snapshot(dict(org.departments),
                       {k: e for k, e in org.employees.items() if k != hire.key}), tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    assert run(cfg, ledger).exit_code == 0

    async def account() -> None:
        async with FeishuClient(cfg.feishu) as c:
            await c.create_user({"user_id": "legacy-hire", "name": hire.name, "email": hire.email,
                                 "mobile": "+8613999999000", "department_ids": ["0"],
                                 "employee_type": 1})
    asyncio.run(account())
    write_csv(org, tmp_path / "s")
    out = run(cfg, ledger)
    assert out.exit_code == 0
    assert [(op.kind.value, op.feishu_id, dict(op.payload)) for op in out.plan.operations
            if op.kind.value == "user.rekey"] == [
        ("user.rekey", "legacy-hire", {"new_user_id": hire.key})]
    assert ledger.load_state().users[hire.key].feishu_id == hire.key
    user = sb.tenant.find_user(hire.key, "user_id")
    assert user is not None
    assert (user.email, user.mobile) == (hire.email, hire.mobile)
    assert sb.tenant.find_user("legacy-hire", "user_id") is None
    assert run(cfg, ledger).plan.empty


def test_a_new_hr_department_that_exists_in_feishu_is_adopted_on_a_later_run(
        sb: SandboxServer, tmp_path: Path) -> None:
    """After the first sync, HR adds a department someone already made by hand in Feishu:
    it is adopted (one read of the tree) and takes the HR code, never created beside it."""
    org = generate_org(employees=20, departments=4, levels=2)
    new = org.departments[max(org.departments)]
    before = Snapshot({k: d for k, d in org.departments.items() if k != new.key},
                      {k: e for k, e in org.employees.items() if new.key not in e.department_keys})
    write_csv(before, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    assert run(cfg, ledger).exit_code == 0

    async def by_hand() -> str:
        async with FeishuClient(cfg.feishu) as c:
            return str((await c.create_department({
                "name": new.name, "parent_department_id": new.parent_key or "0"}))
                ["department_id"])
    made = asyncio.run(by_hand())
    write_csv(org, tmp_path / "s")
    out = run(cfg, ledger)
    assert out.exit_code == 0
    assert out.plan.takeover is None  # not a first run: nothing to approve
    [adopt] = [op for op in out.plan.operations if op.kind.value == "department.adopt"]
    assert (adopt.key, adopt.feishu_id, dict(adopt.payload)) == (
        new.key, made, {"new_department_id": new.key})
    assert "department.create" not in out.plan.summary()
    live = [d for d in sb.tenant.state()["departments"] if d["name"] == new.name]
    assert [d["department_id"] for d in live] == [new.key]
    assert run(cfg, ledger).plan.empty


def test_a_takeover_cut_short_by_faults_resumes_without_duplicates(
        sb: SandboxServer, tmp_path: Path) -> None:
    """5xx answers and dropped connections (some after the write took effect, an id change
    among them) leave the approved takeover part-done; the next runs finish it with no new
    approval, and the end state passes every check."""
    org = generate_org(employees=40, departments=8, levels=3)
    write_csv(org, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", feishu={
        "base_url": sb.base_url, "app_id": sb.config.app_id,
        "app_secret": sb.config.app_secret, "rate_scale": SCALE, "max_retries": 0})
    made, feishu_only = hand_made(sb, cfg, org)
    ledger = Ledger(cfg.ledger.url)
    with pytest.raises(PlanHeld) as held:
        run(cfg, ledger)
    assert ledger.approve_plan(held.value.plan_id)
    sb.configure(fault_5xx=0.03, fault_drop=0.03, fault_after_apply=1.0)
    cut = 0
    for _ in range(5):
        # A fault in the read fails the run before any write; a dropped connection stops it
        # where it is (fail fast, exit 9); a 5xx fails that write: each run is cut short.
        try:
            faulty = run(cfg, ledger)
        except (FeishuRetryable, FeishuUnusable):
            cut += 1
            continue
        assert faulty.result is not None
        cut += faulty.result.summary()["failed"] > 0
    assert cut > 0
    assert ledger.journal()  # some of the takeover was written before the faults stopped
    sb.configure(fault_5xx=0.0, fault_drop=0.0)
    out = run(cfg, ledger)
    for _ in range(2):  # a write that lost a race with its own dependency settles next time
        if out.exit_code == 0:
            break
        out = run(cfg, ledger)
    check_taken_over(sb, org, made, feishu_only, out, ledger)
    assert run(cfg, ledger).plan.empty
