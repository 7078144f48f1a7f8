"""One row per operation kind: all that the executor, the ledger, the safety guards,
the messages, the diff and the renderers know about a kind.

Adding a kind is: its :class:`~orgsync.plan.OpKind`, one :class:`OpSpec` row in
:data:`SPECS`, the client method it calls (in :class:`ContactAPI` and
:class:`orgsync.feishu.FeishuClient`) and — only if it changes the mirror in a new
way — a :class:`MirrorChange` and the ledger function that applies it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from orgsync.errors import FeishuError
from orgsync.feishu import endpoints as api
from orgsync.feishu import schema
from orgsync.feishu.codes import explain
from orgsync.feishu.endpoints import Endpoint
from orgsync.plan import Operation, OpKind, op_id


class ContactAPI(Protocol):
    """The part of :class:`orgsync.feishu.FeishuClient` that operations call."""

    async def create_department(self, body: Mapping[str, Any], *,
                                client_token: str | None = None) -> dict[str, Any]: ...
    async def get_department(self, department_id: str) -> dict[str, Any]: ...
    async def patch_department(self, department_id: str,
                               body: Mapping[str, Any]) -> dict[str, Any]: ...
    async def delete_department(self, department_id: str) -> None: ...
    async def update_department_id(self, department_id: str, new_department_id: str) -> None: ...
    async def create_user(self, body: Mapping[str, Any], *,
                          client_token: str | None = None) -> dict[str, Any]: ...
    async def get_user(self, user_id: str) -> dict[str, Any]: ...
    async def patch_user(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    async def delete_user(self, user_id: str,
                          handover: Mapping[str, Any] | None = None) -> None: ...
    async def resurrect_user(self, user_id: str,
                             departments: Sequence[Mapping[str, Any]]) -> None: ...
    async def update_user_id(self, user_id: str, new_user_id: str) -> None: ...
    async def create_group(self, body: Mapping[str, Any]) -> str: ...
    async def get_group(self, group_id: str) -> dict[str, Any]: ...
    async def patch_group(self, group_id: str, body: Mapping[str, Any]) -> None: ...
    async def delete_group(self, group_id: str) -> None: ...
    async def add_group_members(self, group_id: str,
                                user_ids: Sequence[str]) -> dict[str, int]: ...
    async def remove_group_members(self, group_id: str, user_ids: Sequence[str]) -> None: ...


class LeaveAPI(ContactAPI, Protocol):
    """The client as the leave sync uses it: also the calendar's time-off events."""

    async def create_timeoff(self, body: Mapping[str, Any]) -> dict[str, Any]: ...
    async def delete_timeoff(self, event_id: str) -> None: ...


class MirrorChange(enum.Enum):
    """How a successful operation changes its row in the ledger's mirror.

    The ledger switches on this and holds the SQL. Every change but ``REKEY``
    merges the operation's ``mirror`` fields into the row, inserting it (active)
    when it is missing.
    """

    INSERT = "insert"      # a new row, active (a create or an adopted account)
    MERGE = "merge"        # fields only
    DELETE = "delete"      # a department's row goes; a user's is marked deleted
    FREEZE = "freeze"      # the user is marked frozen
    ACTIVATE = "activate"  # the user is active again (unfrozen or resurrected)
    REKEY = "rekey"        # the row, and every reference to it, moves to the new key
    RELEASE = "release"    # out of scope: a user's row is marked released (kept for a
    #                        return), a department's goes (matched again by its id on one)
    JOIN = "join"          # people (``mirror["members"]``) join a group (``mirror["group"]``)
    LEAVE = "leave"        # people leave a group


class Departure(enum.Enum):
    """How an operation takes a person out (the churn guard and the leaver messages read it)."""

    FREEZE = "freeze"  # always the departure itself
    DELETE = "delete"  # the departure unless they were frozen before (a grace period's end)


class Messages(enum.Enum):
    """The messages a successful operation owes (see :func:`orgsync.notify.arrivals`).

    Leaver messages follow :class:`Departure` instead.
    """

    NONE = "none"
    ARRIVAL = "arrival"    # a new hire's welcome and the notes to their manager and HR
    TRANSFER = "transfer"  # when the primary department changes


@dataclass(frozen=True, slots=True)
class Lane:
    """A queue of operations with its own workers: a slow class never starves the others."""

    name: str
    size: int | None  # None: the run's concurrency


DEFAULT_LANE = Lane("default", None)
#: Moves, freezes and unfreezes share Feishu's 1-QPS membership limits.
MEMBERSHIP_LANE = Lane("membership", 2)
RESURRECT_LANE = Lane("resurrect", 1)

#: Performs the write; returns the Feishu open id it learned (creates), else ``None``.
Call = Callable[[ContactAPI, Operation, str | None], Awaitable[str | None]]
#: After a uniqueness conflict: adopts what an earlier, unanswered attempt created and
#: patches it to the plan; returns its open id. Re-raises the error when it is not ours.
Adopt = Callable[[ContactAPI, Operation, FeishuError], Awaitable[str | None]]
#: After an error that may mean the write already took effect: returns the journal's
#: note when it did; re-raises the error when it did not.
Settle = Callable[[ContactAPI, Operation, FeishuError], Awaitable[str]]
#: After an error that rules the write out for good: does the next best thing instead;
#: returns (open id, the journal's note).
Instead = Callable[[ContactAPI, Operation, FeishuError], Awaitable[tuple[str | None, str]]]
#: When the user an operation links to (the key given) did not arrive: the operation
#: without that link, to run instead of being skipped; ``None`` when it has no such link.
Unlinked = Callable[[Operation, str], Operation | None]


@dataclass(frozen=True, slots=True)
class OpSpec:
    """Everything about one operation kind."""

    call: Call
    mirror: MirrorChange
    lane: Lane = DEFAULT_LANE
    exists: frozenset[int] = frozenset()
    """Codes on which an earlier, unanswered attempt (journaled, never finished) may
    have created it already; :attr:`adopt` then settles it. Such a kind is a create:
    it carries an idempotency token per create generation."""
    adopt: Adopt | None = None
    gone: frozenset[int] = frozenset()
    """Codes that may mean the write already happened; :attr:`settle` decides."""
    settle: Settle | None = None
    refused: frozenset[int] = frozenset()
    """Codes that rule the write out for good; :attr:`instead` does the next best thing."""
    instead: Instead | None = None
    destructive: bool = False
    """Removes or disables something: counted by the removal and department-delete guards."""
    departure: Departure | None = None
    identity: bool = False
    """Its field changes are counted by the identity-change guard."""
    arrives: bool = False
    """Brings a user into existence or to its Feishu id: links to the user wait for it."""
    messages: Messages = Messages.NONE
    badge: tuple[str, str] = ("*", "white")
    """Sign and colour in a rendered plan."""
    lists_fields: bool = True
    """A rendered plan lists its field changes (a delete's are what goes: not listed)."""
    unlinked: Unlinked | None = None
    """Carries a link to a user who may arrive in the same run (a create naming its
    manager): when that arrival fails, this runs without the link instead of being skipped."""
    writes: Endpoint | None = None
    """The API the write goes to (none for a ledger-only kind): its documented limits bound
    how fast a plan's operations can go (the progress bar's ETA)."""

    def __post_init__(self) -> None:
        if bool(self.exists) != (self.adopt is not None) or \
                bool(self.gone) != (self.settle is not None) or \
                bool(self.refused) != (self.instead is not None):
            raise ValueError("exists needs adopt, gone needs settle and refused needs instead, "
                             "and the other way round")

    @property
    def tokenized(self) -> bool:
        """A create: journaled with the idempotency token of its create generation."""
        return self.adopt is not None


async def _live(get: Callable[[str], Awaitable[dict[str, Any]]], feishu_id: str) -> bool:
    """True when ``get`` finds a live entity with our custom id."""
    try:
        found = await get(feishu_id)
    except FeishuError:
        return False
    status = found.get("status") or {}
    return not (status.get("is_resigned") or status.get("is_deleted"))


async def _create_department(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    dept = await c.create_department(op.payload, client_token=token)
    return dept.get("open_department_id")


async def _patch_department(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    await c.patch_department(op.feishu_id, op.payload)
    return None


async def _delete_department(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    await c.delete_department(op.feishu_id)
    return None


async def _adopt_department(c: ContactAPI, op: Operation, exc: FeishuError) -> str | None:
    if not await _live(c.get_department, op.feishu_id):
        raise exc
    body = {k: v for k, v in op.payload.items() if k != "department_id"}
    dept = await c.patch_department(op.feishu_id, body)
    return dept.get("open_department_id")


async def _ledger_only(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    return None


async def _take_department(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    if op.payload:  # else its department_id stays (takeover.rekey_departments off, or equal)
        await c.update_department_id(op.feishu_id, op.payload["new_department_id"])
    return None


async def _department_already_rekeyed(c: ContactAPI, op: Operation, exc: FeishuError) -> str:
    # As for users: the new id is live and the old one gone, so an earlier attempt whose
    # answer was lost changed it.
    if await _live(c.get_department, op.payload["new_department_id"]) and \
            not await _live(c.get_department, op.feishu_id):
        return "id already changed (an earlier attempt's answer was lost)"
    raise exc


async def _create_user(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    user = await c.create_user(op.payload, client_token=token)
    return user.get("open_id")


def _create_unlinked(op: Operation, manager: str) -> Operation | None:
    # The manager's create (or adoption …) failed: the report is created (or adopted)
    # all the same,
    # without the link (the mirror says so, and the next run links them once the manager
    # exists) — not skipped with everyone below them. Its body differs, so does its token.
    body = schema.without_manager(op.payload)
    if op.mirror is None or op.mirror.get("manager_key") != manager or body == op.payload:
        return None
    arrival = {op_id(k, manager) for k in OpKind if SPECS[k].arrives}
    return replace(op, payload=body,
                   changes=tuple(c for c in op.changes if c.field != "manager_key"),
                   depends_on=tuple(d for d in op.depends_on if d not in arrival),
                   mirror={**op.mirror, "manager_key": None})


async def _patch_user(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    await c.patch_user(op.feishu_id, op.payload)
    return None


async def _adopt_account(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    if not op.payload:  # a takeover records it as it is; its changes are operations of their own
        return None
    user = await c.patch_user(op.feishu_id, op.payload)
    return user.get("open_id")


async def _delete_user(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    await c.delete_user(op.feishu_id, op.payload or None)
    return None


async def _resurrect_user(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    await c.resurrect_user(op.feishu_id, op.payload["departments"])
    return None


async def _create_instead(c: ContactAPI, op: Operation, exc: FeishuError
                          ) -> tuple[str | None, str]:
    # U/resurrect (feishu-api-more.md §1.7): 44029 the API is not granted to this app,
    # 44028 resigned over 30 days ago. The person is back either way, in a new account
    # (its documents and chats stay with the old one). UNCONFIRMED whether Feishu frees
    # a resigned user's user_id for a new account; if not, the create fails with 41011.
    if "create_instead" not in op.payload:  # a plan made before it was planned
        raise exc
    user = await c.create_user(op.payload["create_instead"], client_token=op.client_token)
    return (user.get("open_id"),
            f"resurrect refused ({exc.code}: {explain(exc)}); created a new account instead")


async def _rekey_user(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    if op.payload:  # else an adopted account: its user_id is not the key
        await c.update_user_id(op.feishu_id, op.payload["new_user_id"])
    return None


async def _adopt_user(c: ContactAPI, op: Operation, exc: FeishuError) -> str | None:
    if not await _live(c.get_user, op.feishu_id):
        raise exc
    body = {k: v for k, v in op.payload.items() if k != "user_id"}
    user = await c.patch_user(op.feishu_id, body)
    return user.get("open_id")


async def _already_gone(c: ContactAPI, op: Operation, exc: FeishuError) -> str:
    return f"already gone in Feishu ({exc.code})"


async def _already_rekeyed(c: ContactAPI, op: Operation, exc: FeishuError) -> str:
    # The old id is gone and the new one is live: an attempt whose answer was lost
    # (a retry of this call, or a run killed before journaling) changed it.
    if await _live(c.get_user, op.payload["new_user_id"]) and \
            not await _live(c.get_user, op.feishu_id):
        return "id already changed (an earlier attempt's answer was lost)"
    raise exc


async def _create_group(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    await c.create_group(op.payload)
    return None


async def _adopt_group(c: ContactAPI, op: Operation, exc: FeishuError) -> str | None:
    # 47005: our custom group_id exists — an earlier create whose answer was lost (the API
    # takes no client_token), or a group adopted by its id. 47009 (the name) is not ours
    # to take here: the plan adopts by name only after reading the groups.
    try:
        found = await c.get_group(op.feishu_id)
    except FeishuError:
        raise exc from None
    if found.get("name") != op.payload.get("name"):
        await c.patch_group(op.feishu_id, {"name": op.payload["name"]})
    return None


async def _patch_group(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    await c.patch_group(op.feishu_id, op.payload)
    return None


async def _delete_group(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    await c.delete_group(op.feishu_id)
    return None


async def _add_group_members(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    refused = await c.add_group_members(op.feishu_id, op.payload["user_ids"])
    if refused:
        # The batch is retried whole on the next run: those added answer 42005 then.
        code = min(refused.values())
        raise FeishuError(code, f"{len(refused)} of {len(op.payload['user_ids'])} members "
                                f"not added ({explain(FeishuError(code, ''))})",
                          endpoint=api.GROUP_MEMBER_ADD.key)
    return None


async def _remove_group_members(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    if op.payload["user_ids"]:  # else only people orgsync no longer knows: the mirror's
        await c.remove_group_members(op.feishu_id, op.payload["user_ids"])
    return None
async def _create_timeoff(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    # The event id is what this returns: the leave ledger keeps it (orgsync.leave_sync).
    event = await cast(LeaveAPI, c).create_timeoff(op.payload)
    return event.get("timeoff_event_id")


async def _delete_timeoff(c: ContactAPI, op: Operation, token: str | None) -> str | None:
    await cast(LeaveAPI, c).delete_timeoff(op.feishu_id)
    return None


async def _mark_gone(c: ContactAPI, op: Operation, exc: FeishuError) -> str:
    return f"the time-off event is already gone ({exc.code})"


#: Uniqueness conflicts a create can meet when an earlier, interrupted attempt of
#: the same create went through: id, name/order among siblings; user_id, mobile,
#: email, employee_no. Feishu's order of checks is undocumented, so any of them.
_DEPT_EXISTS = frozenset({43007, 43022, 43005})
_USER_EXISTS = frozenset({41011, 41001, 41002, 44051})
#: Codes that mean "already gone" on a delete (by our reading of feishu-api.md §6).
_GONE = frozenset({40015, 99992380, 99992357, 99992360, 99992351, 42006})
#: update-department-id after an attempt whose answer was lost: the old id is gone, or
#: the new one is taken (by it).
_DEPT_REKEYED = frozenset({43007, 40015, 99992380})

#: group/create 47005: the custom group_id exists; group get/delete 42002: no such group
#: (feishu-api-more.md §4; UNCONFIRMED that an unknown id answers 42002).
_GROUP_EXISTS = frozenset({47005})
_GROUP_GONE = frozenset({42002})

#: Resurrect refused for good: not granted to the app, or resigned over 30 days ago.
_NO_RESURRECT = frozenset({44029, 44028})

#: A time-off delete whose id Feishu no longer knows (UNCONFIRMED code, see
#: orgsync/sandbox/tenant/calendar.py), or whose person resigned (feishu-api-more.md §8).
_MARK_GONE = frozenset({190002, 195100})

_ADDED = ("+", "green")
_CHANGED = ("~", "yellow")
_RELEASED = ("=", "blue")

SPECS: Mapping[OpKind, OpSpec] = {
    # A takeover: an existing department recorded as managed (the mirror's ``feishu_id``
    # is the id it has afterwards), its custom id set to the HR code when the payload says.
    OpKind.DEPT_ADOPT: OpSpec(_take_department, MirrorChange.INSERT, gone=_DEPT_REKEYED,
                              settle=_department_already_rekeyed, badge=_ADDED,
                              writes=api.DEPARTMENT_UPDATE_ID),
    OpKind.DEPT_CREATE: OpSpec(_create_department, MirrorChange.INSERT, exists=_DEPT_EXISTS,
                               adopt=_adopt_department, badge=_ADDED,
                               writes=api.DEPARTMENT_CREATE),
    OpKind.DEPT_UPDATE: OpSpec(_patch_department, MirrorChange.MERGE, badge=_CHANGED,
                               writes=api.DEPARTMENT_PATCH),
    OpKind.DEPT_MOVE: OpSpec(_patch_department, MirrorChange.MERGE, badge=(">", "cyan"),
                             writes=api.DEPARTMENT_PATCH),
    OpKind.DEPT_SET_LEADER: OpSpec(_patch_department, MirrorChange.MERGE, badge=_CHANGED,
                                   writes=api.DEPARTMENT_PATCH),
    OpKind.DEPT_DELETE: OpSpec(_delete_department, MirrorChange.DELETE, gone=_GONE,
                               settle=_already_gone, destructive=True, badge=("-", "red"),
                               lists_fields=False,
                               writes=api.DEPARTMENT_DELETE),
    # A path-keyed department renamed (orgsync.renames): its Feishu id stays, only the
    # mirror's key moves; the name follows with a department.update.
    OpKind.DEPT_REKEY: OpSpec(_ledger_only, MirrorChange.REKEY, badge=_CHANGED),
    OpKind.DEPT_RELEASE: OpSpec(_ledger_only, MirrorChange.RELEASE, badge=_RELEASED,
                                lists_fields=False),
    OpKind.USER_CREATE: OpSpec(_create_user, MirrorChange.INSERT, exists=_USER_EXISTS,
                               adopt=_adopt_user, arrives=True, messages=Messages.ARRIVAL,
                               badge=_ADDED, unlinked=_create_unlinked,
                               writes=api.USER_CREATE),
    OpKind.USER_ADOPT: OpSpec(_adopt_account, MirrorChange.INSERT, arrives=True,
                              messages=Messages.ARRIVAL, badge=_ADDED, unlinked=_create_unlinked,
                              writes=api.USER_PATCH),
    OpKind.USER_REKEY: OpSpec(_rekey_user, MirrorChange.REKEY, gone=_GONE | _USER_EXISTS,
                              settle=_already_rekeyed, arrives=True,
                              writes=api.USER_UPDATE_ID),
    OpKind.USER_RESURRECT: OpSpec(_resurrect_user, MirrorChange.ACTIVATE, lane=RESURRECT_LANE,
                                  refused=_NO_RESURRECT, instead=_create_instead,
                                  arrives=True, messages=Messages.ARRIVAL, badge=_ADDED,
                                  writes=api.USER_RESURRECT),
    OpKind.USER_UPDATE: OpSpec(_patch_user, MirrorChange.MERGE, identity=True,
                               messages=Messages.TRANSFER, badge=_CHANGED,
                               writes=api.USER_PATCH),
    OpKind.USER_MOVE: OpSpec(_patch_user, MirrorChange.MERGE, lane=MEMBERSHIP_LANE,
                             identity=True, messages=Messages.TRANSFER, badge=(">", "cyan"),
                             writes=api.USER_PATCH),
    OpKind.USER_SET_MANAGER: OpSpec(_patch_user, MirrorChange.MERGE, badge=_CHANGED,
                                    writes=api.USER_PATCH),
    OpKind.USER_FREEZE: OpSpec(_patch_user, MirrorChange.FREEZE, lane=MEMBERSHIP_LANE,
                               destructive=True, departure=Departure.FREEZE,
                               badge=("!", "yellow"),
                               writes=api.USER_PATCH),
    OpKind.USER_UNFREEZE: OpSpec(_patch_user, MirrorChange.ACTIVATE, lane=MEMBERSHIP_LANE,
                                 badge=_ADDED,
                                 writes=api.USER_PATCH),
    OpKind.USER_DELETE: OpSpec(_delete_user, MirrorChange.DELETE, gone=_GONE,
                               settle=_already_gone, destructive=True,
                               departure=Departure.DELETE, badge=("-", "red"),
                               lists_fields=False,
                               writes=api.USER_DELETE),
    OpKind.USER_RELEASE: OpSpec(_ledger_only, MirrorChange.RELEASE, badge=_RELEASED,
                                lists_fields=False),
    # User groups (orgsync.groups). Members are added and removed in batches of at most 100,
    # one operation per batch; a group goes only once its managed members are removed (42017).
    OpKind.GROUP_ADOPT: OpSpec(_ledger_only, MirrorChange.INSERT, badge=_ADDED),
    OpKind.GROUP_CREATE: OpSpec(_create_group, MirrorChange.INSERT, exists=_GROUP_EXISTS,
                                adopt=_adopt_group, badge=_ADDED,
                                writes=api.GROUP_CREATE),
    OpKind.GROUP_UPDATE: OpSpec(_patch_group, MirrorChange.MERGE, badge=_CHANGED,
                                writes=api.GROUP_PATCH),
    OpKind.GROUP_ADD_MEMBERS: OpSpec(_add_group_members, MirrorChange.JOIN, badge=_ADDED,
                                     writes=api.GROUP_MEMBER_ADD),
    OpKind.GROUP_REMOVE_MEMBERS: OpSpec(_remove_group_members, MirrorChange.LEAVE,
                                        badge=("-", "yellow"),
                                        writes=api.GROUP_MEMBER_REMOVE),
    OpKind.GROUP_DELETE: OpSpec(_delete_group, MirrorChange.DELETE, gone=_GROUP_GONE,
                                settle=_already_gone, destructive=True, badge=("-", "red"),
                                lists_fields=False,
                                writes=api.GROUP_DELETE),
    # Leave marks (orgsync.leave_sync): planned and applied by the leave sync, never in a
    # directory plan. Their ledger is the leave_marks table, not the mirror.
    OpKind.LEAVE_CREATE: OpSpec(_create_timeoff, MirrorChange.INSERT, badge=_ADDED,
                                writes=api.TIMEOFF_CREATE),
    OpKind.LEAVE_DELETE: OpSpec(_delete_timeoff, MirrorChange.DELETE, gone=_MARK_GONE,
                                settle=_mark_gone, badge=("-", "red"), lists_fields=False,
                                writes=api.TIMEOFF_DELETE),
}


def kinds(where: Callable[[OpSpec], bool]) -> tuple[OpKind, ...]:
    """The kinds whose spec satisfies ``where``, in kind order; e.g. ``kinds(lambda s: s.arrives)``."""
    return tuple(k for k in OpKind if where(SPECS[k]))
