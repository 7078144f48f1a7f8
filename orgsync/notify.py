"""Onboarding messages and run reports over Feishu IM.

Events and their keys (one row each in the ledger's ``notifications`` table):

* ``welcome:<employee>`` — to the new hire;
* ``manager_note:<employee>`` — to the new hire's manager (one note per joiner);
* ``hr_note:<employee>`` — the same note to ``notify.hr_chat_id``, when set;
* ``transfer_note@<run id>@<old dept>@<new dept>:<employee>`` — with
  ``notify.transfer_notes``, to the manager of someone whose primary department
  changed (``transfer_to`` includes ``manager``, the default);
* ``transfer_welcome@<run id>@<old dept>@<new dept>:<employee>`` — the same
  transfer, to the person moved (``transfer_to`` includes ``employee``);
* ``leaver_note@<run id>:<employee>`` — with ``notify.leaver_notes``, to the
  manager of someone frozen (or deleted, with ``sync.leaver_action: delete``) as
  a leaver; never to the leaver;
* ``hr_leaver_note@<run id>:<employee>`` — the same note to ``hr_chat_id``, when set;
* ``leave_note@<leave key>@<kind>@<start>@<end>@<days>:<employee>`` — with
  ``notify.leave_note_days``, to the manager of someone whose leave mark of that many
  days or more was created; owed in the transaction that journals the created mark, once
  per leave key (a changed leave, deleted and created again, owes no second note: see
  :meth:`orgsync.ledger.Ledger.owe_once`); cancelled if the mark is gone (the leave was
  cancelled) or the person has left by the time it is delivered;
* ``report:<run id>`` — a run report to ``notify.admin_chat_id``;
* ``alert:held:<plan id>`` / ``alert:failed:<run id>`` — alerts to the same chat.

Transfers and departures can happen to one person again (A→B→A→B; a rehire who
leaves again), so their keys carry the id of the run that applied the write
(department keys percent-encoded, see :func:`event_key`). A plan id or a
``client_token`` would not do: plans are deterministic, so moving someone A→B a
second time can plan the very same operation with the same id and token. One
run applies at most one write of a kind per person, and the key is recorded only
with that write's ``done``, so each transfer or departure owes exactly one key.

Exactly once, across retries, crashes and re-runs: the people events are
recorded ``pending`` in the transaction that journals the user's create, adopt,
resurrect, move, freeze or delete (:func:`arrivals`), so a crash right after the
write still owes them (and a write the crash left unfinished is replanned and
owes them when it is done, under the next run's id — never both); a ``sent`` row
is never sent again; and each send carries a uuid derived from the event key, so
a crash between Feishu's answer and the ledger update is deduplicated by Feishu.

At most once beyond that window: Feishu keeps one message per uuid for 1 hour
only (:data:`UUID_WINDOW`). Each attempt is recorded (``sending``, with its time)
before the send. An attempt whose answer was never recorded is sent again, with
the same uuid, while it began less than :data:`RESEND_WITHIN` ago; after that it
is settled ``unknown`` — it may have been delivered, and a re-send could deliver
it twice — never sent again, and reported (run report, ``orgsync status``) so an
admin can check by hand.

What a message says is read from the ledger's mirror when it is delivered
(normally right after the apply): the new manager of a transfer (the mirror
holds the manager link applied in the same run), and for a leaver, who is frozen
or deleted by then, the manager and departments their mirror record keeps (a
leaver's record is never rewritten, so it still names the manager they had
before the freeze or delete). The departments of a transfer come from its key;
their paths are the mirror's, or the bare key for a department deleted since.

Timing: arrival events wait until the start date (``join_date``; pre-hires are
created days before it); a transfer before someone's start date is cancelled
(their start-date messages already name the new department); transfer and
leaver notes are otherwise due at once. A receiver the bot cannot reach yet
(230013 and friends: not activated, outside the app's range, bot blocked) stays
``pending`` and is tried again on every later run until ``retry_days`` after
the later of the start date and the write; then it is ``expired`` and
reported. An event with nobody left to receive it (no manager, a manager who
left, a person moved who left since) is ``cancelled``. Messages never block the
sync and never change a run's exit code: their outcome is in
:class:`NotifyResult` and the run report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote, unquote

import structlog

from orgsync.config import NotifyConfig
from orgsync.errors import FeishuError
from orgsync.executor import ApplyResult
from orgsync.ledger import Ledger, event_kind_target
from orgsync.operations import Departure, Messages, kinds
from orgsync.plan import FieldChange, Operation, Plan
from orgsync.state import DirectoryState, Lifecycle, MirrorUser
from orgsync.takeover import feishu_only_text
from orgsync.templates import Template

if TYPE_CHECKING:
    from orgsync.tables import NotificationRow

log = structlog.get_logger("orgsync.notify")

#: Feishu's IM send delivers at most one message per ``uuid`` within 1 hour
#: (feishu-api.md §7.1, "uuid": "at most one successful send per uuid within 1 hour";
#: the sandbox models it, see ``MESSAGE_UUID_WINDOW_S``).
UUID_WINDOW = timedelta(hours=1)
#: An unanswered attempt is re-sent under its uuid only this long after it began: the
#: re-send, with its own retries and rate-limit waits, must reach Feishu inside the window.
RESEND_WITHIN = UUID_WINDOW - timedelta(minutes=10)
#: Statuses of a notification still owed (see :class:`orgsync.ledger.NotificationRow`).
OPEN = ("pending", "sending")
#: Codes that mean "this person cannot receive yet": kept pending and retried later.
#: 230013 is also Feishu's answer for a resigned receiver
#: (/document/server-docs/im-v1/message/create, feishu-api-more.md §1.8): such a
#: message expires after ``retry_days`` like any other unreachable one.
UNREACHABLE = frozenset({230013, 230034, 230035, 230053})
#: Message throttling (5 QPS per receiver, §1.8) outlasting the client's retries: the
#: message is not lost, it stays pending for the next run.
THROTTLED = frozenset({230020})
#: "User has resigned": nobody will ever read it, so it is cancelled.
RESIGNED = frozenset({230029})
#: Events about a new hire, sent on or after their start date.
ARRIVAL_KINDS = ("welcome", "manager_note", "hr_note")
#: Events about a transfer (to the manager, to the person moved).
TRANSFER_KINDS = ("transfer_note", "transfer_welcome")
#: Events about a leaver (to their manager, the copy to the HR chat).
LEAVER_KINDS = ("leaver_note", "hr_leaver_note")
#: A long leave approved (to the manager).
LEAVE_KINDS = ("leave_note",)
#: Every event about a person: what :func:`deliver` sends.
PEOPLE_KINDS = (*ARRIVAL_KINDS, *TRANSFER_KINDS, *LEAVER_KINDS, *LEAVE_KINDS)
_ARRIVALS = kinds(lambda s: s.messages is Messages.ARRIVAL)
_TRANSFERS = kinds(lambda s: s.messages is Messages.TRANSFER)
#: A freeze is a leaver's departure; a delete is one when ``leaver_action`` is ``delete``.
_FREEZES = kinds(lambda s: s.departure is Departure.FREEZE)
_DELETES = kinds(lambda s: s.departure is Departure.DELETE)
#: The template each event kind is rendered with (HR copies use the manager's).
_TEMPLATE_OF = {"hr_note": "manager_note", "hr_leaver_note": "leaver_note"}
_SENDERS = 4

DEFAULT_TEMPLATES: dict[str, Template] = {
    "welcome": Template(
        "text",
        zh="欢迎加入{department}，{name}！你的直属上级是{manager}，入职日期 {start_date}。",
        en="Welcome to {department}, {name}! Your manager is {manager}; "
           "your first day is {start_date}."),
    "manager_note": Template(
        "text",
        zh="{name} 已加入你的团队（{department}），入职日期 {start_date}。",
        en="{name} has joined your team ({department}); first day {start_date}."),
    "transfer_note": Template(
        "text",
        zh="{name} 已从 {old_department} 调入你的团队（{new_department}），{transfer_date} 生效。",
        en="{en_name} has moved from {old_department} to your team ({new_department}) "
           "as of {transfer_date}."),
    "transfer_welcome": Template(
        "text",
        zh="{name}，你已从 {old_department} 调至 {new_department}，直属上级是{manager}。",
        en="{en_name}, you have moved from {old_department} to {new_department}; "
           "your manager is {manager}."),
    "leaver_note": Template(
        "text",
        zh="{name}（{department}）已于 {leave_date} 离职，飞书账号已停用。",
        en="{en_name} ({department}) left on {leave_date}; their Feishu account is disabled."),
    "leave_note": Template(
        "text",
        zh="{name} 将请假（{leave_kind}）：{leave_start} 至 {leave_end}，共 {leave_days} 天。",
        en="{en_name} is on leave ({leave_kind}) from {leave_start} to {leave_end}, "
           "{leave_days} days."),
}


class MessageAPI(Protocol):
    """The part of :class:`orgsync.feishu.FeishuClient` this module uses."""

    async def send_message(self, *, receive_id_type: str, receive_id: str, msg_type: str,
                           content: str | Mapping[str, Any],
                           uuid: str | None = None) -> dict[str, Any]: ...


@dataclass(slots=True)
class NotifyResult:
    """What one delivery pass did, as event keys (``failed``: event → Feishu code;
    ``unknown``: attempts never confirmed, now past the uuid window)."""

    sent: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when anything was sent or settled (worth a line in a report)."""
        return bool(self.sent or self.expired or self.failed or self.unknown)


def arrivals(config: NotifyConfig, now: datetime, *, run_id: str,
             leaver_action: Literal["delete", "freeze"]) -> Callable[[Operation], Sequence[str]]:
    """The executor hook: the event keys a done operation makes due.

    The executor records them ``pending`` in the transaction that marks the
    operation done, so this reads nothing and writes nothing: the keys depend on
    the operation and the arguments here alone.

    * a create, adopt or resurrect: the welcome, the manager note and its HR copy
      — unless the start date lies more than ``retry_days`` in the past (an
      initial import, an adopted account: not a new hire);
    * with ``transfer_notes``: a move (or an update; the diff plans department
      changes as moves, this does not rely on it) that changes the *primary*
      department, i.e. the first of ``department_keys`` (a secondary one added or
      dropped is no transfer): one event per ``transfer_to`` receiver;
    * with ``leaver_notes``: a freeze (always a leaver's), or a delete when
      ``leaver_action`` is ``delete`` (with ``freeze``, a delete ends the grace
      period of someone whose freeze was the departure): the leaver note and its
      HR copy.

    ``run_id`` (of the run applying the plan) makes transfer and leaver keys
    unique per occurrence; see the module docstring.
    """
    def events(op: Operation) -> Sequence[str]:
        if op.kind in _ARRIVALS:
            start = _start_date((op.mirror or {}).get("join_date"))
            if start is not None and start < now.date() - timedelta(days=config.retry_days):
                return ()
            kinds = ["welcome", "manager_note"] + (["hr_note"] if config.hr_chat_id else [])
            return [f"{k}:{op.key}" for k in kinds]
        if op.kind in _TRANSFERS and config.transfer_notes:
            moved = primary_move(op.changes)
            if moved is None:
                return ()
            receivers = {"manager": "transfer_note", "employee": "transfer_welcome"}
            return [event_key(receivers[r], op.key, run_id, *moved) for r in config.transfer_to]
        leaving = op.kind in _FREEZES or (op.kind in _DELETES and leaver_action == "delete")
        if leaving and config.leaver_notes:
            kinds = ["leaver_note"] + (["hr_leaver_note"] if config.hr_chat_id else [])
            return [event_key(k, op.key, run_id) for k in kinds]
        return ()
    return events


def primary_move(changes: Sequence[FieldChange]) -> tuple[str, str] | None:
    """``(old, new)`` primary department keys when ``changes`` move someone's primary
    department (the first of ``department_keys``) to another one; else ``None``."""
    for c in changes:
        if c.field != "department_keys":
            continue
        old = c.old[0] if isinstance(c.old, list | tuple) and c.old else None
        new = c.new[0] if isinstance(c.new, list | tuple) and c.new else None
        if old is not None and new is not None and old != new:
            return str(old), str(new)
    return None


def event_key(kind: str, target: str, *qualifiers: str) -> str:
    """``<kind>[@<qualifier>…]:<target>``, each qualifier percent-encoded (no raw ``:``
    or ``@`` in it), so :func:`event_parts` gets them back whatever the keys hold."""
    head = "@".join([kind, *(quote(q, safe="") for q in qualifiers)])
    return f"{head}:{target}"


def event_parts(event: str) -> tuple[str, tuple[str, ...], str]:
    """``(kind, qualifiers, target)`` of an event key (the inverse of :func:`event_key`)."""
    kind, target = event_kind_target(event)
    head = event.partition(":")[0]
    qualifiers = tuple(unquote(q) for q in head.split("@")[1:])
    return kind, qualifiers, target


def leave_note(mark_key: str, employee_id: str, kind: str, start: str, end: str,
               days: int) -> tuple[str, str]:
    """``(event, prefix)`` of the note about one leave: the prefix (the leave key) is what
    makes it once per leave, whatever the details (see :meth:`Ledger.owe_once`)."""
    event = event_key("leave_note", employee_id, mark_key, kind, start, end, str(days))
    return event, f"leave_note@{quote(mark_key, safe='')}@"


async def deliver(config: NotifyConfig, ledger: Ledger, client: MessageAPI,
                  now: datetime, kinds: Sequence[str] = PEOPLE_KINDS) -> NotifyResult:
    """Send every owed people event of ``kinds`` (all of :data:`PEOPLE_KINDS` unless
    told) that is due; settle the others.

    Owed events are delivered even if their switch (``transfer_notes``,
    ``leaver_notes``) was turned off since they were owed. Never raises for a
    Feishu answer: each outcome is recorded on its row. ``now`` also dates the
    attempts (see the module docstring on the uuid window).
    """
    result = NotifyResult()
    state = ledger.load_state()
    rows = ledger.notifications(status=OPEN, kinds=kinds)
    gate = asyncio.Semaphore(_SENDERS)

    async def one(row: NotificationRow) -> None:
        async with gate:
            await _deliver_one(config, ledger, client, state, row, now, result)

    await asyncio.gather(*(one(r) for r in rows))
    for bucket in (result.sent, result.pending, result.expired, result.unknown):
        bucket.sort()
    return result


async def _deliver_one(config: NotifyConfig, ledger: Ledger, client: MessageAPI,
                       state: DirectoryState, row: NotificationRow, now: datetime,
                       result: NotifyResult) -> None:
    if unconfirmed(ledger, row, now):
        result.unknown.append(row.event)
        return
    kind, qualifiers, _ = event_parts(row.event)
    user = state.users.get(row.target)
    why_not = _why_not(kind, user, now)
    if kind in LEAVE_KINDS and why_not is None and qualifiers and \
            ledger.leave_mark(qualifiers[0]) is None:
        why_not = "the leave was cancelled before the note was sent"
    if why_not == "wait":
        result.pending.append(row.event)  # a pre-hire: not their first day yet
        return
    if why_not is not None or user is None:
        ledger.settle_notification(row.event, "cancelled", message=why_not)
        return
    created = row.created_at.date()
    start = user.record.join_date if kind in ARRIVAL_KINDS else None
    deadline = max(created, start or created) + timedelta(days=config.retry_days)
    receiver = _receiver(config, state, kind, user)
    if receiver is None:
        ledger.settle_notification(row.event, "cancelled",
                                   message="nobody to send it to (no manager, or the "
                                           "manager left)")
        return
    template_kind = _TEMPLATE_OF.get(kind, kind)
    template = config.templates.get(template_kind) or DEFAULT_TEMPLATES[template_kind]
    values = {**variables(state, user, config.links),
              **extra_variables(state, kind, qualifiers, created)}
    content = template.render(values, config.language)
    ledger.attempt_notification(row.event, now)
    try:
        await client.send_message(receive_id_type=receiver[0], receive_id=receiver[1],
                                  msg_type=template.msg_type, content=content, uuid=row.uuid)
    except FeishuError as exc:
        if exc.code in RESIGNED:
            ledger.settle_notification(row.event, "cancelled", code=exc.code,
                                       message="the receiver has resigned")
            return
        if exc.code in UNREACHABLE | THROTTLED:
            if now.date() > deadline:
                ledger.settle_notification(row.event, "expired", code=exc.code, message=exc.msg)
                result.expired.append(row.event)
                log.warning("notify.expired", notification=row.event, code=exc.code)
            else:
                ledger.settle_notification(row.event, "pending", code=exc.code, message=exc.msg)
                result.pending.append(row.event)
            return
        ledger.settle_notification(row.event, "failed", code=exc.code, message=exc.msg)
        result.failed[row.event] = exc.code
        log.warning("notify.failed", notification=row.event, code=exc.code, msg=exc.msg)
        return
    ledger.settle_notification(row.event, "sent")
    result.sent.append(row.event)


def unconfirmed(ledger: Ledger, row: NotificationRow, now: datetime) -> bool:
    """True when ``row``'s unanswered attempt is too old to re-send (:data:`RESEND_WITHIN`):
    the row is then settled ``unknown``, and logged, instead of sent again."""
    if row.status != "sending" or row.last_tried_at is None or \
            now - row.last_tried_at < RESEND_WITHIN:
        return False
    ledger.settle_notification(row.event, "unknown", message=(
        f"attempted at {row.last_tried_at:%Y-%m-%d %H:%M} UTC, never confirmed; not re-sent "
        "after Feishu's 1-hour uuid window (it may have been delivered: check by hand)"))
    log.warning("notify.delivery_unknown", notification=row.event,
                attempted=row.last_tried_at.isoformat())
    return True


def _why_not(kind: str, user: MirrorUser | None, now: datetime) -> str | None:
    """Why an event about ``user`` is not sent now: ``"wait"`` (not yet due), a reason to
    cancel it, or ``None`` (send it)."""
    if user is None:
        return "no longer a managed user"
    if kind in LEAVER_KINDS:
        return None  # frozen or deleted by now, by definition; the record still says who
    if user.lifecycle is Lifecycle.DELETED:
        return "no longer a managed user"
    started = user.record.join_date is None or user.record.join_date <= now.date()
    if kind in LEAVE_KINDS:
        return None if user.lifecycle is Lifecycle.ACTIVE else "the person has left since"
    if kind in TRANSFER_KINDS:
        if user.lifecycle is not Lifecycle.ACTIVE:
            return "the person moved has left since"
        if not started:
            return "moved before their start date (the start-date messages name the new team)"
        return None
    return None if started else "wait"


def _receiver(config: NotifyConfig, state: DirectoryState, kind: str,
              user: MirrorUser) -> tuple[str, str] | None:
    """``(receive_id_type, receive_id)`` for an event about ``user``, or ``None``.

    Never the leaver for a leaver note. Notes to a manager need one orgsync
    manages that is not deleted (not frozen either, for transfer and leaver notes).
    """
    if kind in ("welcome", "transfer_welcome"):
        return _address(user)
    if kind in ("hr_note", "hr_leaver_note"):
        return ("chat_id", config.hr_chat_id) if config.hr_chat_id else None
    manager_key = user.record.manager_key
    manager = state.users.get(manager_key) if manager_key and manager_key != user.record.key else None
    if manager is None or manager.lifecycle is Lifecycle.DELETED:
        return None
    if kind != "manager_note" and manager.lifecycle is not Lifecycle.ACTIVE:
        return None
    return _address(manager)


def _address(user: MirrorUser) -> tuple[str, str]:
    return ("open_id", user.open_id) if user.open_id else ("user_id", user.feishu_id)


def variables(state: DirectoryState, user: MirrorUser,
              links: Mapping[str, str]) -> dict[str, str]:
    """Template variables for an event about ``user`` (see :mod:`orgsync.templates`)."""
    e = user.record
    manager = state.users.get(e.manager_key or "")
    return {
        **links,
        "name": e.name, "en_name": e.en_name or e.name, "employee_id": e.key,
        "email": e.email or "", "job_title": e.job_title or "",
        "department": department_path(state, e.department_keys[0] if e.department_keys
                                      else None),
        "manager": manager.record.name if manager else "",
        "start_date": e.join_date.isoformat() if e.join_date else "",
    }


def extra_variables(state: DirectoryState, kind: str, qualifiers: Sequence[str],
                    created: date) -> dict[str, str]:
    """The variables only ``kind`` offers (:data:`orgsync.templates.EVENT_VARIABLES`).

    ``qualifiers`` are the event key's (run id, then the old and new primary
    department keys of a transfer); ``created`` is the day the write was done.
    A department the mirror no longer holds shows as its key.
    """
    if kind in TRANSFER_KINDS and len(qualifiers) >= 3:
        old, new = qualifiers[1], qualifiers[2]
        return {"old_department": department_path(state, old) or old,
                "new_department": department_path(state, new) or new,
                "transfer_date": created.isoformat()}
    if kind in LEAVER_KINDS:
        return {"leave_date": created.isoformat()}
    if kind in LEAVE_KINDS and len(qualifiers) >= 5:
        return dict(zip(("leave_kind", "leave_start", "leave_end", "leave_days"),
                        qualifiers[1:5], strict=True))
    return {}


def department_path(state: DirectoryState, key: str | None) -> str:
    """``Top / Middle / Team`` for department ``key`` (as far as orgsync manages it)."""
    names: list[str] = []
    seen: set[str] = set()
    while key is not None and key not in seen and key in state.departments:
        seen.add(key)
        d = state.departments[key].record
        names.append(d.name)
        key = d.parent_key
    return " / ".join(reversed(names))


# ----------------------------------------------------------- reports and alerts


def report_text(run_id: str, plan: Plan, result: ApplyResult | None,
                notified: NotifyResult | None, *, feishu_only: bool = True) -> str:
    """The run report: counts by change kind, failures with Feishu codes, held
    records and messages that could not be delivered; for a takeover, the
    Feishu-only accounts unless ``feishu_only`` is off (``takeover.unmatched_users``)."""
    failed = result.failed if result is not None else []
    head = f"orgsync run {run_id}: " + ("FAILURES" if failed else "ok")
    lines = [head, f"plan {plan.plan_id}"]
    for kind, n in plan.summary().items():
        lines.append(f"  {kind}: {n}")
    if result is not None:
        lines.append("applied: " + ", ".join(f"{k} {v}" for k, v in result.summary().items()))
    for r in failed[:20]:
        lines.append(f"  failed {r.op.op_id}: code {r.code} {r.message or ''}".rstrip())
    if len(failed) > 20:
        lines.append(f"  … and {len(failed) - 20} more failures")
    if plan.takeover is not None and feishu_only:
        lines.append(feishu_only_text(plan.takeover["feishu_only"]))
    held = [i for i in plan.issues if i.severity == "error"]
    if held:
        lines.append(f"held records: {len(held)}")
        for i in held[:10]:
            lines.append(f"  {i.entity} {i.key}: {i.reason}")
    if notified is not None:
        lines.append(f"messages: sent {len(notified.sent)}, waiting {len(notified.pending)}, "
                     f"expired {len(notified.expired)}, failed {len(notified.failed)}"
                     + (f", delivery unknown {len(notified.unknown)}" if notified.unknown
                        else ""))
        for event in notified.expired:
            lines.append(f"  expired {event}: the receiver was never reachable")
        for event in notified.unknown:
            lines.append(f"  delivery unknown {event}: sent once without a confirmation, not "
                         "re-sent (check with the receiver)")
        for event, code in sorted(notified.failed.items()):
            lines.append(f"  failed {event}: code {code}")
    return "\n".join(lines)


def held_text(plan_id: str, reasons: Sequence[str]) -> str:
    """The alert for a held plan (how to release it included)."""
    return (f"orgsync: plan {plan_id} is HELD\n" + "\n".join(f"  {r}" for r in reasons)
            + f"\nReview it, then run: orgsync approve {plan_id}")


def failed_text(run_id: str, error: str) -> str:
    """The alert for a run that failed before finishing."""
    return f"orgsync run {run_id} FAILED: {error[:1000]}"


async def send_admin(config: NotifyConfig, ledger: Ledger, client: MessageAPI, event: str,
                     text: str) -> bool:
    """Send ``text`` to the admin chat once per ``event``; True when it is (now or before) sent.

    Never raises for a Feishu answer (the row records it). Like people events, an
    attempt left unanswered past the uuid window is settled ``unknown``, never re-sent.
    """
    if not config.admin_chat_id:
        return False
    row = ledger.owe_notification(event)
    if row.status == "sent":
        return True
    now = ledger.now()
    if row.status == "unknown" or unconfirmed(ledger, row, now):
        return False
    ledger.attempt_notification(event, now)
    try:
        await client.send_message(receive_id_type="chat_id", receive_id=config.admin_chat_id,
                                  msg_type="text", content={"text": text}, uuid=row.uuid)
    except FeishuError as exc:
        ledger.settle_notification(event, "failed", code=exc.code, message=exc.msg)
        log.warning("notify.admin_failed", notification=event, code=exc.code, msg=exc.msg)
        return False
    ledger.settle_notification(event, "sent")
    return True


def _start_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None

