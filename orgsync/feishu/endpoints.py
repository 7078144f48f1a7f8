"""The Feishu endpoints orgsync calls, with their documented rate limits (feishu-api.md §3).

An endpoint's ``key`` (``"PATCH /open-apis/contact/v3/users/:user_id"``) is a template: it
names the API without the concrete id, so it is safe in logs, metrics and errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from orgsync.feishu.ratelimit import Bucket, Limit

PER_MINUTE_1000 = Limit(1000, 60.0)
PER_SECOND_50 = Limit(50, 1.0)
STANDARD = (PER_MINUTE_1000, PER_SECOND_50)
"""Tier 4, "1000/min & 50/s": the two windows are counted independently."""


@dataclass(frozen=True)
class Endpoint:
    """One API: method, path template (``:name`` placeholders) and its own limits."""

    method: str
    template: str
    limits: tuple[Limit, ...] = STANDARD

    @property
    def key(self) -> str:
        """``"METHOD /path/:placeholder"`` — the endpoint's name in logs, stats and errors."""
        return f"{self.method} {self.template}"

    @property
    def buckets(self) -> tuple[Bucket, ...]:
        """The endpoint's own rate-limit buckets."""
        return tuple(Bucket(self.key, limit) for limit in self.limits)

    def path(self, **values: str) -> str:
        """The concrete path, each ``:name`` replaced by its percent-encoded value."""
        parts = []
        for part in self.template.split("/"):
            if part.startswith(":"):
                parts.append(quote(values[part[1:]], safe=""))
            else:
                parts.append(part)
        return "/".join(parts)


TENANT_TOKEN = Endpoint("POST", "/open-apis/auth/v3/tenant_access_token/internal", ())

DEPARTMENT_CREATE = Endpoint("POST", "/open-apis/contact/v3/departments")
# 特殊频控 (special, unpublished) on the docs page: pace it like the tier-4 siblings.
DEPARTMENT_GET = Endpoint("GET", "/open-apis/contact/v3/departments/:department_id")
DEPARTMENT_PATCH = Endpoint("PATCH", "/open-apis/contact/v3/departments/:department_id")
DEPARTMENT_DELETE = Endpoint("DELETE", "/open-apis/contact/v3/departments/:department_id")
DEPARTMENT_CHILDREN = Endpoint("GET", "/open-apis/contact/v3/departments/:department_id/children")
# feishu-api-more.md §3 (/document/contact-v3/department/update_department_id): standard tier.
DEPARTMENT_UPDATE_ID = Endpoint(
    "PATCH", "/open-apis/contact/v3/departments/:department_id/update_department_id")

USER_CREATE = Endpoint("POST", "/open-apis/contact/v3/users")
USER_GET = Endpoint("GET", "/open-apis/contact/v3/users/:user_id")
USER_PATCH = Endpoint("PATCH", "/open-apis/contact/v3/users/:user_id")
USER_DELETE = Endpoint("DELETE", "/open-apis/contact/v3/users/:user_id")
USER_RESURRECT = Endpoint("POST", "/open-apis/contact/v3/users/:user_id/resurrect",
                          (Limit(10, 60.0),))
# feishu-api-more.md §3 (/document/contact-v3/user/update_user_id): 20/s.
USER_UPDATE_ID = Endpoint("PATCH", "/open-apis/contact/v3/users/:user_id/update_user_id",
                          (Limit(20, 1.0),))
USER_FIND_BY_DEPARTMENT = Endpoint("GET", "/open-apis/contact/v3/users/find_by_department")
USER_BATCH_GET_ID = Endpoint("POST", "/open-apis/contact/v3/users/batch_get_id")

# Job levels and job families: every method 10/s (feishu-api-more.md §5.2, §5.3;
# /document/server-docs/contact-v3/job_level/*, …/job_family/*).
JOB_CATALOG_LIMIT = (Limit(10, 1.0),)
JOB_LEVEL_LIST = Endpoint("GET", "/open-apis/contact/v3/job_levels", JOB_CATALOG_LIMIT)
JOB_LEVEL_CREATE = Endpoint("POST", "/open-apis/contact/v3/job_levels", JOB_CATALOG_LIMIT)
JOB_LEVEL_UPDATE = Endpoint("PUT", "/open-apis/contact/v3/job_levels/:job_level_id", JOB_CATALOG_LIMIT)
JOB_FAMILY_LIST = Endpoint("GET", "/open-apis/contact/v3/job_families", JOB_CATALOG_LIMIT)
JOB_FAMILY_UPDATE = Endpoint("PUT", "/open-apis/contact/v3/job_families/:job_family_id", JOB_CATALOG_LIMIT)
JOB_FAMILY_CREATE = Endpoint("POST", "/open-apis/contact/v3/job_families", JOB_CATALOG_LIMIT)
# Custom employee types (feishu-api-more.md §5.1, /document/server-docs/contact-v3/
# employee_type_enum/*): list is 特殊频控 (unpublished: paced as tier 4), create 20/s.
EMPLOYEE_TYPE_LIST = Endpoint("GET", "/open-apis/contact/v3/employee_type_enums")
EMPLOYEE_TYPE_CREATE = Endpoint("POST", "/open-apis/contact/v3/employee_type_enums",
                                (Limit(20, 1.0),))

# The tenant's custom profile attributes opened to the API (feishu-api-more.md §6,
# /document/server-docs/contact-v3/custom_attr/list): standard limit, page_size ≤ 100.
CUSTOM_ATTR_LIST = Endpoint("GET", "/open-apis/contact/v3/custom_attrs")


@dataclass(frozen=True)
class Catalog:
    """A tenant catalog users point into: how it is listed and created, and how its
    entries read (``name_key`` → ``id_key``; only ``usable`` ones may be pointed at)."""

    listing: Endpoint
    create: Endpoint
    page_size: str
    response: str  # the create response's object
    name_key: str
    id_key: str
    update: Endpoint | None = None  # PUT :id, omitted fields unchanged (renames by code)

    def body(self, name: str) -> dict[str, object]:
        """A create body: an enabled entry named ``name``."""
        if self.response == "employee_type_enum":
            return {"content": name, "enum_type": 2, "enum_status": 1}
        return {"name": name, "status": True}

    def usable(self, entry: dict[str, object]) -> bool:
        """Whether a user may point at ``entry``: enabled (and for employee types, custom:
        the five built-ins are the canonical employee_type)."""
        if self.response == "employee_type_enum":
            return entry.get("enum_type") == 2 and entry.get("enum_status") == 1
        return bool(entry.get("status", True))


CATALOGS: dict[str, Catalog] = {
    "job_level": Catalog(JOB_LEVEL_LIST, JOB_LEVEL_CREATE, "50", "job_level", "name",
                         "job_level_id", JOB_LEVEL_UPDATE),
    "job_family": Catalog(JOB_FAMILY_LIST, JOB_FAMILY_CREATE, "50", "job_family", "name",
                          "job_family_id", JOB_FAMILY_UPDATE),
    # A user's employee_type is the enum_value, a string numbered in sequence (§1.13).
    "employee_type": Catalog(EMPLOYEE_TYPE_LIST, EMPLOYEE_TYPE_CREATE, "100",
                             "employee_type_enum", "content", "enum_value"),
}
"""The catalogs orgsync resolves names in (see :mod:`orgsync.catalogs`)."""
# User groups (feishu-api-more.md §4, /document/server-docs/contact-v3/group/* and
# group-member/*): writes 100/min, reads tier 4. Paths use the singular ``group``.
GROUP_WRITE_LIMIT = (Limit(100, 60.0),)
GROUP_CREATE = Endpoint("POST", "/open-apis/contact/v3/group", GROUP_WRITE_LIMIT)
GROUP_GET = Endpoint("GET", "/open-apis/contact/v3/group/:group_id")
GROUP_PATCH = Endpoint("PATCH", "/open-apis/contact/v3/group/:group_id", GROUP_WRITE_LIMIT)
GROUP_DELETE = Endpoint("DELETE", "/open-apis/contact/v3/group/:group_id", GROUP_WRITE_LIMIT)
GROUP_LIST = Endpoint("GET", "/open-apis/contact/v3/group/simplelist")
GROUP_MEMBER_ADD = Endpoint("POST", "/open-apis/contact/v3/group/:group_id/member/batch_add",
                            GROUP_WRITE_LIMIT)
GROUP_MEMBER_REMOVE = Endpoint(
    "POST", "/open-apis/contact/v3/group/:group_id/member/batch_remove", GROUP_WRITE_LIMIT)
GROUP_MEMBER_LIST = Endpoint("GET", "/open-apis/contact/v3/group/:group_id/member/simplelist")
GROUP_MEMBER_BATCH = 100
"""Members per batch_add / batch_remove call."""
GROUP_PAGE_SIZE = 100

IM_SEND = Endpoint("POST", "/open-apis/im/v1/messages")
# multipart image_type + image; an avatar's image_key (feishu-api-more.md §7, avatar_key;
# /document/server-docs/im-v1/image/create): standard tier.
IM_IMAGE_UPLOAD = Endpoint("POST", "/open-apis/im/v1/images")
IM_CHAT_CREATE = Endpoint("POST", "/open-apis/im/v1/chats")
IM_CHAT_GET = Endpoint("GET", "/open-apis/im/v1/chats/:chat_id")

# feishu-api-more.md §8.1/§8.2 (/document/server-docs/calendar-v4/timeoff_event/create,
# …/delete): standard tier; no list or get exists.
TIMEOFF_CREATE = Endpoint("POST", "/open-apis/calendar/v4/timeoff_events")
TIMEOFF_DELETE = Endpoint("DELETE", "/open-apis/calendar/v4/timeoff_events/:timeoff_event_id")

# What the app may see and do (feishu-api-more.md §2.1, §2.2). application/v6/scopes is
# 特殊频控 (special, unpublished): paced like the tier-4 reads.
CONTACT_SCOPES = Endpoint("GET", "/open-apis/contact/v3/scopes")
APP_SCOPES = Endpoint("GET", "/open-apis/application/v6/scopes")

USER_PATCH_SLOW_FIELDS = frozenset({"department_ids", "is_frozen"})
"""User-patch body keys that put the call under the extra 1 QPS bucket."""

USER_PATCH_SLOW = Bucket("PATCH /open-apis/contact/v3/users/:user_id [department_ids|is_frozen]",
                         Limit(1, 1.0))
IM_PER_RECEIVER = Limit(5, 1.0)
"""5 QPS per target user and per group, on top of the send endpoint's own windows."""


def im_receiver_bucket(receive_id_type: str, receive_id: str) -> Bucket:
    """The per-receiver IM bucket (kept in memory only; the id never reaches a log)."""
    return Bucket(f"im-receiver {receive_id_type}:{receive_id}", IM_PER_RECEIVER)
