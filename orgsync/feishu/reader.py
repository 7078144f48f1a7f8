"""Read the live Feishu directory back into canonical form (full resync, ``check``, tests).

Departments come from one ``children`` walk of the root with ``fetch_child``;
users from ``find_by_department`` on every department (deduplicated: a person
in two departments is listed twice). Feishu ids are mapped back to source keys
through ``reverse`` (the mirror's record of mapped ids); unmapped ids are keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from orgsync.feishu.schema import (
    ROOT,
    department_from_feishu,
    department_id_of,
    employee_from_feishu,
    is_frozen,
    user_id_of,
)
from orgsync.state import DirectoryState, Lifecycle, MirrorDepartment, MirrorUser


class DirectoryAPI(Protocol):
    """The read side of :class:`orgsync.feishu.FeishuClient`."""

    def iter_children(self, department_id: str = ROOT, *, fetch_child: bool = False,
                      page_size: int = 50) -> AsyncIterator[dict[str, Any]]: ...
    def iter_users_by_department(self, department_id: str, *,
                                 page_size: int = 50) -> AsyncIterator[dict[str, Any]]: ...


async def read_departments(client: DirectoryAPI) -> DirectoryState:
    """Every department under the root (one ``children`` walk), keyed by custom id; no users."""
    state = DirectoryState()
    async for d in client.iter_children(ROOT, fetch_child=True):
        rec = department_from_feishu(d, {}, {})
        state.departments[rec.key] = MirrorDepartment(rec, department_id_of(d),
                                                      d.get("open_department_id"))
    return state


async def read_directory(client: DirectoryAPI, *, reverse_departments: Mapping[str, str] | None = None,
                         reverse_users: Mapping[str, str] | None = None,
                         concurrency: int = 8) -> DirectoryState:
    """Everything Feishu holds under the root, as a :class:`DirectoryState`.

    Raises whatever the client raises: a partial read must never be diffed.
    """
    rdept = dict(reverse_departments or {})
    ruser = dict(reverse_users or {})
    raw_depts = [d async for d in client.iter_children(ROOT, fetch_child=True)]
    state = DirectoryState()
    for d in raw_depts:
        rec = department_from_feishu(d, rdept, ruser)
        state.departments[rec.key] = MirrorDepartment(rec, department_id_of(d),
                                                      d.get("open_department_id"))
    seen: dict[str, dict[str, Any]] = {}
    sem = asyncio.Semaphore(concurrency)

    async def members(dept_id: str) -> None:
        async with sem:
            async for u in client.iter_users_by_department(dept_id):
                seen.setdefault(user_id_of(u), u)

    await asyncio.gather(members(ROOT), *(members(department_id_of(d)) for d in raw_depts))
    for uid in sorted(seen):
        u = seen[uid]
        person = employee_from_feishu(u, rdept, ruser)
        lifecycle = Lifecycle.FROZEN if is_frozen(u) else Lifecycle.ACTIVE
        state.users[person.key] = MirrorUser(person, uid, u.get("open_id"), lifecycle)
        if u.get("is_tenant_manager"):
            state.tenant_admins.add(person.key)
    return state
