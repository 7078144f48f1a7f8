"""The ``scope`` rules are one rule for every source: CSV, LDAP (a real slapd) and an HRIS
API each read with and without the same rules; the scoped read is the unscoped one less
exactly the records the rules name (issue 24)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from orgsync.config import config_from_dict
from orgsync.model import Snapshot
from orgsync.preview import preview_source, to_json
from orgsync.runner import read_raw
from orgsync.synth import generate_org, write_csv
from orgsync.validate import validate
from tests.connectors.json_server import JsonServer
from tests.connectors.ldap import data
from tests.connectors.ldap.slapd import Slapd
from tests.connectors.test_hris import GENERIC, OFFSET, offset_pages


def read(source: dict[str, Any], tmp_path: Path, scope: dict[str, Any] | None = None) -> Any:
    sections = {"scope": scope} if scope is not None else {}
    cfg = config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "b"},
                            "source": source, **sections}, file="<test>", base_dir=tmp_path)
    return validate(read_raw(cfg))


def subtree(org: Snapshot, key: str) -> set[str]:
    out = {key}
    grew = True
    while grew:
        below = {k for k, d in org.departments.items() if d.parent_key in out}
        grew = not below <= out
        out |= below
    return out


def check_same_rule(source: dict[str, Any], tmp_path: Path) -> None:
    """Exclude the biggest subtree below the top, and the people of another department
    with a given email domain: the scoped read lacks exactly those people and the
    subtree's departments; nothing else changes."""
    whole = read(source, tmp_path).snapshot
    below_top = [k for k, d in whole.departments.items() if d.parent_key is not None]
    assert below_top, "the source needs a department below the top"
    biggest = max(sorted(below_top), key=lambda k: len(subtree(whole, k)))
    gone_departments = subtree(whole, biggest)
    odd = sorted((e for e in whole.employees.values()
                  if e.email and e.department_keys[0] not in gone_departments),
                 key=lambda e: e.key)[-1]
    domain = (odd.email or "").rpartition("@")[2]
    team = subtree(whole, odd.department_keys[0])
    expected = {k for k, e in whole.employees.items()
                if e.department_keys[0] in gone_departments
                or (e.department_keys[0] in team
                    and (e.email or "").lower().endswith("@" + domain.lower()))}
    assert odd.key in expected
    # in scope, but also a member of a department out of it: held, with the remedy
    split = {k for k, e in whole.employees.items()
             if k not in expected and not gone_departments.isdisjoint(e.department_keys)}
    scoped = read(source, tmp_path, {"exclude": [
        {"name": "division", "department": biggest},
        # a person condition: unknown for departments, so it takes none of them out
        {"all": [{"email_domain": re.escape(domain)},
                 {"department": odd.department_keys[0]}]}]})
    assert set(scoped.out_of_scope_employees) == expected
    assert set(scoped.out_of_scope_departments) == gone_departments
    assert scoped.snapshot.employees.keys() == whole.employees.keys() - expected - split
    assert {i.key for i in scoped.issues if i.field == "department_keys"} == split
    assert scoped.snapshot.departments.keys() == whole.departments.keys() - gone_departments
    assert all(why.startswith(("out of scope by rule 'division' (scope.exclude[0])",
                               "out of scope by rule scope.exclude[1]"))
               for why in scoped.out_of_scope_employees.values())


def test_csv(tmp_path: Path) -> None:
    org = generate_org(employees=80, departments=10, levels=3)
    write_csv(org, tmp_path)
    check_same_rule({"type": "csv", "departments": "departments.csv",
                     "employees": "employees.csv"}, tmp_path)


def test_active_directory(ad: Slapd, tmp_path: Path) -> None:
    check_same_rule({"type": "ldap", "preset": "ad", "url": ad.url,
                     "bind_dn": data.AD_READER_DN, "bind_password": data.READER_PASSWORD,
                     "base_dn": data.AD_STAFF, "allow_plaintext": True}, tmp_path)


def test_an_hris_api(tmp_path: Path) -> None:
    with JsonServer(offset_pages) as srv:
        check_same_rule({"type": "hris", "base_url": srv.url, "backoff": 0.01,
                         "employees": {"path": "/people", "records": "data",
                                       "pagination": OFFSET},
                         "departments": {"from": "path", "field": "dept"},
                         "mapping": {"employees": GENERIC}}, tmp_path)


@pytest.mark.parametrize("kind", ["csv"])
def test_preview_lists_who_is_out_of_scope(kind: str, tmp_path: Path) -> None:
    """preview-source's JSON names each record out of scope and the rule."""
    org = generate_org(employees=20, departments=4, levels=2)
    write_csv(org, tmp_path)
    cfg = config_from_dict({"version": 1, "feishu": {"app_id": "a", "app_secret": "b"},
                            "source": {"type": kind, "departments": "departments.csv",
                                       "employees": "employees.csv"},
                            "scope": {"include": [{"name": "first", "department": "D0001"}]}},
                           file="<test>", base_dir=tmp_path)
    doc = json.loads(to_json(preview_source(cfg)))
    outside = {k for k, e in org.employees.items() if e.department_keys[0] not in
               subtree(org, "D0001")}
    assert set(doc["out_of_scope"]["employees"]) == outside
    assert doc["summary"]["out_of_scope_employees"] == len(outside)
    assert doc["summary"]["held_employees"] == 0
