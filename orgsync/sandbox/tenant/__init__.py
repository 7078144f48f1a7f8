"""The sandbox's Feishu tenant: departments, users, messages, chats, tokens and every rule.

Pure Python and synchronous: no HTTP here. Each public method takes the request's query
values and JSON body, validates them exactly as feishu-api.md §4–7 describes, mutates state
only when every check passed, and returns the ``data`` object of the response envelope.
A refused request raises :class:`ApiError` carrying Feishu's code, msg and HTTP status.

Internally departments are keyed by ``open_department_id`` and users by ``open_id``; the
``user_id_type`` / ``department_id_type`` of a request only decide how ids are read from the
path and body and how they are rendered (:class:`IdTypes`).

Where the official docs are silent the sandbox picks a behaviour and says so in a comment
marked UNCONFIRMED, so it can be corrected against the real API.

The package, by resource: ``model`` (records, limits, :class:`ApiError`), ``body`` (typed
body readers), ``paging``, ``tokens`` (tenant_access_token), ``ids`` (the state every
resource shares: id minting, id resolution, indexes), ``departments`` and
``department_fields`` (their body rules), ``users`` and ``user_fields``, ``messages`` (IM),
``calendar`` (time-off events), ``seed`` (state dump and load). :class:`Tenant` composes the
resource mixins.
"""

from __future__ import annotations

from orgsync.sandbox.tenant.body import normalize_mobile
from orgsync.sandbox.tenant.calendar import Calendar
from orgsync.sandbox.tenant.messages import Messages
from orgsync.sandbox.tenant.model import (
    JSON,
    ApiError,
    Department,
    IdTypes,
    SandboxClock,
    User,
    UserOrder,
    field_error,
)
from orgsync.sandbox.tenant.paging import page_data, paginate
from orgsync.sandbox.tenant.seed import Seed
from orgsync.sandbox.tenant.tokens import TokenStore

__all__ = [
    "JSON",
    "ApiError",
    "Department",
    "IdTypes",
    "SandboxClock",
    "Tenant",
    "TokenStore",
    "User",
    "UserOrder",
    "field_error",
    "normalize_mobile",
    "page_data",
    "paginate",
]


class Tenant(Seed, Messages, Calendar):
    """All directory and IM state of one sandbox tenant, with Feishu's validation rules.

    Not thread-safe by itself: the HTTP layer calls it under one lock, one request at a time.
    """
