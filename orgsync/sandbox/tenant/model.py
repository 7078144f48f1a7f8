"""The sandbox tenant's records, limits and error type.

Departments are keyed by ``open_department_id`` and users by ``open_id``; references between
records (parents, leaders, memberships) hold those internal keys. The ``user_id_type`` /
``department_id_type`` of a request only decide how ids are read and rendered (:class:`IdTypes`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

ROOT = "0"
MAX_DEPTH = 25
MAX_CHILDREN = 1000
MAX_DIRECT_MEMBERS = 10_000
MAX_USER_DEPARTMENTS = 50
MAX_BATCH = 50
RESURRECT_WINDOW_S = 30 * 86_400
# IM send: "at most one successful send per uuid within 1 hour"; chat create: one chat per
# uuid + owner_id within 10 h (feishu-api.md §7.1 IM-SEND, §7.2 CHAT-CREATE). Both windows
# run on the sandbox clock, so a test moving it past them sees a re-send delivered again.
MESSAGE_UUID_WINDOW_S = 3_600
CHAT_UUID_WINDOW_S = 36_000
TOKEN_REUSE_MIN_S = 1_800
PAGE_SIZE_DEFAULT = 10
PAGE_SIZE_MAX = 50

USER_ID_TYPES = ("open_id", "union_id", "user_id")
DEPT_ID_TYPES = ("open_department_id", "department_id")
RECEIVE_ID_TYPES = ("open_id", "union_id", "user_id", "email", "chat_id")
MSG_TYPES = frozenset({"text", "post", "image", "file", "audio", "media", "sticker",
                       "interactive", "share_chat", "share_user", "system"})
ACCEPTOR_FIELDS = ("department_chat_acceptor_user_id", "external_chat_acceptor_user_id",
                   "docs_acceptor_user_id", "calendar_acceptor_user_id",
                   "application_acceptor_user_id", "minutes_acceptor_user_id",
                   "survey_acceptor_user_id", "anycross_acceptor_user_id")


class ApiError(Exception):
    """A Feishu error answer: ``code``/``msg`` go into the envelope, ``status`` is the HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def readable(obj: JSON, rules: Mapping[str, tuple[str, ...]],
             held: frozenset[str] | None) -> JSON:
    """``obj`` without the fields whose read permissions (``rules``: field → any of) the app
    lacks: such a field is absent, not an error (feishu-api-more.md §1.1). A field
    ``rules`` does not list needs none; ``held`` None holds them all."""
    if held is None:
        return obj
    return {k: v for k, v in obj.items()
            if (need := rules.get(k)) is None or not held.isdisjoint(need)}


def field_error(what: str) -> ApiError:
    """The gateway's generic parameter-validation error (99992402)."""
    return ApiError(99992402, f"field validation failed: {what}")


class SandboxClock:
    """Wall-clock time plus an offset that tests move forward (token expiry, resurrect window)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        """Seconds since the epoch, as the sandbox sees them."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward (or back, if negative)."""
        self.offset += seconds

    def reset(self) -> None:
        """Back to real time."""
        self.offset = 0.0


@dataclass(frozen=True)
class IdTypes:
    """The id types of one request (query ``user_id_type`` and ``department_id_type``)."""

    user: str = "open_id"
    dept: str = "open_department_id"

    @classmethod
    def parse(cls, user: str | None, dept: str | None) -> IdTypes:
        """Validate the query values; absent or empty means the documented default."""
        user = user or "open_id"
        dept = dept or "open_department_id"
        if user not in USER_ID_TYPES:
            raise field_error(f"user_id_type must be one of {', '.join(USER_ID_TYPES)}")
        if dept not in DEPT_ID_TYPES:
            raise field_error(f"department_id_type must be one of {', '.join(DEPT_ID_TYPES)}")
        return cls(user, dept)


@dataclass
class Department:
    """One department. ``parent`` and leader ids are internal keys (open ids)."""

    open_id: str
    custom_id: str
    name: str
    parent: str | None
    order: int
    seq: int
    i18n_name: dict[str, str] = field(default_factory=dict)
    leaders: list[tuple[int, str]] = field(default_factory=list)  # main leader (type 1) first
    unit_ids: list[str] = field(default_factory=list)
    chat_id: str = ""
    group_chat_employee_types: list[int] = field(default_factory=list)
    hrbps: list[str] = field(default_factory=list)
    deleted: bool = False

    @property
    def leader(self) -> str:
        """The main leader's open_id, or ``""``."""
        return next((uid for kind, uid in self.leaders if kind == 1), "")


@dataclass
class UserOrder:
    """A user's position in one department (``orders[]``)."""

    dept: str
    user_order: int = 0
    department_order: int = 0
    is_primary: bool = False


@dataclass
class User:
    """One user. Department and leader references are internal keys (open ids)."""

    open_id: str
    union_id: str
    user_id: str
    seq: int
    name: str
    mobile: str
    employee_type: int
    join_time: int
    email: str = ""
    en_name: str = ""
    nickname: str = ""
    mobile_visible: bool = True
    gender: int = 0
    avatar_key: str = ""
    orders: list[UserOrder] = field(default_factory=list)  # one per department, in given order
    leader: str = ""
    city: str = ""
    country: str = ""
    work_station: str = ""
    employee_no: str = ""
    custom_attrs: list[Any] = field(default_factory=list)
    enterprise_email: str = ""
    job_title: str = ""
    dotted_line_leaders: list[str] = field(default_factory=list)
    job_level_id: str = ""
    job_family_id: str = ""
    is_tenant_manager: bool = False
    frozen: bool = False
    resigned: bool = False
    activated: bool = True
    unjoin: bool = False
    resign_time: float | None = None
    handover: JSON | None = None
    reachable: bool = True

    @property
    def departments(self) -> list[str]:
        """Department open ids, in order."""
        return [o.dept for o in self.orders]

    @property
    def primary(self) -> str | None:
        """The primary department's open id."""
        return next((o.dept for o in self.orders if o.is_primary),
                    self.orders[0].dept if self.orders else None)
