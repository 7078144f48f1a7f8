"""``orgsync doctor``: small checks of everything a sync needs, each with its remedy.

Each check returns a :class:`Check` — name, status (``pass``, ``warn``, ``fail`` or
``skip``), what it found, and what to do about it. Nothing is written to Feishu; the
ledger is opened as any command opens it (which migrates it), and the source is read
and validated as ``preview-source`` does.

The ``reachable`` and ``credentials`` checks say exactly what a run that meets the same
failure says when it stops (:mod:`orgsync.feishu.access`, exit 9): runs check no more
than that, at their first Feishu call, so a run with nothing to ask Feishu asks nothing.

Checks that need Feishu are skipped when it cannot be reached or refuses the
credentials. The probes follow feishu-api-more.md §2.4: granted scopes
(``GET /application/v6/scopes``), the contact range (listing the root needs all members;
``GET /contact/v3/scopes`` lists a partial range), one user read back (a field whose read
scope is missing is absent), the admin chat, and Feishu's ``Date`` header.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from orgsync.config import Config
from orgsync.errors import FeishuError, FeishuUnusable, OrgsyncError
from orgsync.feishu import FeishuClient
from orgsync.feishu.access import CREDENTIALS, REACHABLE
from orgsync.feishu.schema import DEPARTMENT, OPTIONAL_DEPARTMENT_LINKS, RA3, USER, FeishuField
from orgsync.identity import feishu_department_id
from orgsync.source import SourceData
from orgsync.state import DirectoryState

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"

CONTACT_WRITE = "contact:contact"
UPDATE_USER_ID = "contact:contact:update_user_id"
USER_ID_LOOKUP = "contact:user.id:readonly"
IM_SEND = ("im:message", "im:message:send_as_bot")
IM_CHAT = ("im:chat", "im:chat:create")
TIMEOFF_ALL = "calendar:timeoff"
TIMEOFF_EACH = ("calendar:time_off:create", "calendar:time_off:delete")
BOT_MISSING = 190007
TIMEOFF_BAD_PARAMS = 190002
OUT_OF_RANGE = frozenset({40004, 40014})
CLOCK_WARN_SECONDS = 30.0
CLOCK_FAIL_SECONDS = 300.0
"""A token lives 2 h and is renewed with a margin of minutes; five minutes of skew also
make the lifecycle dates (grace periods, pre-hires) fall due at the wrong time."""

_WIDEN = ("widen the app's contact range (developer console › Permissions & Scopes › "
          "contact range) to all members, or to departments that hold every department "
          "orgsync manages; the change needs a new app version and admin approval")


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict."""

    name: str
    status: str
    detail: str
    remedy: str = ""


def passed(checks: Sequence[Check]) -> bool:
    """True when no check failed (warnings and skips do not fail)."""
    return all(c.status != FAIL for c in checks)


def as_json(checks: Sequence[Check]) -> dict[str, Any]:
    """The verdicts for ``--format json``."""
    return {"ok": passed(checks), "checks": [asdict(c) for c in checks]}


# ------------------------------------------------------------------------ local checks


def check_ledger(config: Config) -> tuple[Check, DirectoryState | None]:
    """The ledger opens (which migrates it) and is at the newest schema revision."""
    from orgsync import migrations
    from orgsync.ledger import Ledger

    try:
        ledger = Ledger(config.ledger.url)
    except OrgsyncError as exc:
        return Check("ledger", FAIL, str(exc),
                     "make the ledger's directory writable or fix ledger.url; "
                     "a damaged file is restored from a backup"), None
    try:
        revision = migrations.stamped(ledger.engine)
        state = ledger.load_state()
    except Exception as exc:  # any storage fault is this check's finding
        return Check("ledger", FAIL, f"the ledger cannot be read: {exc}",
                     "restore it from a backup"), None
    finally:
        ledger.close()
    if revision != migrations.head():
        return Check("ledger", FAIL, f"schema at revision {revision}, newest is "
                     f"{migrations.head()}", "run any orgsync command once with write "
                     "access to the ledger: opening it migrates it"), state
    live = state.live_users()
    return Check("ledger", PASS, f"reachable, schema at the newest revision ({revision}); "
                 f"manages {len(state.departments)} departments and {len(live)} users"), state


def check_source(config: Config) -> tuple[Check, SourceData | None]:
    """The source reads and validates; held records are a warning, a failed read a failure."""
    from orgsync import preview

    try:
        data = preview.preview_source(config)
    except OrgsyncError as exc:
        return Check("source", FAIL, str(exc),
                     "fix the source (path, server, credentials) or the source section; "
                     "'orgsync preview-source' shows what it reads"), None
    s = preview.summary(data)
    detail = (f"{s['departments']} departments, {s['employees']} employees "
              f"({s['active']} active); {s['errors']} errors, {s['warnings']} warnings")
    if s["held_departments"] or s["held_employees"]:
        return Check("source", WARN, detail + f"; held back: {s['held_departments']} "
                     f"departments, {s['held_employees']} employees",
                     "'orgsync preview-source' lists each held record with its reason"), data
    return Check("source", PASS, detail), data


def check_people_lock(config: Config) -> Check:
    """Records Feishu refused as Feishu People's (人事企业版): left alone, listed here."""
    from orgsync.ledger import Ledger
    from orgsync.locked import locked_records

    try:
        ledger = Ledger(config.ledger.url)
    except OrgsyncError as exc:
        return Check("people_lock", SKIP, f"needs the ledger ({exc})")
    try:
        locked = locked_records(ledger)
    finally:
        ledger.close()
    keys = [*(f"user {k}" for k in sorted(locked.users)),
            *(f"department {k}" for k in sorted(locked.departments))]
    if not keys:
        return Check("people_lock", PASS, "no record refused as Feishu People's so far")
    shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
    return Check("people_lock", WARN, f"{len(keys)} record(s) Feishu People owns are left as "
                 f"they are: {shown}", "change them in Feishu People (the contact API cannot); "
                 "if the tenant stops sourcing them from it, delete the ledger's meta row "
                 "'feishu_people_locked' so orgsync manages them again")


# ------------------------------------------------------------------------ Feishu checks


def _granted(scopes: Mapping[str, bool]) -> set[str]:
    # The docs' example names a scope without its "contact:" prefix (UNCONFIRMED):
    # a name counts with and without it.
    held = {name for name, ok in scopes.items() if ok}
    return held | {f"contact:{name}" for name in held}


def _missing_reads(fields: Iterable[tuple[str, FeishuField]], held: set[str]) -> list[str]:
    """``scope (fields it would make readable)`` for each field no granted scope reads;
    named by the field's own scope (the app-wide RA3 ones stand in for most)."""
    by_scope: dict[str, list[str]] = {}
    for kind, f in fields:
        if not held & set(f.read):
            own = next((s for s in f.read if s not in RA3), f.read[0])
            by_scope.setdefault(own, []).append(f"{kind} {f.wire}")
    return [f"{scope} ({', '.join(names)})" for scope, names in sorted(by_scope.items())]


def permissions_check(config: Config, scopes: Mapping[str, bool]) -> Check:
    """The scopes orgsync needs are granted: contact write, every field's read, IM."""
    held = _granted(scopes)
    # The profile fields and the deputies and HRBPs matter only when a source gives them:
    # the live read then names what it cannot see (orgsync.runner.live_state).
    missing = _missing_reads([*(("user", f) for f in USER),
                              *(("department", f) for f in DEPARTMENT
                                if f.name not in OPTIONAL_DEPARTMENT_LINKS)], held)
    if CONTACT_WRITE not in held:
        missing.insert(0, f"{CONTACT_WRITE} (every create, update, freeze and delete)")
    if config.sync.adopt_existing and USER_ID_LOOKUP not in held:
        missing.append(f"{USER_ID_LOOKUP} (sync.adopt_existing: looking new hires up by "
                       "email and mobile)")
    if config.notify.enabled and not held & set(IM_SEND):
        missing.append(f"{' or '.join(IM_SEND)} (notify: welcomes and reports)")
    if config.sync.department_group_chat and not held & set(IM_CHAT):
        missing.append(f"{' or '.join(IM_CHAT)} (sync.department_group_chat)")
    if config.leave.source is not None and TIMEOFF_ALL not in held \
            and not held >= set(TIMEOFF_EACH):
        missing.append(f"{TIMEOFF_ALL} or {' + '.join(TIMEOFF_EACH)} (leave: time-off events)")
    if missing:
        return Check("permissions", FAIL, "not granted: " + "; ".join(missing),
                     "add these scopes in the developer console (Permissions & Scopes), "
                     "publish a new app version and have an admin approve it")
    if UPDATE_USER_ID not in held:
        return Check("permissions", WARN, f"{UPDATE_USER_ID} is not granted: a changed "
                     "employee id (user.rekey) will fail", "add it if ids ever change")
    return Check("permissions", PASS, f"{len(held & set(scopes))} scopes granted, "
                 "every field orgsync reads and writes is covered")


async def fields_check(client: FeishuClient, state: DirectoryState | None,
                       scope_users: Sequence[str]) -> Check:
    """Read one user back: each field orgsync compares must come back (absent = unreadable)."""
    user_id = next((u.feishu_id for u in (state.live_users().values() if state else ())),
                   None) or next(iter(scope_users), None)
    if user_id is None:
        return Check("fields", WARN, "no user to read back yet (orgsync manages none, and "
                     "the contact range lists none)", "run doctor again after the first apply")
    user = await client.get_user(user_id)
    absent = [f for f in USER if f.wire not in user]
    if absent:
        return Check("fields", FAIL, f"user {user_id} came back without "
                     + ", ".join(f.wire for f in absent)
                     + ": check and resync cannot compare them",
                     "grant the read scopes: " + "; ".join(
                         f"{f.wire}: {' or '.join(f.read)}" for f in absent))
    return Check("fields", PASS, f"user {user_id} came back with every field orgsync "
                 f"compares ({len(USER)})")


def _covered(key: str, granted: set[str], parents: Mapping[str, str | None]) -> bool:
    seen: set[str] = set()
    node: str | None = key
    while node is not None and node not in seen:
        if feishu_department_id(node) in granted:
            return True
        seen.add(node)
        node = parents.get(node)
    return False


async def contact_scope_check(client: FeishuClient, source: SourceData | None,
                              state: DirectoryState | None) -> tuple[Check, list[str]]:
    """The contact range is all members, or holds every department orgsync manages.

    Returns the check and the users the range lists (someone to read back).
    """
    depts, users = await client.contact_scope()
    try:
        async for _ in client.iter_children("0", page_size=1):
            break
    except FeishuError as exc:
        if exc.code not in OUT_OF_RANGE:
            raise
    else:
        return Check("contact_scope", PASS, "the app's contact range is all members"), users
    parents: dict[str, str | None] = {}
    if state is not None:
        parents.update({k: d.record.parent_key for k, d in state.departments.items()})
    if source is not None:
        parents.update({k: d.parent_key for k, d in source.snapshot.departments.items()})
    granted = set(depts)
    outside = sorted(k for k in parents if not _covered(k, granted, parents))
    listed = ", ".join(depts) or "none"
    if outside:
        top = sorted(k for k in outside if parents[k] is None)
        detail = (f"the contact range is some departments ({listed}); {len(outside)} of "
                  f"the {len(parents)} departments orgsync manages lie outside it: "
                  + ", ".join(outside[:10]) + (" …" if len(outside) > 10 else ""))
        if top:
            detail += "; creating top-level departments needs the all-members range"
        return Check("contact_scope", FAIL, detail, _WIDEN), users
    return Check("contact_scope", PASS, f"the contact range is some departments ({listed}) "
                 f"and holds all {len(parents)} departments orgsync manages"), users


async def admin_chat_check(config: Config, client: FeishuClient) -> Check:
    """With ``notify`` on, the bot can see the admin chat."""
    chat = config.notify.admin_chat_id
    if not (config.notify.enabled and chat):
        return Check("admin_chat", SKIP, "notify.admin_chat_id is not set")
    try:
        await client.get_chat(chat)
    except FeishuError as exc:
        return Check("admin_chat", FAIL, f"the bot cannot reach chat {chat} "
                     f"(Feishu {exc.code}: {exc.msg})",
                     "enable the bot capability, add the bot to the chat, and check "
                     "notify.admin_chat_id")
    return Check("admin_chat", PASS, f"the bot can reach chat {chat}")


def clock_check(server_date: str | None, now: float) -> Check:
    """This machine's clock against Feishu's ``Date`` header."""
    if not server_date:
        return Check("clock", WARN, "Feishu's answers carried no Date header",
                     "check that no proxy strips it")
    try:
        theirs = parsedate_to_datetime(server_date).timestamp()
    except (TypeError, ValueError):
        return Check("clock", WARN, f"Feishu's Date header is unreadable: {server_date!r}")
    skew = now - theirs
    detail = (f"this machine is {abs(skew):.0f} s "
              f"{'ahead of' if skew > 0 else 'behind'} Feishu")
    remedy = "synchronise the clock (NTP: timedatectl set-ntp true, or chrony)"
    if abs(skew) > CLOCK_FAIL_SECONDS:
        return Check("clock", FAIL, detail, remedy)
    if abs(skew) > CLOCK_WARN_SECONDS:
        return Check("clock", WARN, detail, remedy)
    return Check("clock", PASS, f"within {CLOCK_WARN_SECONDS:.0f} s of Feishu's clock "
                 f"({skew:+.1f} s)")


async def leave_bot_check(client: FeishuClient) -> Check:
    """Time-off events need the app's bot capability (feishu-api-more.md §8.1, 190007
    otherwise). The probe is a create with an empty body, which creates nothing: 190007
    means no bot, 190002 (bad params) means Feishu got past that test. That Feishu checks
    the bot before the body is UNCONFIRMED (the docs list both codes, not their order)."""
    try:
        data = await client.create_timeoff({})
    except FeishuError as exc:
        if exc.code == BOT_MISSING:
            return Check("leave_bot", FAIL, "the app has no bot: Feishu refuses time-off "
                         f"events ({exc.code}: {exc.msg})",
                         "enable the bot capability (developer console › Features › Bot), "
                         "publish a new app version and have an admin approve it")
        if exc.code == TIMEOFF_BAD_PARAMS:
            return Check("leave_bot", PASS, "the app's bot may create time-off events")
        return Check("leave_bot", FAIL, f"Feishu refused the time-off probe ({exc.code}: "
                     f"{exc.msg})", f"grant {TIMEOFF_ALL} and enable the bot capability")
    if event_id := data.get("timeoff_event_id"):  # never expected: take it back
        await client.delete_timeoff(str(event_id))
    return Check("leave_bot", PASS, "the app's bot may create time-off events")


async def feishu_checks(config: Config, client: FeishuClient, source: SourceData | None,
                        state: DirectoryState | None) -> list[Check]:
    """Reachable, credentials, then what the app may see and do."""
    needs = ("permissions", "contact_scope", "fields", "admin_chat", "clock",
             *(("leave_bot",) if config.leave.source is not None else ()))
    try:
        scopes = await client.app_scopes()
    except FeishuUnusable as exc:
        checks = [Check(REACHABLE, FAIL, exc.detail, exc.remedy)] if exc.check == REACHABLE \
            else [Check(REACHABLE, PASS, f"Feishu at {client.settings.origin} answers"),
                  Check(CREDENTIALS, FAIL, exc.detail, exc.remedy)]
        return [*checks, *(Check(n, SKIP, f"needs Feishu ({exc.check} failed)")
                           for n in needs)]
    checks = [Check(REACHABLE, PASS, f"Feishu at {client.settings.origin} answers"),
              Check(CREDENTIALS, PASS, f"app {config.feishu.app_id} has a tenant token"),
              permissions_check(config, scopes)]
    scope, users = await _guarded("contact_scope", contact_scope_check(client, source, state))
    checks.append(scope)
    checks.append((await _guarded("fields", _paired(fields_check(client, state, users))))[0])
    checks.append(await admin_chat_check(config, client))
    checks.append(clock_check(client.server_date, time.time()))
    if config.leave.source is not None:
        checks.append(await leave_bot_check(client))
    return checks


async def _paired(check: Any) -> tuple[Check, list[str]]:
    return await check, []


async def _guarded(name: str, probe: Any) -> tuple[Check, list[str]]:
    """A probe whose own call Feishu refused is that check's failure, with Feishu's words."""
    try:
        result: tuple[Check, list[str]] = await probe
    except FeishuError as exc:
        return Check(name, FAIL, f"Feishu refused the probe ({exc.code}: {exc.msg})",
                     "grant contact:contact.base:readonly (or contact:contact:readonly_as_app)"
                     " and check the app's contact range"), []
    return result


async def run_checks(config: Config) -> list[Check]:
    """Every check, in the order a sync needs them."""
    ledger, state = check_ledger(config)
    source, data = check_source(config)
    async with FeishuClient(config.feishu, light=True) as client:
        remote = await feishu_checks(config, client, data, state)
    return [*remote[:2], ledger, source, *remote[2:], check_people_lock(config)]
