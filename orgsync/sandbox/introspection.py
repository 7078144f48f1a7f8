"""What the app may see and do, as Feishu tells it (feishu-api-more.md §2), driven by knobs.

* ``GET /open-apis/contact/v3/scopes`` (§2.1): with the all-members range, the root's
  first-level departments and the root's direct users; otherwise exactly the granted
  departments (``SandboxConfig.contact_scope``, without their children). ``user_ids``
  only with ``contact:user.employee_id:readonly``. Users first, then departments, one
  page at a time.
* ``GET /open-apis/application/v6/scopes`` (§2.2): every scope the sandbox knows of with
  ``grant_status`` 1 (granted) or 2 (not), from ``SandboxConfig.permissions``. The docs'
  example names a scope without its ``contact:`` prefix; whether real names carry it is
  UNCONFIRMED, so the sandbox sends full names and orgsync accepts both.
* Listing the root's children needs the all-members range (§1.2): 40004 (403) otherwise
  — the probe ``orgsync doctor`` uses to tell the two ranges apart.
"""

from __future__ import annotations

from typing import Any

from orgsync.sandbox.config import SandboxConfig
from orgsync.sandbox.tenant import JSON, ApiError, IdTypes, Tenant
from orgsync.sandbox.tenant.paging import page_data, paginate

ROOT = "0"
USER_ID_READ = "contact:user.employee_id:readonly"

KNOWN_SCOPES: tuple[str, ...] = (
    "contact:contact", "contact:contact.base:readonly", "contact:contact:readonly_as_app",
    "contact:contact:access_as_app", "contact:contact:readonly",
    "contact:contact:update_user_id", "contact:user.base:readonly",
    "contact:user.employee_id:readonly", "contact:user.email:readonly",
    "contact:user.phone:readonly", "contact:user.employee:readonly",
    "contact:user.employee_number:read", "contact:user.department:readonly",
    "contact:user.gender:readonly", "contact:department.base:readonly",
    "contact:department.organize:readonly", "contact:user.id:readonly", "im:message",
    "im:message:send_as_bot", "im:chat", "calendar:timeoff",
)
"""The scopes the sandbox lists (granted or not); a granted one it does not know is added."""


def all_members(config: SandboxConfig) -> bool:
    """True when the app's contact range is the whole tenant."""
    return not config.contact_scope


def granted(config: SandboxConfig, scope: str) -> bool:
    """True when the app holds ``scope``."""
    held = config.held_permissions()
    return held is None or scope in held


def contact_scopes(tenant: Tenant, config: SandboxConfig, ids: IdTypes,
                   page_size: str | None, page_token: str | None) -> JSON:
    """``data`` of GET contact/v3/scopes."""
    if all_members(config):
        root = tenant.departments[ROOT]
        depts = [d for d in tenant.departments.values()
                 if d.parent == ROOT and not d.deleted and d is not root]
        users = [u.open_id for u in tenant.users.values()
                 if not u.resigned and any(o.dept == ROOT for o in u.orders)]
    else:
        found = (tenant.find_department(ref, "department_id") for ref in config.contact_scope or ())
        depts = [d for d in found if d is not None and not d.deleted]
        users = []
    items: list[tuple[str, str]] = []
    if granted(config, USER_ID_READ):
        items += [("user", tenant._user_ref(u, ids)) for u in users]
    items += [("department", tenant._dept_ref(d, ids)) for d in
              sorted(depts, key=lambda d: (d.order, d.seq))]
    page, more, token = paginate(items, page_size, page_token, "scopes")
    data: dict[str, Any] = page_data([], more, token)
    del data["items"]
    data["user_ids"] = [ref for kind, ref in page if kind == "user"]
    data["department_ids"] = [ref for kind, ref in page if kind == "department"]
    data["group_ids"] = []
    return data


def app_scopes(config: SandboxConfig) -> JSON:
    """``data`` of GET application/v6/scopes."""
    names = list(KNOWN_SCOPES) + sorted(p for p in config.held_permissions() or ()
                                        if p not in KNOWN_SCOPES)
    return {"scopes": [{"scope_name": n, "grant_status": 1 if granted(config, n) else 2}
                       for n in names]}


def check_root_listing(config: SandboxConfig, ref: str) -> None:
    """Listing the root needs the all-members range (40004 otherwise)."""
    if ref == ROOT and not all_members(config):
        raise ApiError(40004, "no dept authority error", 403)


def get_chat(tenant: Tenant, chat_id: str) -> JSON:
    """``data`` of GET im/v1/chats/:chat_id: the chat, or 232006 when the bot cannot see it
    (an unknown id or a chat the bot is not in; the code is UNCONFIRMED in the addendum)."""
    chat = tenant.chats.get(chat_id)
    if chat is None:
        raise ApiError(232006, "Your request contains an invalid request parameter, chat_id")
    return {k: v for k, v in chat.items() if k != "chat_id"}
