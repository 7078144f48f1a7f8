"""Read the live Feishu directory back into canonical form (full resync, ``check``, tests).

Departments come from one ``children`` walk of the root with ``fetch_child``;
users from ``find_by_department`` on every department (deduplicated: a person
in two departments is listed twice). Feishu ids are mapped back to source keys
through ``reverse`` (the mirror's record of mapped ids); unmapped ids are keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from orgsync.model import Department, Employee, EmployeeType
from orgsync.state import DirectoryState, Lifecycle, MirrorDepartment, MirrorUser


class DirectoryAPI(Protocol):
    """The read side of :class:`orgsync.feishu.FeishuClient`."""

    def iter_children(self, department_id: str = "0", *, fetch_child: bool = False,
                      page_size: int = 50) -> AsyncIterator[dict[str, Any]]: ...
    def iter_users_by_department(self, department_id: str, *,
                                 page_size: int = 50) -> AsyncIterator[dict[str, Any]]: ...


def department_from_feishu(d: Mapping[str, Any], key_of: Mapping[str, str],
                           user_key_of: Mapping[str, str]) -> Department:
    """A Feishu department object (custom-id types) as a canonical record."""
    parent = str(d.get("parent_department_id") or "0")
    leader = d.get("leader_user_id") or None
    order = d.get("order")
    i18n = d.get("i18n_name") or {}
    return Department(
        key=key_of.get(str(d["department_id"]), str(d["department_id"])),
        name=str(d.get("name") or ""),
        parent_key=None if parent == "0" else key_of.get(parent, parent),
        leader_key=user_key_of.get(str(leader), str(leader)) if leader else None,
        order=int(order) if order not in (None, "") else None,
        en_name=i18n.get("en_us") or None,
    )


def employee_from_feishu(u: Mapping[str, Any], dept_key_of: Mapping[str, str],
                         key_of: Mapping[str, str]) -> Employee:
    """A Feishu user object (custom-id types) as a canonical record."""
    uid = str(u["user_id"])
    leader = u.get("leader_user_id") or None
    join = u.get("join_time")
    et = u.get("employee_type") or 1
    return Employee(
        key=key_of.get(uid, uid),
        name=str(u.get("name") or ""),
        department_keys=tuple(dept_key_of.get(str(d), str(d)) for d in u.get("department_ids") or ()),
        en_name=u.get("en_name") or None,
        email=u.get("email") or None,
        mobile=u.get("mobile") or None,
        manager_key=key_of.get(str(leader), str(leader)) if leader else None,
        job_title=u.get("job_title") or None,
        employee_no=u.get("employee_no") or None,
        employee_type=EmployeeType(int(et)) if int(et) in EmployeeType._value2member_map_
        else EmployeeType.REGULAR,
        join_date=datetime.fromtimestamp(int(join), UTC).date() if join else None,
        city=u.get("city") or None,
    )


async def read_directory(client: DirectoryAPI, *, reverse_departments: Mapping[str, str] | None = None,
                         reverse_users: Mapping[str, str] | None = None,
                         concurrency: int = 8) -> DirectoryState:
    """Everything Feishu holds under the root, as a :class:`DirectoryState`.

    Raises whatever the client raises: a partial read must never be diffed.
    """
    rdept = dict(reverse_departments or {})
    ruser = dict(reverse_users or {})
    raw_depts = [d async for d in client.iter_children("0", fetch_child=True)]
    state = DirectoryState()
    for d in raw_depts:
        rec = department_from_feishu(d, rdept, ruser)
        state.departments[rec.key] = MirrorDepartment(rec, str(d["department_id"]),
                                                      d.get("open_department_id"))
    seen: dict[str, dict[str, Any]] = {}
    sem = asyncio.Semaphore(concurrency)

    async def members(dept_id: str) -> None:
        async with sem:
            async for u in client.iter_users_by_department(dept_id):
                seen.setdefault(str(u["user_id"]), u)

    await asyncio.gather(*(members(str(d["department_id"])) for d in [{"department_id": "0"},
                                                                        *raw_depts]))
    for uid in sorted(seen):
        u = seen[uid]
        person = employee_from_feishu(u, rdept, ruser)
        status = u.get("status") or {}
        lifecycle = Lifecycle.FROZEN if status.get("is_frozen") else Lifecycle.ACTIVE
        state.users[person.key] = MirrorUser(person, uid, u.get("open_id"), lifecycle)
        if u.get("is_tenant_manager"):
            state.tenant_admins.add(person.key)
    return state
