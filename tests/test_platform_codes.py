"""The Feishu the docs describe (issue 18): contact scope, big departments, partial
successes, permanent 504s, credentials — each a sandbox knob and orgsync against it, over a
real socket. Facts: feishu-api-more.md §1.2–§1.14."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orgsync.bench.seed import sandbox_state
from orgsync.errors import EXIT_FEISHU, FeishuCredentials, FeishuTerminal, FeishuUnusable
from orgsync.feishu import FeishuClient, FeishuSettings
from orgsync.feishu.codes import explain
from orgsync.feishu.reader import all_departments
from orgsync.feishu.schema import department_id_of
from orgsync.identity import feishu_department_id
from orgsync.ledger import Ledger
from orgsync.locked import Locked, locked_records
from orgsync.plan import OpKind
from orgsync.sandbox import SandboxServer
from orgsync.synth import generate_org
from tests.sandbox_run import SCALE, config, read_back, run, with_client

USERS = "/open-apis/contact/v3/users"
DEPTS = "/open-apis/contact/v3/departments"
PEOPLE = ("employee_id,name,email,mobile,department_ids,manager_id,job_title,city\n"
          "E1,Ada,ada@example.com,+8613800000001,D1,,Lead,Shanghai\n"
          "E2,Bob,bob@example.com,+8613800000002,D2,E1,Engineer,Beijing\n")


def _source(tmp_path: Path, people: str = PEOPLE) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "departments.csv").write_text(
        "department_id,name,parent_id\nD1,Research,\nD2,Platform,D1\nD3,Sales,\n",
        encoding="utf-8")
    (src / "employees.csv").write_text(people, encoding="utf-8")
    return src


def _setup(sandbox: SandboxServer, tmp_path: Path) -> tuple[Any, Ledger, Path]:
    src = _source(tmp_path)
    cfg = config(sandbox, src, tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    return cfg, ledger, src


def _calls(sandbox: SandboxServer, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests() if r["method"] == method and r["path"] == path]


def _error(cfg: Any, call: Any) -> FeishuTerminal:
    with pytest.raises(FeishuTerminal) as caught:
        with_client(cfg, call)
    return caught.value


class TestCredentials:
    """10015 wrong secret, 10003 unknown app id, 10014 disabled app: the run stops at once
    (FeishuUnusable, exit 9) with the remedy, raised by the first call (§1.10)."""

    @pytest.mark.parametrize(("change", "code"), [
        ({"app_secret": "not-the-secret"}, 10015),
        ({"app_id": "cli_unknown"}, 10003),
        ({}, 10014),
    ])
    def test_refused_credentials_stop_with_the_remedy(self, sandbox: SandboxServer,
                                                    tmp_path: Path, change: dict[str, str],
                                                    code: int) -> None:
        if not change:
            sandbox.configure(app_disabled=True)
        cfg, _, _ = _setup(sandbox, tmp_path)
        settings = replace(cfg.feishu, **change)

        async def go() -> None:
            async with FeishuClient(settings) as client:
                await client.get_department("0")

        with pytest.raises(FeishuUnusable) as caught:
            asyncio.run(go())
        error = caught.value
        assert (error.check, error.code, error.exit_code) == ("credentials", code, EXIT_FEISHU)
        assert isinstance(error.__cause__, FeishuCredentials)
        assert "feishu.app_" in str(error)
        assert "not-the-secret" not in str(error)


class TestContactScope:
    """Out of the app's contact range: 40004 / 40014 / 41050 with their HTTP statuses,
    terminal (one attempt), and a failed operation that names the remedy (§1.2)."""

    def test_calls_outside_the_range_answer_the_documented_codes(
            self, sandbox: SandboxServer, tmp_path: Path) -> None:
        cfg, ledger, _ = _setup(sandbox, tmp_path)
        assert run(cfg, ledger).exit_code == 0
        sandbox.configure(contact_scope=["D2"])
        sandbox.sandbox.clear_requests()
        got = [
            _error(cfg, lambda c: c.get_user("E1")),
            _error(cfg, lambda c: c.patch_user("E1", {"name": "Ada L."})),
            _error(cfg, lambda c: c.delete_user("E1")),
            _error(cfg, lambda c: c.get_department("D1")),
            _error(cfg, lambda c: c.create_department(
                {"department_id": "D9", "name": "New", "parent_department_id": "0"})),
            _error(cfg, lambda c: c.create_user(
                {"user_id": "E9", "name": "Eve", "mobile": "+8613800000009",
                 "department_ids": ["D3"], "employee_type": 1})),
        ]
        assert [(e.code, e.http_status) for e in got] == [
            (41050, 400), (41050, 400), (41050, 403), (40004, 403), (40014, 403), (40004, 403)]
        contact = [r for r in sandbox.requests() if "/contact/" in r["path"]]
        assert len(contact) == len(got)  # never retried
        # inside the range (D2 and below) everything works
        assert with_client(cfg, lambda c: c.get_user("E2"))["user_id"] == "E2"
        assert with_client(cfg, lambda c: c.patch_user("E2", {"name": "Bob B."}))

    def test_an_apply_outside_the_range_fails_with_the_remedy(
            self, sandbox: SandboxServer, tmp_path: Path) -> None:
        cfg, ledger, src = _setup(sandbox, tmp_path)
        assert run(cfg, ledger).exit_code == 0
        sandbox.configure(contact_scope=["D2"])
        (src / "employees.csv").write_text(PEOPLE.replace("Lead", "Director")
                                           .replace("Engineer", "Staff"), encoding="utf-8")
        outcome = run(cfg, ledger)
        assert outcome.result is not None
        failed = {r.op.key: r for r in outcome.result.failed}
        assert set(failed) == {"E1"}
        assert failed["E1"].code == 41050
        assert "widen the app's contact range" in (failed["E1"].message or "")
        assert read_back_title(sandbox, "E2") == "Staff"
        row = next(j for j in ledger.journal(outcome.run_id) if j.target_key == "E1")
        assert row.code == 41050
        assert "developer console" in (row.message or "")


def read_back_title(sandbox: SandboxServer, user_id: str) -> str:
    user = sandbox.tenant.find_user(user_id, "user_id")
    assert user is not None
    return user.job_title


class TestBigDepartments:
    """43010 on ``children`` with ``fetch_child``: the reader lists the big department's
    direct children and walks each child's subtree instead (§1.3)."""

    def test_the_reader_walks_the_children_of_a_big_department(
            self, sandbox: SandboxServer, tmp_path: Path) -> None:
        cfg, ledger, _ = _setup(sandbox, tmp_path)
        assert run(cfg, ledger).exit_code == 0
        sandbox.configure(big_department_size=2)
        sandbox.sandbox.clear_requests()
        state = read_back(cfg)
        assert sorted(state.departments) == ["D1", "D2", "D3"]
        assert sorted(state.users) == ["E1", "E2"]
        children = [r for r in sandbox.requests() if r["path"].endswith("/children")]
        # the root is refused; each of its children (D1 with D2 below, D3) is walked whole
        assert sorted((r["path"].split("/")[-2], r["query"]["fetch_child"], r["code"])
                      for r in children) == [("0", "false", 0), ("0", "true", 43010),
                                             ("D1", "true", 0), ("D3", "true", 0)]

    def test_a_big_tree_costs_about_one_page_per_big_department_and_child(
            self, sandbox: SandboxServer) -> None:
        org = generate_org(seed=5, employees=20, departments=400, levels=5)
        sandbox.load(sandbox_state(org))
        parent = {feishu_department_id(k): feishu_department_id(d.parent_key)
                  if d.parent_key else "0" for k, d in org.departments.items()}
        kids: dict[str, list[str]] = {}
        for key, up in parent.items():
            kids.setdefault(up, []).append(key)

        def size(dept: str) -> int:
            return sum(1 + size(k) for k in kids.get(dept, ()))

        threshold = 20
        big = {d for d in ("0", *parent) if size(d) > threshold}
        assert any(parent[d] != "0" for d in big - {"0"})  # refused again one level down

        def pages(n: int) -> int:
            return max(1, -(-n // 50))

        def calls(dept: str) -> int:
            if dept not in big:
                return pages(size(dept))
            return 1 + pages(len(kids[dept])) + sum(calls(k) for k in kids[dept])

        settings = FeishuSettings(app_id=sandbox.config.app_id,
                                  app_secret=sandbox.config.app_secret,
                                  base_url=sandbox.base_url, rate_scale=SCALE)

        async def walk() -> list[dict[str, Any]]:
            async with FeishuClient(settings) as client:
                return await all_departments(client)

        sandbox.configure(rate_scale=SCALE)
        whole = asyncio.run(walk())
        sandbox.configure(big_department_size=threshold)
        sandbox.sandbox.clear_requests()
        split = asyncio.run(walk())
        assert split == whole  # the same departments, in the same (pre-)order
        assert {department_id_of(d): d["parent_department_id"] for d in split} == parent
        children = [r for r in sandbox.requests() if r["path"].endswith("/children")]
        assert len(children) == calls("0")
        refused = [r["path"].split("/")[-2] for r in children if r["code"] == 43010]
        assert sorted(refused) == sorted(big)
        below_big = sum(len(kids[d]) for d in big)
        assert len(children) - pages(len(parent)) <= len(big) + below_big


class TestPartialSuccess:
    """44054–44059: the person was created/updated, the city or job title enum was not (§1.4)."""

    def test_created_with_a_warning_and_dependants_go_ahead(self, sandbox: SandboxServer,
                                                            tmp_path: Path) -> None:
        sandbox.configure(enum_store_full=True)
        cfg, ledger, _src = _setup(sandbox, tmp_path)
        outcome = run(cfg, ledger)
        assert outcome.result is not None
        assert outcome.result.summary() == {"done": len(outcome.plan.operations),
                                            "failed": 0, "skipped": 0}
        assert outcome.exit_code == 0
        creates = _calls(sandbox, "POST", USERS)
        assert sorted(r["code"] for r in creates) == [44056, 44056]  # once each, never retried
        notes = {r.op.key: r.message for r in outcome.result.results
                 if r.op.kind is OpKind.USER_CREATE}
        assert "city and job_title not set (44056)" in (notes["E1"] or "")
        bob = sandbox.tenant.find_user("E2", "user_id")
        ada = sandbox.tenant.find_user("E1", "user_id")
        assert bob is not None
        assert ada is not None
        assert (bob.city, bob.job_title, bob.leader) == ("", "", ada.open_id)
        # the enum store has room again: the next run writes the fields, nothing else
        sandbox.configure(enum_store_full=False)
        again = run(cfg, ledger)
        assert {op.kind for op in again.plan.operations} == {OpKind.USER_UPDATE}
        assert again.exit_code == 0
        assert (bob.city, bob.job_title) == ("Beijing", "Engineer")

    def test_patch_partial_is_done(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        cfg, ledger, src = _setup(sandbox, tmp_path)
        assert run(cfg, ledger).exit_code == 0
        sandbox.configure(enum_store_full=True)
        (src / "employees.csv").write_text(PEOPLE.replace("Engineer", "Architect"),
                                           encoding="utf-8")
        outcome = run(cfg, ledger)
        assert outcome.exit_code == 0
        assert outcome.result is not None
        assert (next(r.message for r in outcome.result.results) or "").startswith(
            "done, but job_title not set (44058)")


class TestPermanent504:
    """41031/41032 come with HTTP 504 but are tenant settings: not retried (§1.14)."""

    def test_multi_department_off_is_not_retried(self, sandbox: SandboxServer,
                                                 tmp_path: Path) -> None:
        sandbox.configure(multi_department=False)
        people = PEOPLE.replace("Platform", "Platform").replace(",D2,E1,", ',"D2;D3",E1,')
        src = _source(tmp_path, people)
        cfg = config(sandbox, src, tmp_path / "l.db")
        ledger = Ledger(cfg.ledger.url)
        outcome = run(cfg, ledger)
        assert outcome.result is not None
        failed = outcome.result.failed
        assert [(r.op.key, r.code) for r in failed] == [("E2", 41032)]
        assert "multi-department feature is off" in (failed[0].message or "")
        bob_creates = [r for r in _calls(sandbox, "POST", USERS)
                       if (r["body"] or {}).get("user_id") == "E2"]
        assert [(r["status"], r["code"]) for r in bob_creates] == [(504, 41032)]


class TestFeishuPeopleLock:
    """Records Feishu People owns: the first refusal (44053 / 43031, §1.15) is reported and
    remembered; later plans leave them alone with a note, and doctor can list them."""

    def test_locked_records_are_reported_once_then_left_alone(self, sandbox: SandboxServer,
                                                              tmp_path: Path) -> None:
        cfg, ledger, src = _setup(sandbox, tmp_path)
        assert run(cfg, ledger).exit_code == 0
        sandbox.configure(people_sourced=["E2", "D3"])
        (src / "employees.csv").write_text(
            PEOPLE.replace("Engineer", "Staff").replace("Lead", "Director"), encoding="utf-8")
        (src / "departments.csv").write_text(
            "department_id,name,parent_id\nD1,Research,\nD2,Platform,D1\nD3,Sales & Ops,\n",
            encoding="utf-8")
        first = run(cfg, ledger)
        assert first.result is not None
        assert sorted((r.op.key, r.code) for r in first.result.failed) == [
            ("D3", 43031), ("E2", 44053)]
        assert all("Feishu People" in (r.message or "") for r in first.result.failed)
        ada = sandbox.tenant.find_user("E1", "user_id")
        assert ada is not None
        assert ada.job_title == "Director"  # the rest went ahead
        assert locked_records(ledger) == Locked(frozenset({"E2"}), frozenset({"D3"}))
        sandbox.sandbox.clear_requests()
        second = run(cfg, ledger)
        assert second.exit_code == 0
        assert second.plan.operations == ()
        assert "user E2 is protected; left as it is" in second.plan.notes
        assert "department D3 is protected; left as it is" in second.plan.notes
        assert not [r for r in sandbox.requests() if r["method"] == "PATCH"]


class TestOtherCodes:
    """44035 on a user patch, leaders with exactly one main leader, custom employee types
    (§1.9, §1.12, §1.13): the sandbox answers as documented, orgsync explains."""

    def test_unknown_department_in_a_user_patch_is_44035(self, sandbox: SandboxServer,
                                                          tmp_path: Path) -> None:
        cfg, ledger, _ = _setup(sandbox, tmp_path)
        assert run(cfg, ledger).exit_code == 0
        error = _error(cfg, lambda c: c.patch_user("E1", {"department_ids": ["D404"]}))
        assert (error.code, error.http_status) == (44035, 400)
        assert "orgsync resync" in explain(error)

    def test_leaders_need_exactly_one_main_leader(self, sandbox: SandboxServer,
                                                  tmp_path: Path) -> None:
        cfg, ledger, _ = _setup(sandbox, tmp_path)
        assert run(cfg, ledger).exit_code == 0
        deputies_only = {"leaders": [{"leaderType": 2, "leaderID": "E1"}]}
        assert _error(cfg, lambda c: c.patch_department("D1", deputies_only)).code == 40001
        main = {"leaders": [{"leaderType": 1, "leaderID": "E1"}]}
        assert with_client(cfg, lambda c: c.patch_department("D1", main))[
            "leader_user_id"] == "E1"

    def test_active_custom_employee_types_are_accepted(self, sandbox: SandboxServer,
                                                       tmp_path: Path) -> None:
        cfg, ledger, _ = _setup(sandbox, tmp_path)
        assert run(cfg, ledger).exit_code == 0
        assert _error(cfg, lambda c: c.patch_user("E1", {"employee_type": 6})).code == 41059
        sandbox.configure(custom_employee_types=["6"])
        assert with_client(cfg, lambda c: c.patch_user("E1", {"employee_type": 6}))[
            "employee_type"] == 6
