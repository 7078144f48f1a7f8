"""Read the live Feishu directory back into canonical form (full resync, ``check``, tests).

Departments come from one ``children`` walk of the root with ``fetch_child`` (where
Feishu refuses that for a big department, 43010, its direct children are listed and
their subtrees walked instead, see :func:`all_departments`); users from
``find_by_department`` on every department (deduplicated: a person in two departments
is listed twice). Feishu ids are mapped back to source keys
through ``reverse`` (the mirror's record of mapped ids); unmapped ids are keys.

Feishu leaves a field out of every answer when the app lacks its read
permission (feishu-api-more.md §1.1). Such a field is *unknown*, never empty: the
records carry it as ``None`` and name it in ``unknown``, and :func:`unreadable`
says which permissions are missing. The custom ids are the keys themselves:
without them nothing can be read at all (:class:`MissingReadPermission`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from orgsync.errors import EXIT_CONFIG, FeishuError, OrgsyncError
from orgsync.feishu.schema import (
    DEPARTMENT,
    PROFILE,
    ROOT,
    USER,
    USER_READ,
    department_from_feishu,
    department_id_of,
    employee_from_feishu,
    is_frozen,
    unread_fields,
    user_id_of,
)
from orgsync.gcpause import young_only
from orgsync.state import DirectoryState, Lifecycle, MirrorDepartment, MirrorUser

# Read from a user beyond the canonical fields, and the Feishu field each comes from.
_USER_EXTRAS = {"lifecycle": "status", "tenant_admin": "is_tenant_manager"}
_USER_NEEDS = {**{f.name: f.read for f in (*USER, *PROFILE)},
               **{name: USER_READ[wire] for name, wire in _USER_EXTRAS.items()}}
_DEPARTMENT_NEEDS = {f.name: f.read for f in DEPARTMENT}


class MissingReadPermission(OrgsyncError):
    """Feishu left out fields orgsync must read: the app lacks their read permission.

    ``missing`` maps each field (``user.email``) to the permissions any one of which
    would let Feishu return it. Exit code 3: the Feishu app's configuration, not the
    directory, must change.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, missing: Mapping[str, tuple[str, ...]], why: str) -> None:
        self.missing = dict(missing)
        fields = "; ".join(f"{name} (needs {' or '.join(need)})"
                           for name, need in sorted(self.missing.items()))
        super().__init__(f"Feishu does not return {fields}: {why}. Grant the permission to the "
                         "app in the Feishu developer console (then publish a new app version) "
                         "and run again")


class DirectoryAPI(Protocol):
    """The read side of :class:`orgsync.feishu.FeishuClient`."""

    def iter_children(self, department_id: str = ROOT, *, fetch_child: bool = False,
                      page_size: int = 50) -> AsyncIterator[dict[str, Any]]: ...
    def iter_users_by_department(self, department_id: str, *,
                                 page_size: int = 50) -> AsyncIterator[dict[str, Any]]: ...


def _keyed(obj: Mapping[str, Any], kind: str, wire: str, need: tuple[str, ...]) -> None:
    if wire not in obj:
        raise MissingReadPermission({f"{kind}.key": need},
                                    f"a {kind} cannot be told apart without its custom id")


BIG_DEPARTMENT = 43010
"""``children`` (also get, batch, parent) refusing a big subtree: "超大部门不允许进行查询"
(/document/server-docs/contact-v3/department/children, feishu-api-more.md §1.3)."""


async def all_departments(client: DirectoryAPI, *, concurrency: int = 8,
                          found: Callable[[dict[str, Any]], None] | None = None,
                          ) -> list[dict[str, Any]]:
    """Every department under the root, in pre-order (a parent before its subtree).

    One ``fetch_child`` walk of the root. Where Feishu refuses a walk with 43010 (the
    department is too big), that department's direct children are listed with
    ``fetch_child=false`` and each child's subtree is walked again with ``fetch_child``,
    up to ``concurrency`` listings at a time, recursing only where Feishu answers 43010
    again. Each big department thus costs its refused call, the pages of its direct
    children and about one partial page per direct child over the one-walk read:
    ``children`` calls = Σ over big departments B of (1 + pages(children of B)) + Σ over
    the other children C of big departments of pages(C's subtree), with
    pages(n) = max(1, ⌈n / 50⌉). UNCONFIRMED whether ``fetch_child=false`` always avoids
    43010 (feishu-api-more.md §1.3): if it does not, the read raises, as on any error —
    a partial read is never returned.

    ``found`` is called with each department as its page arrives (so that a caller can
    start reading its members before the walk ends); a department can be passed again
    when a walk is refused after its first page.
    """
    sem = asyncio.Semaphore(concurrency)

    async def listing(dept_id: str, fetch_child: bool) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = []
        async with sem:
            async for d in client.iter_children(dept_id, fetch_child=fetch_child):
                if found is not None:
                    found(d)
                listed.append(d)
        return listed

    async def subtree(dept_id: str) -> list[dict[str, Any]]:
        try:
            return await listing(dept_id, True)
        except FeishuError as exc:
            if exc.code != BIG_DEPARTMENT:
                raise
        direct = await listing(dept_id, False)
        below = await asyncio.gather(*(subtree(department_id_of(d)) for d in direct))
        return [d for child, under in zip(direct, below, strict=True) for d in (child, *under)]

    return await subtree(ROOT)


async def read_departments(client: DirectoryAPI) -> DirectoryState:
    """Every department under the root (one ``children`` walk), keyed by custom id; no users."""
    state = DirectoryState()
    for d in await all_departments(client):
        rec = department_from_feishu(d, {}, {})
        state.departments[rec.key] = MirrorDepartment(rec, department_id_of(d),
                                                      d.get("open_department_id"))
    return state


async def read_directory(client: DirectoryAPI, *, reverse_departments: Mapping[str, str] | None = None,
                         reverse_users: Mapping[str, str] | None = None,
                         concurrency: int = 8) -> DirectoryState:
    """Everything Feishu holds under the root, as a :class:`DirectoryState`.

    Raises whatever the client raises: a partial read must never be diffed; and
    :class:`MissingReadPermission` when Feishu leaves out the custom ids.

    Only young objects are collected while it reads (:func:`orgsync.gcpause.young_only`):
    every record read lives on, and at 100k people the full collections' rescans of that
    growing heap stopped the client for 40 to 320 ms at a time, 1.4 s of an 11.9 s read;
    the young ones reclaim each request's cyclic garbage, which with the collector off
    took the read's peak memory from 425 to 571 MB (``orgsync.bench`` resync_read).
    """
    with young_only():
        return await _read_directory(client, reverse_departments or {}, reverse_users or {},
                                     concurrency)


async def _read_directory(client: DirectoryAPI, reverse_departments: Mapping[str, str],
                          reverse_users: Mapping[str, str], concurrency: int) -> DirectoryState:
    """:func:`read_directory`, with only young objects collected."""
    rdept = dict(reverse_departments)
    ruser = dict(reverse_users)
    seen: dict[str, dict[str, Any]] = {}
    sem = asyncio.Semaphore(concurrency)
    dept_key, user_key = DEPARTMENT[0], USER[0]

    async def members(dept_id: str) -> None:
        async with sem:
            async for u in client.iter_users_by_department(dept_id):
                _keyed(u, "user", user_key.wire, user_key.read)
                seen.setdefault(user_id_of(u), u)

    # Members are read while the walk goes on: each department's read starts as it is
    # listed, the root's with the first answer (a Feishu that answers nothing is asked once).
    reading: dict[str, asyncio.Task[None]] = {}

    def start(dept_id: str) -> None:
        if dept_id not in reading:
            reading[dept_id] = asyncio.ensure_future(members(dept_id))

    def found(d: dict[str, Any]) -> None:
        _keyed(d, "department", dept_key.wire, dept_key.read)
        start(ROOT)
        start(department_id_of(d))

    try:
        raw_depts = await all_departments(client, found=found)
        start(ROOT)
        await asyncio.gather(*reading.values())
    except BaseException:
        for task in reading.values():
            task.cancel()
        await asyncio.gather(*reading.values(), return_exceptions=True)
        raise
    state = DirectoryState()
    for d in raw_depts:
        rec = department_from_feishu(d, rdept, ruser)
        state.departments[rec.key] = MirrorDepartment(rec, department_id_of(d),
                                                      d.get("open_department_id"),
                                                      unread_fields(d, DEPARTMENT))
    for uid in sorted(seen):
        u = seen[uid]
        person = employee_from_feishu(u, rdept, ruser)
        lifecycle = Lifecycle.FROZEN if is_frozen(u) else Lifecycle.ACTIVE
        unknown = unread_fields(u, (*USER, *PROFILE)) | {k for k, w in _USER_EXTRAS.items()
                                                          if w not in u}
        if "custom_employee_type" in person.profile:
            # A custom type stands in for the built-in one, which Feishu then does not hold.
            unknown |= {"employee_type"}
        state.users[person.key] = MirrorUser(person, uid, u.get("open_id"), lifecycle,
                                             unknown=unknown)
        if u.get("is_tenant_manager"):
            state.tenant_admins.add(person.key)
    return state


def unreadable(state: DirectoryState) -> dict[str, tuple[str, ...]]:
    """The fields no record of ``state`` (a :func:`read_directory` result) came with,
    as ``user.email`` → the permissions any one of which would return it.

    A field missing from some records only may just be empty there (UNCONFIRMED
    whether Feishu leaves empty values out); those records keep it unknown all
    the same.
    """
    missing: dict[str, tuple[str, ...]] = {}
    for kind, records, needs in (("department", state.departments.values(), _DEPARTMENT_NEEDS),
                                 ("user", state.users.values(), _USER_NEEDS)):
        common: frozenset[str] | None = None
        for r in records:
            common = r.unknown if common is None else common & r.unknown
        for name in sorted(common or ()):
            missing[f"{kind}.{name}"] = needs[name]
    return missing
