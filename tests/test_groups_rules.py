"""The ``groups:`` section and its member rules (pure logic: no Feishu)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orgsync.config import config_from_dict
from orgsync.errors import ConfigError
from orgsync.group_mirror import member_digest, sorted_digest
from orgsync.groups import GroupsConfig, Population, evaluate
from orgsync.model import Department, Employee, EmployeeType


def _groups(define: dict[str, Any], **top: Any) -> GroupsConfig:
    return config_from_dict({
        "version": 1, "feishu": {"app_id": "cli_x", "app_secret": "s"},
        "source": {"type": "csv", "departments": "d.csv", "employees": "e.csv"},
        "groups": {"define": define, **top}}, file="orgsync.yaml", base_dir=Path("/")).groups


def _people() -> Population:
    depts = {d.key: d for d in (Department(key="A", name="A"),
                                Department(key="B", name="B", parent_key="A"),
                                Department(key="C", name="C", parent_key="B"))}
    staff = [Employee(key="M", name="m", department_keys=("A",), job_title="P10", city="北京"),
             Employee(key="N", name="n", department_keys=("B",), manager_key="M",
                      job_title="P9", city="上海"),
             Employee(key="O", name="o", department_keys=("C",), manager_key="N",
                      job_title="P7", employee_type=EmployeeType.INTERN, city="北京"),
             # a manager cycle: P reports to Q, Q to P
             Employee(key="P", name="p", department_keys=("C",), manager_key="Q", city="深圳"),
             Employee(key="Q", name="q", department_keys=("B",), manager_key="P")]
    return Population({e.key: e for e in staff}, depts)


@pytest.mark.parametrize(("rule", "members"), [
    ({"department": "B"}, {"N", "O", "P", "Q"}),
    ({"department": "B", "direct": True}, {"N", "Q"}),
    ({"department": ["C", "A"], "direct": True}, {"M", "O", "P"}),
    ({"job_title": ">=P9"}, {"M", "N"}),  # natural order: P10 after P9
    ({"job_title": "P8+"}, {"M", "N"}),
    ({"job_title": "<P9"}, {"O"}),
    ({"city": ["北京", "深圳"]}, {"M", "O", "P"}),
    ({"city": "!=北京"}, {"N", "P"}),  # no city is no value: never matched
    ({"employee_type": "intern"}, {"O"}),
    ({"employee_type": 1}, {"M", "N", "P", "Q"}),
    ({"reports_to": "M"}, {"N", "O"}),
    ({"reports_to": "P"}, {"Q"}),  # the cycle ends
    ({"is_manager": True}, {"M", "N", "P", "Q"}),
    ({"is_manager": False}, {"O"}),
    ({"any": [{"city": "上海"}, {"department": "C", "direct": True}]}, {"N", "O", "P"}),
    ({"not": {"department": "B"}}, {"M"}),
    ({"department": "A", "city": "北京", "not": {"is_manager": True}}, {"O"}),
])
def test_rules(rule: dict[str, Any], members: set[str]) -> None:
    spec = _groups({"g": {"name": "G", "members": rule}}).define[0]
    assert evaluate(spec, _people()) == members


def test_defaults_and_ids() -> None:
    cfg = _groups({"g1": {"name": "G", "members": {"city": "x"}},
                   "two-words": {"name": "H", "id": "h2", "members": {"city": "y"}}},
                  max_removal_fraction=0.5)
    assert [(g.key, g.group_id) for g in cfg.define] == [("g1", "g1"), ("two-words", "h2")]
    assert (cfg.max_removal_fraction, cfg.guard_min_members) == (0.5, 50)


@pytest.mark.parametrize(("define", "key", "message"), [
    ({"a-b": {"name": "G", "members": {"city": "x"}}}, "groups.define.a-b.id",
     "is needed: the key 'a-b' is no valid Feishu group id"),
    ({"g": {"name": "G", "id": "has space", "members": {"city": "x"}}}, "groups.define.g.id",
     "'has space' is no valid Feishu group id"),
    ({"g": {"name": "x" * 101, "members": {"city": "x"}}}, "groups.define.g.name",
     "longer than Feishu's 100 characters"),
    ({"g": {"name": "G"}}, "groups.define.g.members", "is required"),
    ({"g": {"name": "G", "members": {"town": "x"}}}, "groups.define.g.members.town",
     "unknown rule 'town'"),
    ({"g": {"name": "G", "members": {"employee_type": "pilot"}}},
     "groups.define.g.members.employee_type", "'pilot' is no employee type"),
    ({"g": {"name": "G", "members": {"all": []}}}, "groups.define.g.members.all",
     "expected a non-empty list of rules"),
    ({"g": {"name": "G", "members": {"city": "x"}},
      "h": {"name": "G", "members": {"city": "y"}}}, "groups.define.h",
     "name 'G' is also group 'g''s"),
    ({f"g{n}": {"name": f"G{n}", "members": {"city": "x"}} for n in range(501)},
     "groups.define", "501 groups, over Feishu's 500 per tenant"),
])
def test_bad_config_fails_fast_naming_the_key(define: dict[str, Any], key: str,
                                               message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _groups(define)
    assert caught.value.key == key
    assert message in str(caught.value)
    assert caught.value.file == "orgsync.yaml"


def test_a_plan_digests_positions_as_the_ledger_digests_keys() -> None:
    # the plan digests a group from its members' positions, in key order, without
    # building the key set: it must match the digest stored from the keys
    people = _people()
    for rule in ({"department": "B"}, {"is_manager": True}, {"city": "!=北京"}):
        spec = _groups({"g": {"name": "G", "members": rule}}).define[0]
        ids = spec.rule(people)
        assert sorted_digest(people.in_order(ids)) == member_digest(evaluate(spec, people))
