"""LDAP group objects as source groups, on a real slapd: nested groups flattened, a membership
cycle ended, an empty group a failed read; then synced into the sandbox's user groups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from connectors.ldap import LdapConnector
from orgsync.config import config_from_dict
from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from tests.connectors.ldap.slapd import Slapd, available, ldif_entry
from tests.sandbox_run import SCALE, run

BASE = "dc=example,dc=com"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"


def _ldif() -> str:
    out = [ldif_entry(BASE, [("objectClass", "dcObject"), ("objectClass", "organization"),
                             ("dc", "example"), ("o", "Example")]),
           ldif_entry(PEOPLE, [("objectClass", "organizationalUnit"), ("ou", "people")]),
           ldif_entry(f"ou=研发部,{PEOPLE}", [("objectClass", "organizationalUnit"),
                                              ("ou", "研发部")]),
           ldif_entry(GROUPS, [("objectClass", "organizationalUnit"), ("ou", "groups")])]
    for i in range(1, 6):
        out.append(ldif_entry(f"uid=u{i},ou=研发部,{PEOPLE}", [
            ("objectClass", "inetOrgPerson"), ("uid", f"u{i}"), ("cn", f"User {i}"),
            ("sn", str(i)), ("displayName", f"员工{i}"), ("mobile", f"+86 138 0000 000{i}")]))

    def group(cn: str, members: list[str]) -> str:
        return ldif_entry(f"cn={cn},{GROUPS}", [("objectClass", "groupOfNames"), ("cn", cn),
                                                *(("member", m) for m in members)])
    # eng holds u1 and the platform group; platform holds u2, u3 and eng again (a cycle)
    out.append(group("eng", [f"uid=u1,ou=研发部,{PEOPLE}", f"cn=platform,{GROUPS}"]))
    out.append(group("platform", [f"UID=u2,OU=研发部,{PEOPLE}", f"uid=u3,ou=研发部,{PEOPLE}",
                                  f"cn=eng,{GROUPS}"]))
    out.append(group("sales", [f"uid=u4,ou=研发部,{PEOPLE}"]))
    # groupOfNames needs a member: this one names nobody who is read
    out.append(group("ghosts", [f"uid=nobody,{PEOPLE}"]))
    return "".join(out)


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    if not available():
        pytest.fail("slapd is not installed: run 'bash tests/run'")
    with Slapd(base=BASE, ldif=_ldif()) as server:
        yield server


def _source(server: Slapd) -> dict[str, Any]:
    return {"type": "ldap", "preset": "openldap", "url": server.url, "bind_dn": server.admin_dn,
            "bind_password": server.password, "base_dn": PEOPLE, "allow_plaintext": True,
            "mapping": {"employees": {"key": "uid"}}, "groups": {"base_dn": GROUPS}}


def test_nested_groups_are_flattened_and_a_cycle_ends(slapd: Slapd) -> None:
    options = {k: v for k, v in _source(slapd).items() if k != "type"}
    data = LdapConnector.from_config(options, base_dir=Path("/tmp"),
                                     file="orgsync.yaml").read()
    assert data.groups["eng"] == {"u1", "u2", "u3"}
    assert data.groups["platform"] == {"u1", "u2", "u3"}
    assert data.groups[f"cn=sales,{GROUPS}"] == {"u4"}
    assert data.groups["ghosts"] == frozenset()


def test_source_groups_sync_and_an_empty_one_is_a_failed_read(
        slapd: Slapd, sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.configure(rate_scale=SCALE)
    define = {"eng": {"name": "Engineering", "members": {"source_group": "eng"}},
              "sales": {"name": "Sales", "members": {"source_group": "sales"}},
              "ghosts": {"name": "Ghosts", "members": {"source_group": "ghosts"}}}
    cfg = config_from_dict({
        "version": 1,
        "feishu": {"base_url": sandbox.base_url, "app_id": sandbox.config.app_id,
                   "app_secret": sandbox.config.app_secret, "rate_scale": SCALE},
        "source": _source(slapd), "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}"},
        "groups": {"define": define}}, file="<test>", base_dir=tmp_path)
    ledger = Ledger(cfg.ledger.url)
    outcome = run(cfg, ledger)
    assert outcome.exit_code == 0
    tenant = sandbox.tenant

    def groups() -> dict[str, set[str]]:
        return {g["group_id"]: {tenant.users[o].user_id for o in g["members"]}
                for g in tenant.dump_groups()}

    assert groups() == {"eng": {"u1", "u2", "u3"}, "sales": {"u4"}}
    assert [str(i) for i in outcome.plan.issues if i.entity == "group"] == [
        "group ghosts: members: source group ghosts came back missing or empty: a failed "
        "read, not 'remove everyone'; the group is left as it is (held back)"]
    # u3 leaves the platform group; sales empties: eng loses u3, sales is left as it is
    admin = ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port), slapd.admin_dn,
                             slapd.password, auto_bind=True)
    admin.modify(f"cn=platform,{GROUPS}",
                 {"member": [(ldap3.MODIFY_DELETE, [f"uid=u3,ou=研发部,{PEOPLE}"])]})
    admin.modify(f"cn=sales,{GROUPS}",
                 {"member": [(ldap3.MODIFY_REPLACE, [f"uid=nobody,{PEOPLE}"])]})
    admin.unbind()
    again = run(cfg, ledger)
    assert again.exit_code == 0
    assert groups() == {"eng": {"u1", "u2"}, "sales": {"u4"}}
