"""Onboarding messages and run reports over Feishu IM.

Events and their keys (one row each in the ledger's ``notifications`` table):

* ``welcome:<employee>`` — to the new hire;
* ``manager_note:<employee>`` — to the new hire's manager (one note per joiner);
* ``hr_note:<employee>`` — the same note to ``notify.hr_chat_id``, when set;
* ``report:<run id>`` — a run report to ``notify.admin_chat_id``;
* ``alert:held:<plan id>`` / ``alert:failed:<run id>`` — alerts to the same chat.

Exactly once, across retries, crashes and re-runs: the people events are
recorded ``pending`` in the transaction that journals the user's create, adopt
or resurrect (:func:`arrivals`), so a crash right after the write still owes
them; a ``sent`` row is never sent again; and each send carries a uuid derived
from the event key, so a crash between Feishu's answer and the ledger update is
deduplicated by Feishu (its window is 1 h).

Timing: people events wait until the start date (``join_date``; pre-hires are
created days before it). A receiver the bot cannot reach yet (230013 and
friends: not activated, outside the app's range, bot blocked) stays
``pending`` and is tried again on every later run until ``retry_days`` after
the later of the start date and the write; then it is ``expired`` and
reported. Messages never block the sync and never change a run's exit code:
their outcome is in :class:`NotifyResult` and the run report.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import structlog

from orgsync.config import NotifyConfig
from orgsync.errors import FeishuError
from orgsync.executor import ApplyResult
from orgsync.ledger import Ledger, NotificationRow
from orgsync.plan import Operation, OpKind, Plan
from orgsync.state import DirectoryState, Lifecycle, MirrorUser
from orgsync.templates import Template

log = structlog.get_logger("orgsync.notify")

#: Codes that mean "this person cannot receive yet": kept pending and retried later.
UNREACHABLE = frozenset({230013, 230034, 230035, 230053})
#: Events about a person, sent on or after their start date.
PEOPLE_KINDS = ("welcome", "manager_note", "hr_note")
_ARRIVALS = (OpKind.USER_CREATE, OpKind.USER_ADOPT, OpKind.USER_RESURRECT)
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
}


class MessageAPI(Protocol):
    """The part of :class:`orgsync.feishu.FeishuClient` this module uses."""

    async def send_message(self, *, receive_id_type: str, receive_id: str, msg_type: str,
                           content: str | Mapping[str, Any],
                           uuid: str | None = None) -> dict[str, Any]: ...


@dataclass(slots=True)
class NotifyResult:
    """What one delivery pass did, as event keys (``failed``: event → Feishu code)."""

    sent: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when anything was sent or settled (worth a line in a report)."""
        return bool(self.sent or self.expired or self.failed)


def arrivals(config: NotifyConfig, now: datetime) -> Callable[[Operation], Sequence[str]]:
    """The executor hook: the events a done create/adopt/resurrect makes due.

    Someone whose start date lies more than ``retry_days`` in the past is not a
    new hire (an initial import, an adopted account) and gets no welcome.
    """
    def events(op: Operation) -> Sequence[str]:
        if op.kind not in _ARRIVALS:
            return ()
        start = _start_date((op.mirror or {}).get("join_date"))
        if start is not None and start < now.date() - timedelta(days=config.retry_days):
            return ()
        kinds = ["welcome", "manager_note"] + (["hr_note"] if config.hr_chat_id else [])
        return [f"{k}:{op.key}" for k in kinds]
    return events


async def deliver(config: NotifyConfig, ledger: Ledger, client: MessageAPI,
                  now: datetime) -> NotifyResult:
    """Send every pending people event that is due; settle the others.

    Never raises for a Feishu answer: each outcome is recorded on its row.
    """
    result = NotifyResult()
    state = ledger.load_state()
    rows = ledger.notifications(status="pending", kinds=PEOPLE_KINDS)
    gate = asyncio.Semaphore(_SENDERS)

    async def one(row: NotificationRow) -> None:
        async with gate:
            await _deliver_one(config, ledger, client, state, row, now, result)

    await asyncio.gather(*(one(r) for r in rows))
    for bucket in (result.sent, result.pending, result.expired):
        bucket.sort()
    return result


async def _deliver_one(config: NotifyConfig, ledger: Ledger, client: MessageAPI,
                       state: DirectoryState, row: NotificationRow, now: datetime,
                       result: NotifyResult) -> None:
    user = state.users.get(row.target)
    if user is None or user.lifecycle is Lifecycle.DELETED:
        ledger.settle_notification(row.event, "cancelled", tried=False,
                                   message="no longer a managed user")
        return
    start = user.record.join_date
    if start is not None and start > now.date():
        result.pending.append(row.event)  # a pre-hire: not their first day yet
        return
    created = row.created_at.date()
    deadline = max(created, start or created) + timedelta(days=config.retry_days)
    receiver = _receiver(config, state, row.kind, user)
    if receiver is None:
        ledger.settle_notification(row.event, "cancelled", tried=False,
                                   message="nobody to send it to (no manager)")
        return
    template = config.templates.get(_template_kind(row.kind)) or \
        DEFAULT_TEMPLATES[_template_kind(row.kind)]
    content = template.render(variables(state, user, config.links), config.language)
    try:
        await client.send_message(receive_id_type=receiver[0], receive_id=receiver[1],
                                  msg_type=template.msg_type, content=content, uuid=row.uuid)
    except FeishuError as exc:
        if exc.code in UNREACHABLE:
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


def _template_kind(kind: str) -> str:
    return "manager_note" if kind == "hr_note" else kind


def _receiver(config: NotifyConfig, state: DirectoryState, kind: str,
              user: MirrorUser) -> tuple[str, str] | None:
    """``(receive_id_type, receive_id)`` for an event about ``user``."""
    if kind == "welcome":
        return _address(user)
    if kind == "hr_note":
        return ("chat_id", config.hr_chat_id) if config.hr_chat_id else None
    manager = state.users.get(user.record.manager_key or "")
    if manager is None or manager.lifecycle is Lifecycle.DELETED:
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
                notified: NotifyResult | None) -> str:
    """The run report: counts by change kind, failures with Feishu codes, held
    records and messages that could not be delivered."""
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
    held = [i for i in plan.issues if i.severity == "error"]
    if held:
        lines.append(f"held records: {len(held)}")
        for i in held[:10]:
            lines.append(f"  {i.entity} {i.key}: {i.reason}")
    if notified is not None:
        lines.append(f"messages: sent {len(notified.sent)}, waiting {len(notified.pending)}, "
                     f"expired {len(notified.expired)}, failed {len(notified.failed)}")
        for event in notified.expired:
            lines.append(f"  expired {event}: the receiver was never reachable")
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

    Never raises for a Feishu answer (the row records it).
    """
    if not config.admin_chat_id:
        return False
    row = ledger.owe_notification(event)
    if row.status == "sent":
        return True
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


def content_json(content: Mapping[str, Any]) -> str:
    """``content`` as the JSON string Feishu's ``content`` field carries."""
    return json.dumps(content, ensure_ascii=False)
