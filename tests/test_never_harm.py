"""Nobody the source still holds is ever frozen or deleted: held-back rows and changed ids.

Each test applies a 60-person org to the sandbox over a real socket, then edits the
export the way people and spreadsheets do, and checks the plan, Feishu and the ledger.
"""

from __future__ import annotations

import contextlib
import csv
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from orgsync.errors import PlanHeld, SourceError
from orgsync.ledger import Ledger
from orgsync.plan import OpKind, Plan
from orgsync.runner import make_plan
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org, write_csv
from tests.sandbox_run import SCALE, config, read_back, run, with_client

Row = dict[str, str]


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def rows(src: Path) -> list[Row]:
    with (src / "employees.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_rows(src: Path, people: list[Row], encoding: str = "utf-8") -> None:
    with (src / "employees.csv").open("w", encoding=encoding, errors="replace",
                                      newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(people[0]))
        w.writeheader()
        w.writerows(people)


def edit(src: Path, key: str, **values: str) -> None:
    people = rows(src)
    for r in people:
        if r["employee_id"] == key:
            r.update(values)
    write_rows(src, people)


def plan_of(cfg: Any, ledger: Ledger, **kw: Any) -> Plan:
    return with_client(cfg, lambda c: make_plan(cfg, ledger, c, **kw)).plan


def kinds(plan: Plan, *wanted: OpKind) -> list[str]:
    return [op.key for op in plan.operations if op.kind in wanted]


def users_by_open_id(sb: SandboxServer) -> dict[str, dict[str, Any]]:
    """Every user the sandbox holds, resigned ones too: open_id → state."""
    return {u["open_id"]: u for u in sb.sandbox.state()["users"]}


def gone(u: dict[str, Any]) -> bool:
    """Frozen or resigned."""
    return bool(u["status"]["is_frozen"] or u["status"]["is_resigned"])


def applied(sb: SandboxServer, tmp_path: Path, **sections: Any) -> tuple[Any, Ledger, Path]:
    src = tmp_path / "src"
    write_csv(generate_org(employees=60, departments=12, levels=4), src)
    cfg = config(sb, src, tmp_path / "ledger.db", **sections)
    ledger = Ledger(cfg.ledger.url)
    assert run(cfg, ledger).exit_code == 0
    return cfg, ledger, src


def a_manager(src: Path) -> tuple[str, list[str]]:
    """A person with reports (and the reports), so links to them are exercised."""
    people = rows(src)
    reports: dict[str, list[str]] = {}
    for r in people:
        if r["manager_id"]:
            reports.setdefault(r["manager_id"], []).append(r["employee_id"])
    key = sorted(k for k in reports if k != "E00001")[0]
    return key, reports[key]


class TestChangedIds:
    @pytest.mark.parametrize(("change", "ignore_zeros", "same_by_rules"), [
        (str.lower, False, True),                 # E00030 → e00030 (case)
        (lambda k: "E0" + k[1:], False, False),   # E00030 → E000030 (email and mobile match)
        (lambda k: "E0" + k[1:], True, True),     # the same, matched by the key rules alone
        (lambda k: "X" + k[1:], False, False),    # a new id scheme, email and mobile match
    ])
    def test_changed_id_is_a_rekey_never_a_leaver(
            self, sb: SandboxServer, tmp_path: Path, change: Callable[[str], str],
            ignore_zeros: bool, same_by_rules: bool) -> None:
        """The plan shows user.rekey, Feishu's user_id follows, nothing is frozen or
        created, links to the person stay, and the ledger follows (the next plan is empty).

        Where the old id is the new one under the key rules, a row still naming the
        person by the old id (as manager) keeps pointing at them.
        """
        cfg, ledger, src = applied(sb, tmp_path,
                                   sync={"ignore_key_leading_zeros": ignore_zeros})
        old, reports = a_manager(src)
        new = change(old)
        before = {u["user_id"]: u for u in users_by_open_id(sb).values()}
        people = rows(src)
        for r in people:
            if r["employee_id"] == old:
                r["employee_id"] = new
            elif r["manager_id"] == old and not (same_by_rules and r["employee_id"] == reports[0]):
                r["manager_id"] = new
        write_rows(src, people)
        depts = (src / "departments.csv").read_text(encoding="utf-8")
        (src / "departments.csv").write_text(depts.replace(f",{old},", f",{new},"),
                                             encoding="utf-8")

        plan = plan_of(cfg, ledger)
        assert [(op.kind, op.key) for op in plan.operations] == [(OpKind.USER_REKEY, new)]
        op = plan.operations[0]
        assert [(c.field, c.old, c.new) for c in op.changes] == [("key", old, new)]
        assert op.payload == {"new_user_id": new}
        assert not [i for i in plan.issues if i.held]

        outcome = run(cfg, ledger)
        assert outcome.exit_code == 0
        after = {u["user_id"]: u for u in users_by_open_id(sb).values()}
        assert old not in after
        assert after[new]["open_id"] == before[old]["open_id"]
        assert not gone(after[new])
        assert len(after) == len(before)
        live = read_back(cfg)
        assert all(live.users[k].record.manager_key == new for k in reports)
        state = ledger.load_state()
        assert old not in state.users
        assert state.users[new].feishu_id == new
        assert all(state.users[k].record.manager_key == new for k in reports)
        assert plan_of(cfg, ledger).empty

    def test_rekey_whose_answer_was_lost_is_settled(self, sb: SandboxServer, tmp_path: Path,
                                                     sandbox_api: httpx.Client) -> None:
        """Feishu changed the id but orgsync never heard (a lost answer, a kill): the next
        attempt finds the old id gone and the new one live, and counts it done."""
        cfg, ledger, src = applied(sb, tmp_path)
        edit(src, "E00030", employee_id="HR-30")
        # The write of the attempt whose answer was lost.
        reply = sandbox_api.patch("/open-apis/contact/v3/users/E00030/update_user_id",
                                  params={"user_id_type": "user_id"},
                                  json={"new_user_id": "HR-30"})
        assert reply.json()["code"] == 0
        outcome = run(cfg, ledger)
        assert outcome.exit_code == 0
        assert outcome.result is not None
        [done] = outcome.result.results
        assert (done.op.kind, done.status) == (OpKind.USER_REKEY, "done")
        assert done.message == "id already changed (an earlier attempt's answer was lost)"
        assert ledger.load_state().users["HR-30"].feishu_id == "HR-30"
        assert plan_of(cfg, ledger).empty

    def test_row_matching_a_managed_account_in_feishu_accounts_for_its_person(
            self, sb: SandboxServer, tmp_path: Path, sandbox_api: httpx.Client) -> None:
        """The email lookup before a create finds an account orgsync manages for someone the
        source no longer holds by id (the mirror did not know the email: changed in Feishu):
        a conflict for the row, and that person is held — not frozen."""
        cfg, ledger, src = applied(sb, tmp_path)
        reply = sandbox_api.patch("/open-apis/contact/v3/users/E00030",
                                  params={"user_id_type": "user_id"},
                                  json={"email": "moved@example.com"})
        assert reply.json()["code"] == 0
        edit(src, "E00030", employee_id="HR-30", email="moved@example.com",
             mobile="+8613912345678")
        plan = plan_of(cfg, ledger)
        assert not kinds(plan, OpKind.USER_FREEZE, OpKind.USER_CREATE, OpKind.USER_ADOPT)
        held = {i.key: i.reason for i in plan.issues if i.held}
        assert held["HR-30"] == ("matches Feishu user E00030, which orgsync already manages "
                                 "as E00030")
        assert held["E00030"].startswith("Feishu user E00030 is theirs, and the row of HR-30")

    def test_two_rows_claiming_one_person_are_held_and_account_for_them(
            self, sb: SandboxServer, tmp_path: Path) -> None:
        """Ambiguity is a held conflict, never a guess — and never a leaver."""
        cfg, ledger, src = applied(sb, tmp_path)
        people = rows(src)
        target = next(r for r in people if r["employee_id"] == "E00030")
        target["employee_id"] = "e00030"
        people.append({**target, "employee_id": "E00030X", "employee_no": "99999999"})
        write_rows(src, people)
        plan = plan_of(cfg, ledger)
        assert not kinds(plan, OpKind.USER_FREEZE, OpKind.USER_DELETE, OpKind.USER_CREATE,
                         OpKind.USER_REKEY)
        held = {i.key for i in plan.issues if i.held}
        assert {"E00030", "e00030", "E00030X"} <= held


class TestHeldRows:
    @pytest.mark.parametrize("damage", [
        {"employee_id": ""},                               # empty id, email/mobile intact
        {"employee_id": "1.38E+10"},                       # Excel turned the id into a number
        {"mobile": "12345"},                               # a bad value holds the row
        {"employee_id": "e00030", "mobile": "12345"},      # both: new id, bad value
        {"employee_id": "", "mobile": "not a number"},     # no id, matched by email alone
    ])
    def test_held_row_accounts_for_its_person(self, sb: SandboxServer, tmp_path: Path,
                                              damage: Row) -> None:
        """A held row is no leaver: the person it matches keeps their account and links."""
        cfg, ledger, src = applied(sb, tmp_path)
        edit(src, "E00030", **damage)
        plan = plan_of(cfg, ledger)
        assert not kinds(plan, OpKind.USER_FREEZE, OpKind.USER_DELETE, OpKind.DEPT_DELETE,
                         OpKind.USER_CREATE)
        assert not [op for op in plan.operations
                    if op.kind is OpKind.USER_SET_MANAGER and not op.payload.get("leader_user_id")]
        held = [i for i in plan.issues if i.held and i.key == "E00030"]
        if damage.get("employee_id", "E00030") != "E00030":
            assert held
            assert "never treated as a leaver" in held[0].reason
        assert run(cfg, ledger).exit_code == 0
        user = next(u for u in users_by_open_id(sb).values() if u["user_id"] == "E00030")
        assert not gone(user)

    def test_unidentifiable_held_row_holds_every_leaver(self, sb: SandboxServer,
                                                        tmp_path: Path) -> None:
        """A held row that matches nobody and has no id might be anyone: nobody leaves."""
        cfg, ledger, src = applied(sb, tmp_path)
        people = rows(src)
        leaver = next(r for r in people if r["employee_id"] == "E00040")
        people.remove(leaver)  # a real leaver...
        bad = next(r for r in people if r["employee_id"] == "E00041")
        bad.update(employee_id="", email="", mobile="")  # ...and a row nobody can identify
        write_rows(src, people)
        plan = plan_of(cfg, ledger)
        assert not kinds(plan, OpKind.USER_FREEZE, OpKind.USER_DELETE)
        note = next(n for n in plan.notes if "left as they are" in n)
        assert note.startswith("2 leaver(s) left as they are: 1 row(s) held back")
        assert "employees.csv:" in note
        run(cfg, ledger)
        assert not [u for u in users_by_open_id(sb).values() if gone(u)]
        # Once the row is fixed (here: removed), the real leaver leaves.
        write_rows(src, [r for r in people if r["employee_id"]])
        assert sorted(kinds(plan_of(cfg, ledger), OpKind.USER_FREEZE)) == ["E00040", "E00041"]


def corrupt(people: list[Row], rng: random.Random) -> list[Row]:
    """A few rows damaged the ways exports are: ids re-cased, zero-padded, emptied,
    Excel-formatted or replaced, emails and mobiles broken — everyone still there."""
    out = [dict(r) for r in people]
    for r in rng.sample(out, rng.randint(1, 8)):
        k = r["employee_id"]
        how = rng.choice(["lower", "pad", "empty", "excel", "scheme", "email", "mobile",
                          "email+id", "mobile+id", "swap"])
        if how == "lower":
            r["employee_id"] = k.lower()
        elif how == "pad":
            r["employee_id"] = "E0" + k[1:]
        elif how == "empty":
            r["employee_id"] = ""
        elif how == "excel":
            r["employee_id"] = "1.38E+10"
        elif how == "scheme":
            r["employee_id"] = f"HR-{k[1:]}"
        elif how == "email":
            r["email"] = "not an email"
        elif how == "mobile":
            r["mobile"] = "0000"
        elif how == "email+id":
            r["employee_id"], r["email"] = k.lower() + "x", "broken@"
        elif how == "mobile+id":
            r["employee_id"], r["mobile"] = "", "1"
        else:  # two rows' ids swapped into a duplicate
            r["employee_id"] = rng.choice(out)["employee_id"]
    return out


def test_corrupted_sources_never_freeze_or_delete_anyone(sb: SandboxServer,
                                                         tmp_path: Path) -> None:
    """Property: whatever damage a source that still holds everyone carries, no run
    freezes or deletes anybody (planned against the mirror and applied to Feishu)."""
    cfg, ledger, src = applied(sb, tmp_path)
    cfg = replace(cfg, source=replace(cfg.source, options={**cfg.source.options,
                                                             "encoding": "auto"}))
    clean = rows(src)
    open_ids = {u["open_id"] for u in users_by_open_id(sb).values()}
    rng = random.Random(1405)
    tried = refused = 0
    for _ in range(30):
        # Re-saved by some tool in another encoding now and then (Big5 loses characters).
        write_rows(src, corrupt(clean, rng), rng.choice(["utf-8", "utf-8", "utf-8-sig",
                                                         "gb18030", "big5"]))
        tried += 1
        try:
            plan = plan_of(cfg, ledger)
        except SourceError:
            refused += 1  # a source that cannot be read is no reason to remove anyone
            continue
        assert not kinds(plan, OpKind.USER_FREEZE, OpKind.USER_DELETE), plan.to_dict()
        if tried % 5 == 0:  # apply some of them: what they change must not remove anyone
            with contextlib.suppress(PlanHeld):
                run(cfg, ledger)
            assert not [u for o, u in users_by_open_id(sb).items()
                        if o in open_ids and gone(u)]
    assert (tried, refused > 0) == (30, True)


def test_an_approval_releases_one_apply(tmp_path: Path) -> None:
    """A plan approved and applied that comes back (some writes failed) is held again and
    listed as held: the approval is spent."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.hold_plan("p1", "c", ["11 user removals exceed …"], {"user.freeze": 11})
    assert ledger.approve_plan("p1")
    ledger.mark_plan_applied("p1")
    assert [p.plan_id for p in ledger.held_plans()] == []
    ledger.hold_plan("p1", "c", ["11 user removals exceed …"], {"user.freeze": 11})
    assert ledger.plan_status("p1") == "held"
    assert [p.plan_id for p in ledger.held_plans()] == ["p1"]
