"""LDAP / AD group objects as source groups (``source.groups``), nested groups flattened.

A group's ``member`` values are DNs of people or of other groups (flattened by
:func:`connectors.groups.flatten`). Each group is named by its ``name`` attribute (``cn``) and
by its DN (normalised), so ``groups.define.*.members: {source_group: eng}`` finds it either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.groups import flatten
from connectors.ldap.entries import normalize_dn
from orgsync.options import Section


@dataclass(frozen=True)
class LdapGroups:
    """Where the group objects are and which attributes name them and their members."""

    base_dn: str
    filter: str
    name: str = "cn"
    member: str = "member"


def parse_groups(opts: Section, base_dn: str) -> LdapGroups | None:
    """``source.groups`` (absent: no source groups are read)."""
    if opts.raw("groups") is None:
        return None
    g = opts.section("groups")
    spec = LdapGroups(base_dn=g.string("base_dn", base_dn),
                      filter=g.string("filter", "(|(objectClass=groupOfNames)"
                                                "(objectClass=group))"),
                      name=g.string("name", "cn"), member=g.string("member", "member"))
    g.done()
    if not spec.filter.startswith("("):
        raise g.error("filter", f"'{spec.filter}' is no LDAP filter", "write it in parentheses")
    return spec


def flatten_ldap(entries: Iterable[tuple[str, Mapping[str, Any]]], spec: LdapGroups,
                 people: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Group name and DN → the keys of the people in it (:func:`connectors.groups.flatten`).

    ``people``: normalised DN → employee key (people outside it are not counted).
    """
    members: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for dn, entry in entries:
        norm = normalize_dn(dn)
        values = entry.get(spec.member) or []
        members[norm] = [normalize_dn(v) for v in
                         (values if isinstance(values, list) else [values]) if isinstance(v, str)]
        name = entry.get(spec.name)
        name = name[0] if isinstance(name, list) and name else name
        if isinstance(name, str):
            names[norm] = name
    return flatten(members, names, people)
