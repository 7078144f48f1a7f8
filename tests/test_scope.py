"""The ``scope:`` rules over the real sandbox: who orgsync manages at all (issue 24).

Out of scope is not gone: a managed person who leaves scope is released (kept in
Feishu exactly as they are), never frozen or deleted, and coming back re-adopts them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from orgsync.config import config_from_dict
from orgsync.errors import ConfigError, PlanHeld
from orgsync.explain import explain
from orgsync.ledger import Ledger
from orgsync.model import Department, Employee, EmployeeType, Snapshot
from orgsync.sandbox import SandboxServer
from orgsync.state import Lifecycle
from orgsync.synth import write_csv
from tests.sandbox_run import SCALE, config, run


def person(key: str, dept: str, **kw: Any) -> Employee:
    n = int(key[1:])
    return Employee(key=key, name=f"员工{n}", department_keys=(dept,),
                    email=f"{key.lower()}@{kw.pop('domain', 'example.com')}",
                    mobile=f"+86138001380{n:02d}", **kw)


#: 集团 (D1) › 研发 (D2) › 平台 (D3); 集团 › 香港子公司 (D4) › 香港销售 (D5)
ORG = Snapshot(
    {"D1": Department(key="D1", name="集团"), "D2": Department(key="D2", name="研发", parent_key="D1"),
     "D3": Department(key="D3", name="平台", parent_key="D2"),
     "D4": Department(key="D4", name="香港子公司", parent_key="D1"),
     "D5": Department(key="D5", name="香港销售", parent_key="D4")},
    {e.key: e for e in [
        person("E01", "D1", city="北京", join_date=date(2020, 1, 1)),
        person("E02", "D2", city="北京", join_date=date(2026, 7, 1)),
        person("E03", "D3", employee_type=EmployeeType.OUTSOURCED, city="上海"),
        person("E04", "D3", domain="partner.com", city="上海"),
        person("E05", "D4", city="香港"),
        person("E06", "D5", city="香港", employee_type=EmployeeType.INTERN),
        person("E07", "D2", domain="Vendor.CN", city="深圳", employee_type=EmployeeType.INTERN),
    ]})


@pytest.fixture(name="sb")
def _sb(sandbox: SandboxServer) -> SandboxServer:
    sandbox.configure(rate_scale=SCALE)
    return sandbox


def feishu_users(sb: SandboxServer) -> set[str]:
    return {u.user_id for u in sb.tenant.users.values() if not u.resigned}


def feishu_departments(sb: SandboxServer) -> set[str]:
    return {d.custom_id for d in sb.tenant.departments.values()
            if not d.deleted and d.custom_id != "0"}


# (scope section, people out of scope, departments out of scope)
RULES: list[tuple[str, dict[str, Any], set[str], set[str]]] = [
    ("employee type", {"exclude": [{"employee_type": "outsourced"}]}, {"E03"}, set()),
    ("city", {"exclude": [{"city": "香港"}]}, {"E05", "E06"}, set()),
    ("subtree by code", {"exclude": [{"department": "D4"}]}, {"E05", "E06"}, {"D4", "D5"}),
    ("subtree by path", {"exclude": [{"department_path": "集团/研发"}]}, {"E02", "E03", "E04",
                                                                          "E07"}, {"D2", "D3"}),
    ("email domain regex", {"exclude": [{"email_domain": r"partner\.com|vendor\.cn"}]},
     {"E04", "E07"}, set()),
    ("join date window", {"exclude": [{"join_date": {"from": "2026-01-01"}}]}, {"E02"}, set()),
    ("all", {"exclude": [{"all": [{"city": "香港"}, {"employee_type": "intern"}]}]}, {"E06"},
     set()),
    ("any", {"exclude": [{"any": [{"city": "深圳"}, {"employee_type": "外包"}]}]},
     {"E03", "E07"}, set()),
    ("not", {"exclude": [{"not": {"city": ["北京", "上海"]}}]}, {"E05", "E06", "E07"}, set()),
    ("include", {"include": [{"department": "D2"}]}, {"E01", "E05", "E06"}, {"D4", "D5"}),
    ("include and exclude", {"include": [{"department": ["D2", "D4"]}],
                             "exclude": [{"employee_type": "intern"}]},
     {"E01", "E06", "E07"}, set()),
]


@pytest.mark.parametrize(("scope", "people", "departments"),
                         [pytest.param(*r[1:], id=r[0]) for r in RULES])
def test_rules_decide_who_is_synced(sb: SandboxServer, tmp_path: Path, scope: dict[str, Any],
                                    people: set[str], departments: set[str]) -> None:
    """Each rule, synced into an empty tenant: Feishu holds exactly what is in scope."""
    write_csv(ORG, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", scope=scope)
    out = run(cfg, Ledger(cfg.ledger.url))
    assert out.exit_code == 0
    assert feishu_users(sb) == ORG.employees.keys() - people
    assert feishu_departments(sb) == ORG.departments.keys() - departments
    assert not [i for i in out.plan.issues if i.severity == "error"]


def test_a_person_moved_out_of_scope_is_released_not_frozen(sb: SandboxServer,
                                                             tmp_path: Path) -> None:
    """E05 moves to 香港 (out of scope): released, untouched in Feishu, reported once; a
    leaver in the same run is frozen; E05 gone from the source later is still not
    frozen; back in scope, the same account is managed again."""
    write_csv(ORG, tmp_path / "s")
    scope = {"exclude": [{"name": "hong-kong", "city": "香港"}]}
    moved = dataclasses.replace(ORG.employees["E01"], city="香港", job_title="董事")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", scope={"exclude": [{"city": "广州"}]})
    ledger = Ledger(cfg.ledger.url)
    run(cfg, ledger)
    assert feishu_users(sb) == set(ORG.employees)
    before = sb.tenant.find_user("E01", "user_id")
    assert before is not None
    as_it_was = dataclasses.asdict(before)

    org = Snapshot(ORG.departments, {**{k: e for k, e in ORG.employees.items() if k != "E07"},
                                     "E01": moved})
    write_csv(org, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", scope=scope)
    out = run(cfg, ledger)
    ops = {(op.kind.value, op.key): op for op in out.plan.operations}
    assert set(ops) >= {("user.release", "E01"), ("user.release", "E05"),
                        ("user.release", "E06"), ("user.freeze", "E07")}
    assert ops[("user.release", "E01")].reason == (
        "out of scope by rule 'hong-kong' (scope.exclude[0]); no longer managed, left in "
        "Feishu as it is")
    after = sb.tenant.find_user("E01", "user_id")
    assert after is not None
    assert dataclasses.asdict(after) == as_it_was  # not frozen, not patched, not moved
    frozen = sb.tenant.find_user("E07", "user_id")
    assert frozen is not None
    assert frozen.frozen
    state = ledger.load_state()
    assert "E01" not in state.users
    assert state.released["E01"].lifecycle is Lifecycle.RELEASED
    assert run(cfg, ledger).plan.empty  # reported once
    assert asyncio.run(explain(cfg, ledger, "E01"))["state"] == (
        "out of scope by rule 'hong-kong' (scope.exclude[0]); released: no longer managed, "
        "left in Feishu as it is")

    # gone from the source while released: still nobody's leaver
    write_csv(Snapshot(ORG.departments, {k: e for k, e in org.employees.items()
                                         if k != "E01"}), tmp_path / "s")
    assert run(cfg, ledger).plan.empty
    after = sb.tenant.find_user("E01", "user_id")
    assert after is not None
    assert not after.frozen

    # back in scope (and in the source): the same account is re-adopted and patched
    back = dataclasses.replace(moved, city="北京")
    write_csv(Snapshot(ORG.departments, {**org.employees, "E01": back}), tmp_path / "s")
    out = run(cfg, ledger)
    adopt = [op for op in out.plan.operations if op.key == "E01"]
    assert [op.kind.value for op in adopt] == ["user.adopt"]
    assert adopt[0].reason == "back in scope: the account released earlier is managed again"
    assert out.exit_code == 0
    user = sb.tenant.find_user("E01", "user_id")
    assert user is not None
    assert (user.job_title, user.city) == ("董事", "北京")
    assert len([u for u in sb.tenant.users.values() if u.name == back.name]) == 1
    assert ledger.load_state().users["E01"].lifecycle is Lifecycle.ACTIVE


def test_releasing_many_is_held_like_any_threshold(sb: SandboxServer, tmp_path: Path) -> None:
    """A scope change releasing 3 of 7 managed people (43 % > 20 %) is held."""
    write_csv(ORG, tmp_path / "s")
    safety = {"min_managed": 5}
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", safety=safety)
    ledger = Ledger(cfg.ledger.url)
    run(cfg, ledger)
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", safety=safety,
                 scope={"exclude": [{"department": "D3"}, {"city": "深圳"}]})
    with pytest.raises(PlanHeld) as held:
        run(cfg, ledger)
    assert held.value.reasons == [
        "3 managed users released as out of scope (scope rules) are 43% of the 7 managed, "
        "over safety.max_user_release_fraction=20%"]
    assert "E03" in ledger.load_state().users


def test_an_in_scope_department_under_an_excluded_one_is_held(sb: SandboxServer,
                                                              tmp_path: Path) -> None:
    """Excluding 研发 but not its child 平台 holds 平台 (and its people) with the remedy."""
    write_csv(ORG, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db", scope={"exclude": [
        {"all": [{"department": "D2"}, {"not": {"department": "D3"}}]}]})
    out = run(cfg, Ledger(cfg.ledger.url))
    issues = [str(i) for i in out.plan.issues if i.entity == "department"]
    assert issues == [
        "departments.csv:4: department D3: parent_key: is in scope but D2 above it is not "
        "(out of scope by rule scope.exclude[0]); Feishu cannot hold it without its parent: "
        "bring D2 into scope or take D3 out of it (scope.include / scope.exclude) (held back)"]
    assert feishu_departments(sb) == {"D1", "D4", "D5"}
    assert feishu_users(sb) == {"E01", "E05", "E06"}


@pytest.mark.parametrize(("scope", "key", "remedy"), [
    ({"exclude": {"city": "香港"}}, "scope.exclude", "e.g. exclude: [{employee_type: outsourced}"),
    ({"exclude": [{"town": "香港"}]}, "scope.exclude[0].town", "known: employee_type, city"),
    ({"exclude": [{"employee_type": "boss"}]}, "scope.exclude[0].employee_type", "1-5, regular"),
    ({"include": [{"email_domain": "("}]}, "scope.include[0].email_domain", "e.g. email_domain"),
    ({"exclude": [{"join_date": {"from": "next week"}}]}, "scope.exclude[0].join_date.from",
     "write YYYY-MM-DD"),
    ({"exclude": [{"any": []}]}, "scope.exclude[0].any", None),
    ({"excluded": []}, "scope.excluded", "did you mean"),
])
def test_a_bad_rule_fails_the_config_load(tmp_path: Path, scope: dict[str, Any], key: str,
                                          remedy: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "b"},
                          "source": {"type": "csv", "employees": "e.csv",
                                     "departments": "d.csv"}, "scope": scope},
                         file="orgsync.yaml", base_dir=tmp_path)
    assert caught.value.key == key
    if remedy is not None:
        assert remedy in (caught.value.remedy or "")


def test_a_division_out_of_scope_is_released_and_taken_back(sb: SandboxServer,
                                                            tmp_path: Path) -> None:
    """Excluding 香港子公司 releases its departments and people (no Feishu write, reported
    once); lifting the rule takes the same departments and accounts back, nothing twice."""
    write_csv(ORG, tmp_path / "s")
    cfg = config(sb, tmp_path / "s", tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    run(cfg, ledger)
    before = sb.tenant.state()
    mark = len(sb.requests())
    excluded = config(sb, tmp_path / "s", tmp_path / "l.db",
                      scope={"exclude": [{"name": "hk", "department": "D4"}]})
    out = run(excluded, ledger)
    assert sorted((op.kind.value, op.key) for op in out.plan.operations) == [
        ("department.release", "D4"), ("department.release", "D5"),
        ("user.release", "E05"), ("user.release", "E06")]
    assert out.plan.operations[-1].kind.value == "department.release"  # people first
    assert all(r["method"] == "GET" or "tenant_access_token" in r["path"]
               for r in sb.requests()[mark:])
    assert sb.tenant.state() == before
    state = ledger.load_state()
    assert set(state.departments) == {"D1", "D2", "D3"}
    assert set(state.released) == {"E05", "E06"}
    assert run(excluded, ledger).plan.empty

    out = run(cfg, ledger)
    assert out.exit_code == 0
    kinds = sorted((op.kind.value, op.key) for op in out.plan.operations)
    assert ("department.adopt", "D4") in kinds
    assert ("department.adopt", "D5") in kinds
    assert ("user.adopt", "E05") in kinds
    assert ("user.adopt", "E06") in kinds
    assert not [k for k in kinds if k[0].endswith(".create")]
    after = sb.tenant.state()
    assert len(after["users"]) == len(before["users"])
    assert len(after["departments"]) == len(before["departments"])
    state = ledger.load_state()
    assert set(state.departments) == set(ORG.departments)
    assert set(state.users) == set(ORG.employees)
    assert not state.released
    assert run(cfg, ledger).plan.empty
