"""Which read permission makes Feishu return which field (feishu-api-more.md §1.1).

From the per-endpoint pages ``/document/server-docs/contact-v3/user/get``,
``…/user/find_by_department``, ``/document/contact-v3/user/batch`` and
``/document/server-docs/contact-v3/department/get``: create/patch answers and events
follow the same rules. A field whose permission the app lacks is *absent* from the
answer, not an error. The sandbox keeps its own copy of the table, written from the doc:
a fake must not share code with the client it tests (orgsync.feishu.schema has the
client's; ``tests/sandbox/test_permissions_table.py`` checks that both say the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

_APP_WIDE = ("contact:contact:access_as_app", "contact:contact:readonly",
             "contact:contact:readonly_as_app")
_BASE = ("contact:user.base:readonly", *_APP_WIDE)
_EMPLOYEE = ("contact:user.employee:readonly", *_APP_WIDE)
_USER_DEPARTMENT = ("contact:user.department:readonly", *_APP_WIDE)
_DEPT_BASE = ("contact:department.base:readonly", *_APP_WIDE)
_DEPT_ORGANIZE = ("contact:department.organize:readonly", *_APP_WIDE)

USER_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    # user_id: the employee_id scope only (also what user_id_type=user_id needs; whether such
    # a call errors or only leaves the ids out is UNCONFIRMED: the sandbox leaves them out).
    "user_id": ("contact:user.employee_id:readonly",),
    "name": _BASE, "en_name": _BASE, "nickname": _BASE, "avatar": _BASE,
    "email": ("contact:user.email:readonly",),
    "mobile": ("contact:user.phone:readonly",),
    "gender": ("contact:user.gender:readonly", *_APP_WIDE),
    "status": _EMPLOYEE, "city": _EMPLOYEE, "country": _EMPLOYEE, "work_station": _EMPLOYEE,
    "join_time": _EMPLOYEE, "is_tenant_manager": _EMPLOYEE, "employee_type": _EMPLOYEE,
    "custom_attrs": _EMPLOYEE, "enterprise_email": _EMPLOYEE, "job_title": _EMPLOYEE,
    "employee_no": ("contact:user.employee_number:read", "contact:user.employee:readonly",
                    *_APP_WIDE),
    "department_ids": _USER_DEPARTMENT, "leader_user_id": _USER_DEPARTMENT,
    "orders": _USER_DEPARTMENT,
    "job_level_id": ("contact:user.job_level:readonly",),
    "job_family_id": ("contact:user.job_family:readonly",),
    "dotted_line_leader_user_ids": ("contact:user.dotted_line_leader_info.read",),
    "geo": ("contact:user.user_geo",),
    "assign_info": ("contact:user.assign_info:read",),
    "department_path": ("contact:user.department_path:readonly",),
}
"""A user field → the permissions any one of which returns it (none listed: always)."""

DEPARTMENT_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "name": _DEPT_BASE, "i18n_name": _DEPT_BASE, "department_id": _DEPT_BASE,
    "chat_id": _DEPT_BASE, "status": _DEPT_BASE,
    "parent_department_id": _DEPT_ORGANIZE, "leader_user_id": _DEPT_ORGANIZE,
    "order": _DEPT_ORGANIZE, "unit_ids": _DEPT_ORGANIZE, "member_count": _DEPT_ORGANIZE,
    "primary_member_count": _DEPT_ORGANIZE,
    "leaders": _DEPT_ORGANIZE,  # leaders[].leaderID; leaders[].leaderType needs none
    "department_hrbps": ("contact:department.hrbp:readonly",),
}
"""A department field → its read permissions, as :data:`USER_FIELDS`."""
