"""``sync.stage`` over the real sandbox: one division of a hand-made tenant taken over
first, checked, then the whole org (issue 24)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orgsync.config import Config, config_from_dict
from orgsync.errors import ConfigError
from orgsync.identity import feishu_user_id
from orgsync.ledger import Ledger
from orgsync.render import render, render_markdown, render_text
from orgsync.runner import RunOutcome, run_once
from orgsync.sandbox import SandboxServer
from orgsync.stage import DEFERRED
from orgsync.synth import generate_org, write_csv
from tests.sandbox_run import SCALE, config, run
from tests.takeover_tenant import check_taken_over, hand_made, take_over, writes

ORG = generate_org(employees=60, departments=12, levels=4)
DIVISION = "D0002"  # 产品中心, with 战略研究部 and 用户体验部 under it
IN_DIVISION = {"D0002", "D0008", "D0011"}
AMBIGUOUS = "D0006"  # held by the takeover (two look-alike departments), with its people
STAFF = {k for k, e in ORG.employees.items()
         if e.department_keys[0] in IN_DIVISION and AMBIGUOUS not in e.department_keys}


def with_ancestors(keys: set[str]) -> set[str]:
    out = set()
    for key in keys:
        at: str | None = key
        while at is not None:
            out.add(at)
            at = ORG.departments[at].parent_key
    return out


#: what the division's people are members of (a second department elsewhere, too): they
#: exist in Feishu already, so their adoption is all they need
NEEDED = IN_DIVISION | {d for k in STAFF for d in ORG.employees[k].department_keys}


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def check(cfg: Config, ledger: Ledger) -> RunOutcome:
    """``orgsync check``: Feishu read live, nothing written; drift = a non-empty plan."""
    return asyncio.run(run_once(cfg, ledger, apply=False, full=True))


def accounts(sb: SandboxServer) -> dict[str, Any]:
    """Every account as Feishu holds it, by open id (which never changes)."""
    return {u["open_id"]: u for u in sb.tenant.state()["users"]}


def test_a_staged_takeover_of_one_division_then_the_whole_org(sb: SandboxServer,
                                                              tmp_path: Path) -> None:
    write_csv(ORG, tmp_path / "s")
    whole = config(sb, tmp_path / "s", tmp_path / "l.db")
    made, feishu_only = hand_made(sb, whole, ORG)
    assert made.ambiguous == AMBIGUOUS
    before = accounts(sb)
    staged = config(sb, tmp_path / "s", tmp_path / "l.db",
                    sync={"stage": {"departments": [DIVISION]}})
    ledger = Ledger(staged.ledger.url)

    _, out = take_over(sb, staged, ledger)

    assert out.exit_code == 0
    applied = out.plan.operations
    assert {op.key for op in applied if op.entity == "user"} <= STAFF
    assert IN_DIVISION < NEEDED
    assert {op.key for op in applied if op.entity == "department"} <= NEEDED
    assert {op.key for op in applied if op.entity == "department"
            and op.kind.value != "department.adopt"} <= IN_DIVISION
    assert {op.key for op in applied if op.kind.value == "user.adopt"} == STAFF - made.absent
    assert out.plan.deferred
    assert all(op.reason.startswith(f"{DEFERRED}: ") for op in out.plan.deferred)
    assert {op.key for op in out.plan.deferred if op.entity == "user"} >= \
        set(ORG.employees) - STAFF - made.absent - {k for k, e in ORG.employees.items()
                                                    if AMBIGUOUS in e.department_keys}
    assert f"**Deferred (outside the stage): {len(out.plan.deferred)} operations**" in \
        render_markdown(out.plan)
    page = io.StringIO()
    render(out.plan, "html", page)
    assert (f"<h2>Deferred ({len(out.plan.deferred)}): outside sync.stage, not applied</h2>"
            in page.getvalue())
    user_adopts = sum(1 for op in out.plan.deferred if op.kind.value == "user.adopt")
    assert f"<tr><td>user.adopt</td><td>{user_adopts}</td></tr>" in page.getvalue()
    # outside the stage Feishu is exactly as the admins left it; inside, under the HR ids
    after = accounts(sb)
    staff_ids = {feishu_user_id(k) for k in STAFF}
    created = {after[k]["user_id"] for k in after.keys() - before.keys()}
    assert created == {feishu_user_id(k) for k in STAFF & made.absent}  # staff HR lacked
    assert {k: u for k, u in after.items() if u["user_id"] not in staff_ids} == \
        {k: u for k, u in before.items() if after[k]["user_id"] not in staff_ids}
    assert len(staff_ids & {u["user_id"] for u in after.values()}) == len(STAFF)
    mirror = ledger.load_state()
    assert set(mirror.users) == STAFF
    assert set(mirror.departments) == NEEDED
    quiet = check(staged, ledger).plan
    assert quiet.empty  # no drift inside the stage
    shown = io.StringIO()
    render_text(quiet, Console(file=shown, width=200))
    text = shown.getvalue()
    assert text.startswith("No changes inside sync.stage.\n")
    assert f"\nDeferred ({len(quiet.deferred)}) — outside sync.stage, not applied:\n" in text

    # drift inside the stage shows; outside it does not
    division_user = sorted(STAFF)[0]
    drifted = sb.tenant.find_user(feishu_user_id(division_user), "user_id")
    assert drifted is not None
    drifted.name = "改过的名字"
    drift = check(staged, ledger)
    assert [(op.kind.value, op.key) for op in drift.plan.operations] == [
        ("user.update", division_user)]
    run(staged, ledger, full=True)  # a resync repairs it
    assert check(staged, ledger).plan.empty

    # the whole org: the rest is taken over, nothing duplicated
    out = run(whole, ledger)
    assert out.plan.deferred == ()
    check_taken_over(sb, ORG, made, feishu_only, out, ledger)
    mark = len(writes(sb))
    assert run(whole, ledger).plan.empty
    assert writes(sb)[mark:] == []


def test_the_first_n_people_and_listed_keys(sb: SandboxServer, tmp_path: Path) -> None:
    """``first: 5`` and ``people: [...]`` on an empty tenant: those people are created
    (with the departments they need, top-down), nobody else and nothing else."""
    write_csv(ORG, tmp_path / "s")
    listed = sorted(ORG.employees)[-1]
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db",
                 sync={"stage": {"first": 5, "people": [listed]}})
    ledger = Ledger(cfg.ledger.url)
    out = run(cfg, ledger)
    chosen = {*sorted(ORG.employees)[:5], listed}
    created = {op.key for op in out.plan.operations if op.kind.value == "user.create"}
    waiting = {op.key for op in out.plan.operations if op.entity == "user"} - chosen
    assert not waiting
    # every staged person is created, those whose manager is outside without the link
    assert created == chosen
    unlinked = {k for k in chosen if ORG.employees[k].manager_key not in (None, *chosen)}
    assert unlinked
    assert all(ledger.load_state().users[k].record.manager_key is None for k in unlinked)
    users = {u["user_id"] for u in sb.tenant.state()["users"]}
    assert users == created
    needed = with_ancestors({dk for k in created for dk in ORG.employees[k].department_keys})
    assert {op.key for op in out.plan.operations if op.kind.value == "department.create"} \
        == needed
    assert set(ledger.load_state().departments) == needed
    assert out.exit_code == 0


@pytest.mark.parametrize(("stage", "key"), [
    ({"first": 0}, "sync.stage.first"),
    ({"people": {"E1": 1}}, "sync.stage.people"),
    ({"division": ["D1"]}, "sync.stage.division"),
])
def test_a_bad_stage_fails_the_config_load(tmp_path: Path, stage: dict[str, Any],
                                           key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "b"},
                          "source": {"type": "csv", "employees": "e.csv",
                                     "departments": "d.csv"}, "sync": {"stage": stage}},
                         file="orgsync.yaml", base_dir=tmp_path)
    assert caught.value.key == key
