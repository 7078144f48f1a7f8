"""The tenant's job levels, job families (职级, 序列) and custom employee types: HR names
them, Feishu users point at them by id (feishu-api-more.md §5.1–§5.3, §1.13).

A run whose source provides ``job_level`` / ``job_family`` / ``custom_employee_type``
looks each name up: first in
the ledger's cache of the catalog (name → id), and only when a name is not there in
Feishu (one paged list, which refreshes the cache). A name the tenant lacks is created by
``apply`` when ``sync.create_job_levels`` / ``create_job_families`` /
``create_employee_types`` allow it (a dry run
shows it as ``(new job_level P9)``); otherwise everyone naming it is held with the reason
and the remedy, and left as they are. Creating is idempotent by name: a create that finds
the name taken (an earlier run died after creating it) lists the catalog again.

Entries are matched by exact name. A job level or family HR also names by a stable code
(``job_level_code`` / ``job_family_code``) is the same entry under a new name: the ledger
remembers code → id, and a new name under a known code renames that entry (PUT, by
``apply``; a dry run shows the new name on the same id) instead of creating one. A code
given with two names in one read is ambiguous: reported, and nothing renamed by it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Protocol

import structlog

from orgsync.errors import FeishuError
from orgsync.feishu.schema import CATALOG_CODES, CATALOG_FIELDS
from orgsync.ledger import Ledger
from orgsync.source import Issue, SourceData
from orgsync.state import DirectoryState

log = structlog.get_logger("orgsync.catalogs")

#: Duplicate name, the entry exists already: 42305 job level, 42406 job family, 42301
#: employee type (the same number means "not found" for job levels: hence per catalog).
_TAKEN = {"job_level": 42305, "job_family": 42406, "employee_type": 42301}
_WHAT = {"job_level": ("job level", "create_job_levels", "职级"),
         "job_family": ("job family", "create_job_families", "序列"),
         "employee_type": ("employee type", "create_employee_types", "人员类型")}


class CatalogAPI(Protocol):
    """The part of :class:`orgsync.feishu.FeishuClient` this module calls."""

    async def job_catalog(self, kind: str) -> dict[str, str]: ...
    async def create_job_catalog_entry(self, kind: str, name: str) -> str: ...
    async def rename_job_catalog_entry(self, kind: str, entry_id: str, name: str) -> None: ...


async def resolve(raw: SourceData, client: CatalogAPI, ledger: Ledger, *,
                  create: frozenset[str], apply: bool) -> SourceData:
    """``raw`` with :attr:`SourceData.catalogs` holding every name its records use, and
    the people naming an entry the tenant lacks (and ``create`` does not allow, by
    catalog) held. ``apply``: allowed entries are created now; else shown as new."""
    fields = {f: c for f, c in CATALOG_FIELDS.items() if f in raw.profile_fields
              and c in _WHAT}  # avatars are resolved by orgsync.avatars
    if not fields:
        return raw
    catalogs: dict[str, dict[str, str]] = {}
    issues = list(raw.issues)
    held = set(raw.held_employees)
    named, coded = _gather(raw, fields)
    for field_name, catalog in fields.items():
        names = named[field_name]
        known: dict[str, str] = json.loads(ledger.get_meta(f"catalog.{catalog}") or "{}")
        if not names <= known.keys():
            known = await client.job_catalog(catalog)
            ledger.set_meta(f"catalog.{catalog}", json.dumps(known, ensure_ascii=False))
        what, option, zh = _WHAT[catalog]
        codes = _codes(raw, field_name, coded.get(field_name), catalog, issues)
        if codes:
            await _rename(client, ledger, catalog, codes, known, apply=apply)
        lacking = names - known.keys()
        holders = _holders(raw, field_name, lacking) if lacking and catalog not in create \
            else {}
        for name in sorted(lacking):
            if catalog not in create:
                for key in holders[name]:
                    held.add(key)
                    issues.append(Issue(
                        "employee", key, field_name,
                        f"{what} '{name}' is not in Feishu: add it there (管理后台 › 组织架构 › "
                        f"{zh}), or set sync.{option}: true", "error", raw.where("employee", key)))
            elif apply:
                known[name] = await _create(client, ledger, catalog, name, known)
            else:
                known[name] = f"(new {catalog} {name})"
        catalogs[catalog] = {n: known[n] for n in names if n in known}
        if codes and apply:
            _remember(ledger, catalog, codes, known)
    return replace(raw, catalogs=catalogs, issues=issues, held_employees=held)


#: code → (the names it goes with, the first person giving it)
_Coded = dict[str, tuple[set[str], str]]


def _gather(raw: SourceData, fields: dict[str, str]
            ) -> tuple[dict[str, set[str]], dict[str, _Coded]]:
    """By catalog field: the names the people give, and each stable code (of the fields
    :data:`CATALOG_CODES` gives one) with its names — one pass over the people, as at
    10⁵ records every pass counts (``orgsync.bench``)."""
    named: dict[str, set[str]] = {f: set() for f in fields}
    coded: dict[str, _Coded] = {f: {} for f in fields if f in CATALOG_CODES}
    pairs = [(f, named[f], CATALOG_CODES.get(f, ""), coded.get(f)) for f in fields]
    for key, e in raw.snapshot.employees.items():
        profile = e.profile
        if not profile:
            continue
        for field_name, names, code_key, codes in pairs:
            name = profile.get(field_name)
            if not name:
                continue
            names.add(str(name))
            if codes is not None and (code := profile.get(code_key)):
                found = codes.get(code)
                if found is None:
                    codes[code] = ({name}, key)
                else:
                    found[0].add(name)
    return named, coded


def _holders(raw: SourceData, field_name: str, names: set[str]) -> dict[str, list[str]]:
    """Each of ``names`` → the people giving it as their ``field_name`` (a second pass,
    only when the tenant lacks a name)."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for key, e in raw.snapshot.employees.items():
        name = e.profile.get(field_name)
        if name and (found := out.get(str(name))) is not None:
            found.append(key)
    return out


def _codes(raw: SourceData, field_name: str, coded: _Coded | None, catalog: str,
           issues: list[Issue]) -> dict[str, str]:
    """The source's stable codes of ``catalog`` (``coded``, from :func:`_gather`) → the one
    name each goes with (a code given with two names is reported, once per code, and left
    out)."""
    code_key = CATALOG_CODES.get(field_name)
    if code_key is None or not coded:
        return {}
    names = {c: n for c, (n, _) in coded.items()}
    first = {c: k for c, (_, k) in coded.items()}
    what = _WHAT[catalog][0]
    for code in sorted(c for c, n in names.items() if len(n) > 1):
        issues.append(Issue(
            "employee", first[code], code_key,
            f"{what} code '{code}' goes with several names ({', '.join(sorted(names[code]))}): "
            "give each code one name; nothing is renamed by it", "warning",
            raw.where("employee", first[code])))
    return {c: next(iter(n)) for c, n in names.items() if len(n) == 1}


async def _rename(client: CatalogAPI, ledger: Ledger, catalog: str, codes: dict[str, str],
                  known: dict[str, str], *, apply: bool) -> None:
    """Entries whose remembered code now goes with a name the tenant lacks: renamed
    (``apply``) or shown under the new name (``known`` updated either way)."""
    ids: dict[str, str] = json.loads(ledger.get_meta(f"catalog_codes.{catalog}") or "{}")
    names = {i: n for n, i in known.items()}
    for code, name in sorted(codes.items()):
        entry = ids.get(code)
        old = names.get(entry) if entry else None
        if entry is None or old is None or name in known:
            continue
        if apply:
            await client.rename_job_catalog_entry(catalog, entry, name)
            log.info("catalog.renamed", catalog=catalog, code=code, old=old, name=name, id=entry)
        del known[old]
        known[name], names[entry] = entry, name
        if apply:
            ledger.set_meta(f"catalog.{catalog}", json.dumps(known, ensure_ascii=False))


def _remember(ledger: Ledger, catalog: str, codes: dict[str, str], known: dict[str, str]) -> None:
    """Record code → entry id for the codes whose name the tenant now has."""
    key = f"catalog_codes.{catalog}"
    ids: dict[str, str] = json.loads(ledger.get_meta(key) or "{}")
    found = {c: known[n] for c, n in codes.items() if n in known}
    if any(ids.get(c) != i for c, i in found.items()):
        ledger.set_meta(key, json.dumps({**ids, **found}, ensure_ascii=False))


async def _create(client: CatalogAPI, ledger: Ledger, catalog: str, name: str,
                  known: dict[str, str]) -> str:
    try:
        entry = await client.create_job_catalog_entry(catalog, name)
        log.info("catalog.created", catalog=catalog, name=name, id=entry)
    except FeishuError as exc:
        if exc.code != _TAKEN[catalog]:
            raise
        known.update(await client.job_catalog(catalog))
        if name not in known:
            raise
        entry = known[name]
    known[name] = entry
    ledger.set_meta(f"catalog.{catalog}", json.dumps(known, ensure_ascii=False))
    return entry


def named(state: DirectoryState, ledger: Ledger) -> DirectoryState:
    """A live read's job level / family ids as names (by the cached catalogs), as the
    mirror and the source hold them; an id the cache does not know stays (it differs from
    every name, so the diff repairs it)."""
    names = {c: {i: n for n, i in json.loads(ledger.get_meta(f"catalog.{c}") or "{}").items()}
             for c in set(CATALOG_FIELDS.values())}
    for key, u in state.users.items():
        profile = u.record.profile
        if any(f in profile for f in CATALOG_FIELDS):
            renamed = {f: names[CATALOG_FIELDS[f]].get(v, v) if f in CATALOG_FIELDS else v
                       for f, v in profile.items()}
            state.users[key] = replace(u, record=replace(u.record, profile=renamed))
    return state
