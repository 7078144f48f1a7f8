"""``orgsync explain KEY``: why one person (or department) is the way they are.

One report (:func:`explain`, JSON-ready; :func:`render_text` prints it) from what orgsync
knows, read now: the source record and its validation issues; what the ledger's mirror
says orgsync applied, with the lifecycle dates (frozen since, delete due, deleted);
what it would change next (the source and the mirror differ); the last operations of the
journal (run, time, outcome, Feishu code, reason); the messages owed about them; and,
with ``live``, what Feishu holds now (one read). It writes nothing anywhere.

A key is an HR key (employee id or department code) or, for a person, an email. A
person orgsync never managed is explained too: held back (with the reasons), a pre-hire
not created yet, to be created, or — found in Feishu only — a Feishu-only account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.text import Text

from orgsync.config import Config
from orgsync.diff import not_created_yet
from orgsync.errors import FeishuError, OrgsyncError, SourceError
from orgsync.feishu import FeishuClient
from orgsync.feishu.schema import (
    department_from_feishu,
    employee_from_feishu,
    employee_type_name,
    is_frozen,
)
from orgsync.group_plan import person_groups
from orgsync.ledger import Ledger
from orgsync.model import Department, Employee, Snapshot, Status
from orgsync.names import FIELD_LABELS, Names
from orgsync.runner import diff_policy, read_raw
from orgsync.source import SourceData
from orgsync.state import Lifecycle, MirrorDepartment, MirrorUser
from orgsync.validate import validate

JOURNAL_SHOWN = 10


async def explain(config: Config, ledger: Ledger, key: str, *, live: bool = False,
                  now: datetime | None = None) -> dict[str, Any]:
    """The report on ``key`` (see the module docstring). Raises :class:`OrgsyncError`
    when neither the source, the ledger nor (with ``live``) Feishu knows it."""
    now = now or datetime.now(UTC)
    data: SourceData | None = None
    source_error = None
    try:
        data = validate(read_raw(config))
    except SourceError as exc:
        source_error = str(exc)
    asked = key
    if "@" in key:
        key = _by_email(key, data, ledger) or key
    mirrored = ledger.mirrored(key)
    employees = data.snapshot.employees if data else {}
    departments = data.snapshot.departments if data else {}
    held_departments = data.held_departments if data else set()
    if isinstance(mirrored, MirrorDepartment) or (
            mirrored is None and (key in departments or key in held_departments)):
        report = _department(config, data, key, mirrored if isinstance(
            mirrored, MirrorDepartment) else None)
    else:
        report = _person(config, data, key, mirrored if isinstance(mirrored, MirrorUser)
                         else None, now)
    if report["entity"] == "employee":
        report["groups"] = person_groups(config, data, ledger, key)
        if config.leave.enabled:
            report["leave_marks"] = [
                {"leave": m.key, "start": m.start_time, "end": m.end_time,
                 "timezone": m.timezone, "status": m.status, "event_id": m.event_id}
                for m in ledger.leave_marks_of(key)]
    report["asked"] = asked
    report["source_error"] = source_error
    report["operations"] = [_journal(r) for r in ledger.journal_of(key, JOURNAL_SHOWN)]
    report["messages"] = [{"event": n.event, "status": n.status, "attempts": n.attempts,
                           "sent_at": _iso(n.sent_at), "code": n.code, "message": n.message}
                          for n in ledger.notifications(target=key)]
    if live:
        await _read_live(config, ledger, report)
    if report["state"] == "unknown" and not report["operations"]:
        where = "the source, the ledger" + (" nor Feishu" if live else "")
        raise OrgsyncError(f"{asked!r} is in neither {where}: give an employee id, a "
                           "department code or a person's email"
                           + ("" if live else " (--live also asks Feishu)"))
    report["names"] = _names(report, employees, departments, ledger)
    return report


def _by_email(email: str, data: SourceData | None, ledger: Ledger) -> str | None:
    wanted = email.strip().lower()
    if data is not None:
        for k, e in data.snapshot.employees.items():
            if (e.email or "").lower() == wanted:
                return k
    return ledger.mirrored_key(email=wanted)


def _person(config: Config, data: SourceData | None, key: str, mirror: MirrorUser | None,
            now: datetime) -> dict[str, Any]:
    record = data.snapshot.employees.get(key) if data else None
    held = [str(i) for i in data.issues if i.entity == "employee" and i.key == key and i.held] \
        if data else []
    report: dict[str, Any] = {
        "entity": "employee", "key": key,
        "name": record.name if record else mirror.record.name if mirror else None,
        "source": _source(data, "employee", key, record),
        "applied": None, "differs": [], "lifecycle": None}
    if mirror is not None:
        report["applied"] = {"feishu_user_id": mirror.feishu_id, "open_id": mirror.open_id,
                             **mirror.record.fields()}
        report["lifecycle"] = _lifecycle(config, mirror)
        if record is not None:
            report["differs"] = _differs(mirror.record.fields(), record.fields())
    policy = diff_policy(config, now)
    live = {key} if mirror is not None and mirror.lifecycle is not Lifecycle.DELETED else set()
    scoped = _scope_state(data.out_of_scope_employees.get(key) if data else None,
                          mirror is not None and mirror.lifecycle is not Lifecycle.DELETED,
                          mirror is not None and mirror.lifecycle is Lifecycle.RELEASED)
    if scoped is not None:
        state = scoped
    elif held:
        state = "held back: " + "; ".join(held)
    elif record is not None and not_created_yet({key: record}, live, policy):
        start = record.join_date
        assert start is not None
        state = (f"not created yet: starts {start.isoformat()}, account created "
                 f"{(start - timedelta(days=config.lifecycle.prehire_days)).isoformat()}")
    elif mirror is None:
        state = "not managed yet: the next apply creates or adopts them" if record is not None \
            and record.status is Status.ACTIVE else "unknown"
    elif mirror.lifecycle is Lifecycle.DELETED:
        state = "deleted" + (" (in the source again: the next apply brings them back)"
                             if record is not None and record.status is Status.ACTIVE else "")
    elif record is None or record.status is not Status.ACTIVE:
        state = ("managed, frozen: a leaver in the grace period"
                 if mirror.lifecycle is Lifecycle.FROZEN else
                 "managed, active: a leaver (the next apply " +
                 ("freezes" if config.sync.leaver_action == "freeze" else "deletes") + " them)")
    else:
        state = f"managed, {mirror.lifecycle.value}" + (
            f": {len(report['differs'])} field(s) differ from the source, the next apply "
            "changes them" if report["differs"] else ": as the source says")
    report["state"] = state
    return report


def _department(config: Config, data: SourceData | None, key: str,
                mirror: MirrorDepartment | None) -> dict[str, Any]:
    record = data.snapshot.departments.get(key) if data else None
    held = [str(i) for i in data.issues if i.entity == "department" and i.key == key
            and i.held] if data else []
    report: dict[str, Any] = {
        "entity": "department", "key": key,
        "name": record.name if record else mirror.record.name if mirror else None,
        "source": _source(data, "department", key, record),
        "applied": None, "differs": [], "lifecycle": None,
        "members": sum(1 for e in data.snapshot.employees.values() if key in e.department_keys)
        if data else None}
    if mirror is not None:
        report["applied"] = {"feishu_department_id": mirror.feishu_id,
                             "open_department_id": mirror.open_id, **mirror.record.fields()}
        if record is not None:
            report["differs"] = _differs(mirror.record.fields(), record.fields())
    scoped = _scope_state(data.out_of_scope_departments.get(key) if data else None,
                          mirror is not None, False)
    if scoped is not None:
        state = scoped
    elif held:
        state = "held back: " + "; ".join(held)
    elif mirror is None:
        state = "not managed yet: the next apply creates or adopts it" if record else "unknown"
    elif record is None:
        state = "managed: not in the source any more (the next apply deletes it)"
    else:
        state = "managed" + (f": {len(report['differs'])} field(s) differ from the source, "
                             "the next apply changes them" if report["differs"]
                             else ": as the source says")
    report["state"] = state
    return report


def _scope_state(why: str | None, managed: bool, released: bool) -> str | None:
    """The state of a record the ``scope`` rules decide (:mod:`orgsync.scope`), else None."""
    if why is not None:
        return why + ("; released: no longer managed, left in Feishu as it is" if released
                      else "; the next apply releases it: no longer managed, left in Feishu "
                      "as it is" if managed else "; not managed")
    if released:
        return ("released earlier (out of scope then); in scope again: the next apply "
                "adopts the same account again")
    return None


def _source(data: SourceData | None, entity: str, key: str,
            record: Employee | Department | None) -> dict[str, Any] | None:
    if data is None:
        return None
    issues = [str(i) for i in data.issues if i.entity == entity and i.key == key]
    return {"where": data.where("employee" if entity == "employee" else "department", key),
            "record": record.fields() if record is not None else None,
            "held": key in (data.held_employees if entity == "employee"
                            else data.held_departments),
            "issues": issues}


def _lifecycle(config: Config, mirror: MirrorUser) -> dict[str, Any]:
    due = (mirror.frozen_at + timedelta(days=config.lifecycle.grace_days)
           if mirror.frozen_at is not None and mirror.lifecycle is Lifecycle.FROZEN else None)
    back = (mirror.deleted_at + timedelta(days=config.lifecycle.resurrect_days)
            if mirror.deleted_at is not None else None)
    return {"status": mirror.lifecycle.value, "frozen_since": _iso(mirror.frozen_at),
            "delete_due": _iso(due), "deleted_at": _iso(mirror.deleted_at),
            "resurrect_until": _iso(back)}


def _differs(applied: Mapping[str, Any], source: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"field": f, "applied": applied.get(f), "source": v} for f, v in source.items()
            if applied.get(f) != v]


def _journal(row: Any) -> dict[str, Any]:
    return {"run_id": row.run_id, "at": _iso(row.finished_at or row.started_at),
            "kind": row.kind, "status": row.status, "code": row.code, "reason": row.reason,
            "message": row.message}


async def _read_live(config: Config, ledger: Ledger, report: dict[str, Any]) -> None:
    """``report["live"]``: what Feishu holds for the entity now (one read or lookup)."""
    applied = report["applied"] or {}
    departments, users = ledger.reverse_ids()
    async with FeishuClient(config.feishu, light=True) as client:
        try:
            if report["entity"] == "department":
                fid = applied.get("feishu_department_id")
                if fid is None:
                    report["live"] = None
                    return
                found = await client.get_department(str(fid))
                record = department_from_feishu(found, departments, users).fields()
                report["live"] = record
                report["drift"] = _differs(applied, record)
                return
            fid = applied.get("feishu_user_id")
            if fid is None:
                source = (report["source"] or {}).get("record") or {}
                email = source.get("email") or (report["asked"] if "@" in report["asked"]
                                                else None)
                mobile = source.get("mobile")
                hits = await client.batch_get_user_ids(
                    emails=[email] if email else [], mobiles=[mobile] if mobile else [])
                fid = next((str(h["user_id"]) for h in hits if h.get("user_id")), None)
                if fid is None:
                    report["live"] = None
                    return
                if report["state"] == "unknown":
                    report["state"] = (f"not managed: Feishu-only account (user_id {fid}; "
                                       "no HR record, never changed by orgsync)")
                elif not report["applied"]:
                    report["state"] += f" (matches Feishu account {fid})"
            found = await client.get_user(str(fid))
            record = employee_from_feishu(found, departments, users).fields()
            report["live"] = {"feishu_user_id": fid, "frozen": is_frozen(found),
                              **record}
            if report["applied"]:
                report["drift"] = _differs(applied, record)
        except FeishuError as exc:
            report["live"] = {"error": f"Feishu {exc.code}: {exc.msg}"}


def _names(report: Mapping[str, Any], employees: Mapping[str, Employee],
           departments: Mapping[str, Department], ledger: Ledger) -> dict[str, str]:
    """Display names (:class:`orgsync.names.Names`: the source's, else what orgsync
    manages) of the department and people keys the report mentions."""
    keys: set[str] = set()
    for part in (report.get("applied"), (report.get("source") or {}).get("record"),
                 report.get("live")):
        if isinstance(part, Mapping):
            keys.update(part.get("department_keys") or ())
            keys.update(str(part[f]) for f in ("manager_key", "leader_key", "parent_key")
                        if part.get(f))
    for change in report.get("differs", ()):
        for side in ("applied", "source"):
            value = change[side]
            if change["field"] == "department_keys" and value:
                keys.update(value)
            elif change["field"] in ("manager_key", "leader_key", "parent_key") and value:
                keys.add(str(value))
    for op in report.get("operations", ()):  # keys a journaled reason names, as the source has them
        keys.update(t for t in _TOKEN.findall(op["reason"] or "")
                    if t in departments or t in employees)
    known = Names(Snapshot(dict(departments), dict(employees)), ledger.load_state())
    names: dict[str, str] = {}
    for k in sorted(keys):
        if known.department(k) is not None:
            names[k] = known.path(k)
        elif (e := known.employee(k)) is not None:
            names[k] = e.name
    return names


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat(timespec="seconds")


# ------------------------------------------------------------------------- text

_TOKEN = re.compile(r"[\w.\-]+")


def render_text(report: Mapping[str, Any], console: Console) -> None:
    """The report for a human: verdict first, then source, applied, journal, messages, live."""
    names: Mapping[str, str] = report["names"]

    def line(text: str, indent: int = 0) -> None:
        console.print(Text(" " * indent + text), soft_wrap=True)

    what = "Department" if report["entity"] == "department" else "Person"
    line(f"{what} {report['key']} {report['name'] or ''}".rstrip()
         + (f" (asked as {report['asked']})" if report["asked"] != report["key"] else ""))
    line(f"State: {report['state']}")
    for g in report.get("groups", ()):
        line(f"Group {g['name']} ({g['group']}): "
             + ("in it" if g["applied"] else "not in it yet")
             + (f", by the rule {g['rule']}" if g["by_rule"] else
                ", the rule no longer puts them there" if g["rule"] else
                ", a group no longer configured"))
    if report.get("members") is not None:
        line(f"Members in the source: {report['members']}")
    source = report["source"]
    if report["source_error"]:
        line(f"Source: could not be read: {report['source_error']}")
    elif source is not None:
        where = f" ({source['where']})" if source["where"] else ""
        if source["record"] is None:
            line("Source: not in the source" + (", held back" if source["held"] else "")
                 + where)
        else:
            line(f"Source{where}:")
            _fields(line, source["record"], names)
        for issue in source["issues"]:
            line(f"issue: {issue}", 2)
    applied = report["applied"]
    if applied is None:
        line("Applied: nothing (orgsync never created or adopted it)")
    else:
        ids = {k: v for k, v in applied.items() if k.startswith(("feishu_", "open_"))}
        same = source is not None and source["record"] is not None and not report["differs"]
        line("Applied (the ledger's mirror): " + ", ".join(f"{k} {v}" for k, v in ids.items()
                                                            if v)
             + ("; the same as the source" if same else ""))
        if not same:
            _fields(line, {k: v for k, v in applied.items() if k not in ids}, names)
    lifecycle = report["lifecycle"]
    if lifecycle:
        line("Lifecycle: " + lifecycle["status"] + "".join(
            f", {label} {lifecycle[k][:10]}" for k, label in (
                ("frozen_since", "frozen since"), ("delete_due", "delete due"),
                ("deleted_at", "deleted"), ("resurrect_until", "can be resurrected until"))
            if lifecycle[k]))
    if report["differs"]:
        line("Next apply changes (applied → source):")
        for c in report["differs"]:
            line(f"{c['field']}: {_value(c['field'], c['applied'], names)} → "
                 f"{_value(c['field'], c['source'], names)}", 2)
    if report["operations"]:
        line(f"Last operations (journal, newest first, at most {JOURNAL_SHOWN}):")
        for op in report["operations"]:
            code = f" Feishu {op['code']}" if op["code"] is not None else ""
            reason = _TOKEN.sub(lambda m: _named(m.group(0), names), op["reason"] or "")
            detail = "; ".join(p for p in (reason, op["message"]) if p)
            line(f"{(op['at'] or '')[:19].replace('T', ' ')}  run {op['run_id']}  {op['kind']} "
                 f"{op['status']}{code}" + (f" — {detail}" if detail else ""), 2)
    else:
        line("Last operations: none journaled")
    if "leave_marks" in report:
        marks = report["leave_marks"]
        line("Leave marks (the leave ledger):" + ("" if marks else " none"))
        for mark in marks:
            start, end = (_when(mark[k]) for k in ("start", "end"))
            line(f"leave {mark['leave']}: {start} – {end} ({mark['timezone']}), "
                 f"{mark['status']}" + (f", event {mark['event_id']}" if mark["event_id"]
                                        else ", its event id never recorded"), 2)
    for m in report["messages"]:
        line(f"Message {m['event']}: {m['status']}" + (f" ({m['message']})" if m["message"]
                                                       else ""))
    if "live" in report:
        live = report["live"]
        if live is None:
            line("Feishu now: no such account or department")
        elif "error" in live:
            line(f"Feishu now: could not read it ({live['error']})")
        elif applied is not None and not report.get("drift"):
            line("Feishu now: as applied" + (" (frozen)" if live.get("frozen") else ""))
        else:
            line("Feishu now:" + (" (frozen)" if live.get("frozen") else ""))
            _fields(line, {k: v for k, v in live.items() if k != "frozen"}, names)
            for c in report.get("drift", ()):
                line(f"changed in Feishu: {c['field']}: applied "
                     f"{_value(c['field'], c['applied'], names)}, Feishu has "
                     f"{_value(c['field'], c['source'], names)}", 2)


def _when(bound: str) -> str:
    """A mark's bound as stored: a date as it is, second timestamps as UTC date-times."""
    if not bound.isdigit():
        return bound
    return datetime.fromtimestamp(int(bound), UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fields(line: Any, fields: Mapping[str, Any], names: Mapping[str, str]) -> None:
    for f, v in fields.items():
        if v in (None, "", []):
            continue
        line(f"{FIELD_LABELS.get(f, f)}: {_value(f, v, names)}", 2)


def _value(field: str, value: Any, names: Mapping[str, str]) -> str:
    if value in (None, "", []):
        return "—"
    if field == "department_keys":
        return "; ".join(_named(str(k), names) for k in value)
    if field in FIELD_LABELS:
        return _named(str(value), names)
    if field == "employee_type":
        return employee_type_name(value)
    return str(value)


def _named(key: str, names: Mapping[str, str]) -> str:
    return f"{names[key]} ({key})" if key in names else key
