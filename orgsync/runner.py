"""One run, the same code path for the CLI and the daemon.

read → validate → guard → diff → plan → (dry-run: stop) → apply → record.
Every step before apply is free of Feishu calls: incremental runs diff against
the ledger's mirror.

A run opens one Feishu client and hands it to every step that calls Feishu
(account lookups, live reads, apply, messages, alerts): one token fetch per run.
The client calls nothing until first used, so a run that needs no call makes none.
Nor does a run check Feishu up front: its first call does. When that call gets no
answer after its retries, or the token is refused, the client raises
:class:`~orgsync.errors.FeishuUnusable` and the run stops there (exit 9) with the
words ``orgsync doctor`` uses — a joiner is never "held back" over it, and an apply
never spends every operation's retries on it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import gc
import json
from collections.abc import Callable, Collection, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

import structlog

from connectors.registry import build_connector
from orgsync import avatars, catalogs, custom_attrs, gcpause, notify
from orgsync.config import Config
from orgsync.diff import DiffPolicy, diff, not_created_yet
from orgsync.errors import (
    EXIT_APPLY_FAILED,
    EXIT_OK,
    FeishuRetryable,
    FeishuUnusable,
    Fenced,
    OrgsyncError,
    PlanHeld,
    PlanStale,
    SourceError,
    SourceRefused,
)
from orgsync.executor import ApplyResult, Executor, OpResult
from orgsync.feishu import ClientStats, FeishuClient
from orgsync.feishu.client import BATCH_GET_ID_CHUNK
from orgsync.feishu.reader import (
    MissingReadPermission,
    read_departments,
    read_directory,
    unreadable,
)
from orgsync.feishu.schema import OPTIONAL_DEPARTMENT_LINKS, PROFILE_NAMES
from orgsync.group_plan import IN_STEP, group_gauges, plan_groups, settled
from orgsync.identity import KeyRules
from orgsync.ledger import Ledger
from orgsync.locked import locked_records
from orgsync.model import Department, Employee, Snapshot, Status
from orgsync.only import Selection, select
from orgsync.plan import Plan
from orgsync.reconcile import apply_renames, reconcile
from orgsync.renames import infer_renames
from orgsync.safety import check_source, gauges, leavers, violations
from orgsync.scope import apply_scope
from orgsync.source import Issue, SourceData
from orgsync.stage import staged
from orgsync.state import DirectoryState, Lifecycle, MirrorDepartment, MirrorUser
from orgsync.takeover import Takeover, match, not_adopted, unaligned
from orgsync.urls import mask_urls
from orgsync.validate import validate

log = structlog.get_logger("orgsync.run")
R = TypeVar("R", Department, Employee)
_ADMIN_FLAG = "is_tenant_manager"


@dataclass(frozen=True, slots=True)
class Approval:
    """``orgsync approve PLAN_ID``: release exactly that held plan, recorded as ``by``'s.

    The approval is recorded only when the run goes on to apply that plan: a run that
    is declined, or finds the source now gives another plan, uses nothing up.
    """

    plan_id: str
    by: str


#: How a run that raised is recorded: the source guard refused it, it was interrupted
#: (Ctrl-C, a cancelled task), or it failed.
def _ended_as(exc: BaseException) -> str:
    if isinstance(exc, SourceRefused | PlanStale):
        return "refused"
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return "interrupted"
    return "failed"


@dataclass(slots=True)
class RunOutcome:
    """What a run did."""

    run_id: str
    plan: Plan
    result: ApplyResult | None = None
    cancelled: bool = False
    stats: ClientStats | None = None  # the run's Feishu client's counters, when it applied
    notified: notify.NotifyResult | None = None  # messages sent after apply (notify enabled)
    selection: Selection | None = None  # ``only``: what of the full plan this run applies
    #: The state and validated source the plan was computed against (10⁵ records at
    #: 100k people: a caller that keeps the outcome keeps them). Out of the repr, which
    #: asyncio formats when it compares SIGINT handlers (see ``Plan.__repr__``).
    planned: Planned | None = field(default=None, repr=False)

    @property
    def exit_code(self) -> int:
        """0 when everything planned was applied (or nothing was), 6 when some writes failed.

        Messages (``notified``) never count: a welcome waiting for its receiver
        or one Feishu refused is reported, not a failure of the sync.
        """
        if self.result is not None and (self.result.count("failed") or
                                        self.result.count("skipped")):
            return EXIT_APPLY_FAILED
        return EXIT_OK


def read_raw(config: Config) -> SourceData:
    """The connector's result, unvalidated; :class:`SourceError` when the read fails."""
    connector = build_connector(config.source)
    try:
        return apply_scope(config.scope, connector.read())
    except OrgsyncError:
        raise
    except Exception as exc:  # a connector bug is still a failed read, never an empty org
        raise SourceError(f"source {config.source.type} failed: {mask_urls(str(exc))}") from exc


def read_source(config: Config, ledger: Ledger, *, accept_shrink: bool = False,
                raw: SourceData | None = None,
                applied: AbstractSet[str] = frozenset()) -> SourceData:
    """Read (unless ``raw`` was) and validate the source; refuse to go on when it cannot
    be trusted.

    Raises :class:`SourceError` for a failed read, an empty org, or one that
    shrank beyond ``safety.max_source_shrink`` against the last good read
    (unless ``accept_shrink``) — a failed read must never look like "everyone left".
    ``applied``: employees whose record Feishu holds exactly (see :func:`validate`).
    """
    data = _owned(validate(raw if raw is not None else read_raw(config), applied=applied),
                  config.sync.fields)
    active = data.read_active()
    if active == 0 and not data.snapshot.departments:
        managed = ledger.get_meta("last_good_employees")
        raise SourceRefused(
            "the source returned an empty org"
            + (f" (last good read had {managed} employees)" if managed else "")
            + "; refusing to plan deletes from it. Check the source and run again.")
    last = ledger.get_meta("last_good_employees")
    if not accept_shrink:
        check_source(active, int(last) if last else None, config.safety)
    return data


def _owned(data: SourceData, fields: tuple[str, ...] | None) -> SourceData:
    """``data`` managing only the profile fields ``sync.fields`` lists (``None``: all the
    source provides): the values of the others are dropped, so not even a create sends them."""
    if fields is None or data.profile_fields.issubset(fields):
        return data
    keep = data.profile_fields.intersection(fields)
    people = {k: e if e.profile.keys() <= keep
              else replace(e, profile={f: v for f, v in e.profile.items() if f in keep})
              for k, e in data.snapshot.employees.items()}
    return replace(data, snapshot=replace(data.snapshot, employees=people), profile_fields=keep)


def diff_policy(config: Config, now: datetime | None,
                adopt: Mapping[str, str] | None = None) -> DiffPolicy:
    """The diff's rules from the ``sync``, ``lifecycle`` and ``safety`` sections."""
    return DiffPolicy(
        leaver_action=config.sync.leaver_action, now=now,
        grace_days=config.lifecycle.grace_days, handover_to=config.lifecycle.handover_to,
        resurrect_days=config.lifecycle.resurrect_days,
        prehire_days=config.lifecycle.prehire_days, adopt=dict(adopt or {}),
        department_group_chat=config.sync.department_group_chat,
        leavers_department=config.lifecycle.leavers_department,
        create_only=frozenset(config.sync.create_only))


def protected_keys(config: Config, data: SourceData, state: DirectoryState
                   ) -> tuple[frozenset[str], frozenset[str]]:
    """Users and departments matching ``safety.protected_*`` (by key, email or name)."""
    users: set[str] = set()
    if config.safety.protected_users:
        pats = config.safety.protected_users
        people = [*data.snapshot.employees.values(), *(u.record for u in state.users.values())]
        users = {e.key for e in people if any(
            fnmatch.fnmatchcase(v, p) for p in pats for v in (e.key, e.email or "", e.name))}
    depts: set[str] = set()
    if config.safety.protected_departments:
        pats = config.safety.protected_departments
        units = [*data.snapshot.departments.values(),
                 *(d.record for d in state.departments.values())]
        depts = {d.key for d in units if any(
            fnmatch.fnmatchcase(v, p) for p in pats for v in (d.key, d.name))}
    return frozenset(users), frozenset(depts)


#: Adoption lookups (calls) above which their garbage is collected at once (see find_existing).
_COLLECT_AFTER_LOOKUPS = 100


async def find_existing(client: FeishuClient, data: SourceData, state: DirectoryState,
                        policy: DiffPolicy) -> tuple[dict[str, str], list[Issue]]:
    """Match people orgsync would create against existing Feishu accounts (email/mobile).

    Returns the keys to adopt (→ the account's ``user_id``) and conflicts: a
    person whose email and mobile point at two different accounts, or at an
    account orgsync already manages for someone else, is held back, never guessed.
    Pre-hires the plan does not create yet (``policy``) are not looked up: a run
    with nothing else to do asks Feishu nothing.
    """
    people = data.snapshot.employees
    later = not_created_yet(people, state.users, policy)
    candidates = [e for k in sorted(people.keys() - state.users.keys() - later)
                  if (e := people[k]).status is Status.ACTIVE and (e.email or e.mobile)]
    if not candidates:
        return {}, []
    emails = sorted({e.email for e in candidates if e.email})
    mobiles = sorted({e.mobile for e in candidates if e.mobile})
    try:
        found = await client.batch_get_user_ids(emails=emails, mobiles=mobiles)
    except FeishuRetryable as exc:
        # Creating without the check could duplicate an existing account; holding back
        # just these people lets the rest of the run go on, and the next run retries.
        log.warning("adopt.lookup_failed", code=exc.code, people=len(candidates))
        return {}, [Issue("employee", e.key, "email",
                          f"could not check Feishu for an existing account (Feishu {exc.code}); "
                          "not created in this run, retried in the next", "error",
                          data.where("employee", e.key)) for e in candidates]
    if max(len(emails), len(mobiles)) > _COLLECT_AFTER_LOOKUPS * BATCH_GET_ID_CHUNK:
        # Each call leaves request/response cycles (httpx over aiohttp) that the run's
        # paused collector would keep, and then freeze, for the whole run: a first sync's
        # 2,000 calls at 10⁵ people left ~10⁵ such objects at the plan's peak. One
        # collection here (~0.1 s, small beside such a run) frees them.
        gc.collect()
    by_email = {str(r["email"]).lower(): str(r["user_id"]) for r in found
                if r.get("user_id") and r.get("email")}
    by_mobile = {str(r["mobile"]): str(r["user_id"]) for r in found
                 if r.get("user_id") and r.get("mobile")}
    managed: dict[str, str] | None = None  # feishu id -> key, built at the first hit
    adopt: dict[str, str] = {}
    conflicts: list[Issue] = []
    for e in candidates:
        hits = {uid for uid in (by_email.get((e.email or "").lower()), by_mobile.get(e.mobile or ""))
                if uid}
        if not hits:
            continue
        if managed is None:
            managed = {u.feishu_id: k for k, u in state.users.items()}
        where = data.where("employee", e.key)
        if len(hits) > 1:
            conflicts.append(Issue("employee", e.key, "email", "email and mobile match two "
                                   f"different Feishu users ({', '.join(sorted(hits))})",
                                   "error", where))
            continue
        uid = hits.pop()
        if uid in managed and managed[uid] != e.key:
            conflicts.append(Issue("employee", e.key, "email", f"matches Feishu user {uid}, "
                                   f"which orgsync already manages as {managed[uid]}",
                                   "error", where))
            # ... and that person is accounted for by this row: never a leaver over it.
            conflicts.append(Issue("employee", managed[uid], "key", f"Feishu user {uid} is "
                                   f"theirs, and the row of {e.key} matches it; left as they "
                                   "are until the source says who is who", "error", where))
            continue
        adopt[e.key] = uid
    if adopt:
        # Tenant admins are never taken over (nor, once managed, changed or deleted).
        for key, uid in sorted(adopt.items()):
            try:
                account = await client.get_user(uid)
                admin = bool(account.get(_ADMIN_FLAG))
                why = not_adopted(uid, admin)
                if _ADMIN_FLAG not in account:  # unknown without its read permission: held
                    admin = True
                    why = not_adopted(uid, None)
            except FeishuRetryable as exc:
                admin = True
                why = (f"matches Feishu user {uid}, which could not be checked (Feishu "
                       f"{exc.code}); not adopted in this run, retried in the next")
            if admin:
                del adopt[key]
                conflicts.append(Issue("employee", key, "email", why, "error",
                                       data.where("employee", key)))
    return adopt, conflicts


async def live_state(client: FeishuClient, ledger: Ledger,
                     mirror: DirectoryState | None = None, *,
                     compare_all: bool = False,
                     unmanaged: AbstractSet[str] = frozenset()) -> DirectoryState:
    """What Feishu holds now for the entities orgsync manages (a full read).

    Managed scope is the mirror's: a department or user orgsync never created or
    adopted is not in the result, so it is never changed or deleted. A managed
    entity missing from Feishu (deleted behind orgsync's back) is left out too,
    so the diff creates it again. Raises on any read error: a partial read must
    never be diffed.

    A field Feishu did not return (the app lacks its read permission) keeps the
    mirror's value, what orgsync last applied: it is never read as empty, so never
    "repaired". ``compare_all`` (``check``) refuses such a read instead
    (:class:`MissingReadPermission`): drift in a field it cannot see cannot be ruled out.
    ``unmanaged`` names fields (``user.gender``) the source does not provide: their read
    permissions are not needed.
    """
    mirror = mirror if mirror is not None else ledger.load_state()
    rdept = {m.feishu_id: k for k, m in mirror.departments.items()}
    ruser = {m.feishu_id: k for k, m in mirror.users.items()}
    live = await read_directory(client, reverse_departments=rdept, reverse_users=ruser)
    missing = {k: v for k, v in unreadable(live).items() if k not in unmanaged}
    if compare_all and missing:
        raise MissingReadPermission(missing, "check compares every field orgsync manages")
    if missing:
        log.warning("read.fields_missing", fields=sorted(missing),
                    kept="as orgsync last applied them; drift in them is not repaired",
                    remedy="grant the read permissions: " + "; ".join(
                        f"{k}: {' or '.join(v)}" for k, v in sorted(missing.items())))
    admins_before = set(json.loads(ledger.get_meta("tenant_admins") or "[]"))
    state = DirectoryState(released=mirror.released, tenant_admins={
        k for k, u in live.users.items() if k in mirror.users
        and (k in live.tenant_admins if "tenant_admin" not in u.unknown else k in admins_before)})
    for k, md in mirror.departments.items():
        ld = live.departments.get(k)
        if ld is not None:
            state.departments[k] = MirrorDepartment(_known(ld.record, md.record, ld.unknown),
                                                    md.feishu_id, ld.open_id or md.open_id)
    for k, mu in mirror.users.items():
        lu = live.users.get(k)
        if mu.lifecycle is Lifecycle.DELETED:
            state.users[k] = mu  # resigned users are not listed; keep the dates for rehires
        elif lu is not None:
            read = lu.lifecycle if "lifecycle" not in lu.unknown else mu.lifecycle
            lifecycle = Lifecycle.FROZEN if read is Lifecycle.FROZEN else Lifecycle.ACTIVE
            state.users[k] = MirrorUser(_known(lu.record, mu.record, lu.unknown), mu.feishu_id,
                                        lu.open_id or mu.open_id, lifecycle,
                                        mu.frozen_at if lifecycle is Lifecycle.FROZEN else None,
                                        None)
    return state


def _unmanaged(data: SourceData) -> frozenset[str]:
    """The fields (as :func:`~orgsync.feishu.reader.unreadable` names them) ``data`` does not
    provide: profile fields without a column or rule, and department deputies and HRBPs
    when no department has any."""
    depts = data.snapshot.departments.values()
    return frozenset((
        *(f"user.{f}" for f in PROFILE_NAMES if f not in data.profile_fields),
        *(f"department.{f}" for f in OPTIONAL_DEPARTMENT_LINKS
          if not any(getattr(d, f) for d in depts))))


def _known(read: R, applied: R, unknown: AbstractSet[str]) -> R:
    """``read`` with the fields Feishu did not return taken from ``applied`` (profile
    fields too)."""
    kept = {f: getattr(applied, f) for f in unknown if hasattr(applied, f)}
    if isinstance(read, Employee) and isinstance(applied, Employee) \
            and not unknown.isdisjoint(PROFILE_NAMES):
        kept["profile"] = {**{k: v for k, v in read.profile.items() if k not in unknown},
                           **{k: v for k, v in applied.profile.items() if k in unknown}}
    return replace(read, **kept) if kept else read


@dataclass(slots=True)
class Planned:
    """A plan with the state it was computed against."""

    plan: Plan
    state: DirectoryState
    active: int  # the source's active employees: the shrink guard's next baseline
    takeover: Takeover | None = None  # a first run on a tenant that holds something
    source: Snapshot | None = None  # what the source holds (validated)


async def take_over(config: Config, client: FeishuClient, raw: SourceData, data: SourceData,
                    state: DirectoryState) -> tuple[Takeover | None, SourceData, SourceData]:
    """Match what Feishu holds before anything is created (:mod:`orgsync.takeover`).

    When the ledger manages nothing, the whole directory is read and matched; when
    the source has departments orgsync does not manage, the department tree is read
    (one walk) and those are matched. Returns the takeover (``None`` for an empty
    tenant, or nothing to match) and the source with the ambiguous matches held, as
    raw and validated. Raises on any read error: a partial read must never decide
    what to create.
    """
    if not state.departments and not state.users:
        found = match(data, await read_directory(client))
    elif data.snapshot.departments.keys() - state.departments.keys():
        managed = {k: d.feishu_id for k, d in state.departments.items()}
        found = match(data, await read_departments(client), managed)
    else:
        return None, raw, data
    if found.tenant_empty:
        return None, raw, data
    log.info("takeover.matched", departments=len(found.departments), users=len(found.users),
             conflicts=len(found.conflicts), feishu_only=len(found.feishu_only))
    if found.conflicts:
        raw = replace(raw, issues=[*raw.issues, *found.conflicts],
                      held_departments=raw.held_departments
                      | {i.key for i in found.conflicts if i.entity == "department" and i.key},
                      held_employees=raw.held_employees
                      | {i.key for i in found.conflicts if i.entity == "employee" and i.key})
        data = validate(raw)
    return found, raw, data


async def make_plan(config: Config, ledger: Ledger, client: FeishuClient, *,
                    full: bool = False, rebuild_mirror: bool = True, apply: bool = False,
                    accept_shrink: bool = False, now: datetime | None = None) -> Planned:
    """The plan that makes Feishu match the source.

    Incremental (default): diff against the ledger's mirror; the only Feishu
    call is the email/mobile lookup of people about to be created (to adopt
    existing accounts, ``sync.adopt_existing``). ``full``: read Feishu live
    first (after the source read succeeded), rebuild the mirror from it unless
    ``rebuild_mirror`` is off (``check``), then diff — drift made behind
    orgsync's back shows up as changes that applying repairs. ``apply``: job levels and
    families the source names and the tenant lacks are created now, when allowed
    (:mod:`orgsync.catalogs`).
    """
    raw = await catalogs.resolve(read_raw(config), client, ledger, apply=apply, create=frozenset(
        c for c, allowed in (("job_level", config.sync.create_job_levels),
                             ("job_family", config.sync.create_job_families),
                             ("employee_type", config.sync.create_employee_types)) if allowed))
    raw = await custom_attrs.resolve(raw, client, ledger)
    raw = await avatars.resolve(raw, client, ledger, config.source.base_dir, apply=apply)
    takeover: Takeover | None = None
    applied: DirectoryState | None = None  # on a full read: what orgsync applied
    if full:
        data = read_source(config, ledger, accept_shrink=accept_shrink, raw=raw)
        mirror = ledger.load_state()
        state = await live_state(client, ledger, mirror, compare_all=not rebuild_mirror,
                                 unmanaged=_unmanaged(data)) \
            if mirror.departments or mirror.users else DirectoryState(released=mirror.released)
        state = custom_attrs.named(catalogs.named(state, ledger), raw.custom_attrs)
        applied = mirror
        if rebuild_mirror:
            ledger.replace_mirror(state)
            ledger.set_meta("tenant_admins", json.dumps(sorted(state.tenant_admins)))
    else:
        # The mirror is loaded against the records just read: one fingerprint pass tells
        # which of them Feishu already holds (validation trusts those values, the diff
        # skips them by identity).
        state = ledger.load_state(known=raw.snapshot.employees)
        data = read_source(config, ledger, accept_shrink=accept_shrink, raw=raw,
                           applied=state.unchanged)
        state.tenant_admins = set(json.loads(ledger.get_meta("tenant_admins") or "[]"))
    first = not state.departments and not state.users
    # Path-keyed departments renamed: the mirror follows the new keys (department.rekey).
    # Before the takeover's matching, so a renamed department is not taken for a new one.
    renames = infer_renames(data, state, config.sync.rename_min_overlap)
    state = renames.state
    takeover, raw, data = await take_over(config, client, raw, data, state)
    if takeover is not None:
        taken = takeover.state(config.takeover.rekey_departments, config.takeover.rekey_users,
                               {k: d.feishu_id for k, d in state.departments.items()})
        state.departments.update(taken.departments)
        state.users.update(taken.users)
    # Who is who: held rows account for the people they match, changed ids are rekeys.
    rec = reconcile(raw, data, state, KeyRules(config.sync.ignore_key_case,
                                               config.sync.ignore_key_leading_zeros))
    state = rec.state
    if rec.changed:
        raw = replace(apply_renames(raw, rec.aliases), issues=[*raw.issues, *rec.issues],
                      held_employees=raw.held_employees | rec.held)
        data = validate(raw, applied=state.unchanged)
    adopt: dict[str, str] = {}
    if config.sync.adopt_existing:
        adopt, conflicts = await find_existing(client, data, state,
                                               diff_policy(config, now))
        if conflicts:
            # Held like records the source itself held back, so validation keeps the links
            # that point at them as far as Feishu allows instead of linking to someone
            # who may not exist (see orgsync.diff).
            data = validate(replace(raw, issues=[*raw.issues, *conflicts],
                                    held_employees=raw.held_employees
                                    | {c.key for c in conflicts if c.key}),
                            applied=state.unchanged)
    for key in sorted(data.snapshot.employees.keys() & state.released.keys()):
        adopt.setdefault(key, state.released[key].feishu_id)  # back in scope: re-adopted
    # Ids a takeover (or an adoption) left unaligned with the HR ids: aligned now.
    heal_depts, heal_users = unaligned(state, data, departments=config.takeover.rekey_departments,
                                       users=config.takeover.rekey_users)
    users, depts = protected_keys(config, data, state)
    locked = locked_records(ledger)
    users |= state.tenant_admins | locked.users
    depts |= locked.departments
    policy = replace(diff_policy(config, now, adopt), protected_users=users,
                     protected_departments=depts, rekeys={**heal_users, **rec.rekeys},
                     hold_leavers=rec.hold_leavers, department_rekeys=renames.rekeys,
                     rekey_adopted=config.takeover.rekey_users,
                     applied=applied,
                     adopt_departments={**heal_depts,
                                        **(takeover.departments if takeover else {})},
                     adopt_users=takeover.users if takeover else {})
    plan = await plan_groups(config, ledger, client, data, state, diff(data, state, policy),
                             full=full)
    plan = staged(plan, config.sync.stage, data, state)
    if takeover is not None and first:
        plan = plan.annotated(takeover=takeover.summary(data))
    else:
        takeover = None  # departments matched on a later run: no takeover plan to approve
    log.info("plan.ready", plan_id=plan.plan_id, operations=len(plan.operations),
             held=sum(1 for i in plan.issues if i.severity == "error"), full=full)
    return Planned(plan, state, data.read_active(), takeover, data.snapshot)


async def apply_plan(config: Config, ledger: Ledger, client: FeishuClient, plan: Plan, *,
                     run_id: str, progress: Callable[[OpResult], None] | None = None,
                     now: datetime | None = None) -> ApplyResult:
    """Apply ``plan`` through ``client``.

    With ``notify`` enabled, the messages a write makes due (welcomes, and when
    switched on transfer and leaver notes, keyed by ``run_id``) are recorded with
    it (sent afterwards by :func:`send_messages`).
    """
    arrivals = (notify.arrivals(config.notify, now or datetime.now(UTC), run_id=run_id,
                                leaver_action=config.sync.leaver_action)
                if config.notify.enabled else None)
    if config.leave.enabled:  # a leaver's future leave marks go before they do
        from orgsync.leave_sync import clear_leavers

        await clear_leavers(config, ledger, client, plan, now or datetime.now(UTC))
    executor = Executor(client, ledger, run_id=run_id, concurrency=config.sync.concurrency,
                        progress=progress, arrivals=arrivals)
    return await executor.run(plan)


async def send_messages(config: Config, ledger: Ledger, client: FeishuClient,
                        outcome: RunOutcome, now: datetime | None) -> None:
    """After an apply: deliver due onboarding messages, then the run report.

    The report goes to ``notify.admin_chat_id`` (once per run id) when the run
    changed something, failed writes, or settled messages. Any error here is
    logged, never raised: messages must not fail a sync.
    """
    if not config.notify.enabled:
        return
    if outcome.plan.empty and not ledger.notifications(status=notify.OPEN,
                                                       kinds=notify.PEOPLE_KINDS):
        outcome.notified = notify.NotifyResult()
        return  # the usual quiet run: no Feishu call, no token
    try:
        outcome.notified = await notify.deliver(config.notify, ledger, client,
                                                now or datetime.now(UTC))
        if not outcome.plan.empty or outcome.notified.changed:
            await notify.send_admin(config.notify, ledger, client, f"report:{outcome.run_id}",
                                    notify.report_text(
                                        outcome.run_id, outcome.plan, outcome.result,
                                        outcome.notified,
                                        feishu_only=config.takeover.unmatched_users == "report"))
    except Exception:
        log.exception("notify.crashed")


async def send_alert(config: Config, ledger: Ledger, client: FeishuClient, event: str,
                     text: str) -> None:
    """One alert to the admin chat per ``event``; errors are logged, never raised."""
    if not (config.notify.enabled and config.notify.admin_chat_id):
        return
    try:
        await notify.send_admin(config.notify, ledger, client, event, text)
    except Exception:
        log.exception("notify.alert_crashed", notification=event)


def _only_keys(asked: Collection[str], planned: Planned) -> set[str]:
    """The keys ``asked`` names (an email names the person the source gives it); an
    :class:`OrgsyncError` for one that neither the source nor the ledger knows."""
    source = planned.source or Snapshot({}, {})
    emails = {(e.email or "").lower(): k for k, e in source.employees.items() if e.email} \
        if any("@" in a for a in asked) else {}
    known = (source.employees.keys() | source.departments.keys()
             | planned.state.users.keys() | planned.state.departments.keys()
             | {i.key for i in planned.plan.issues if i.key})
    keys: set[str] = set()
    for a in asked:
        key = emails.get(a.strip().lower(), a) if "@" in a else a
        if key not in known:
            raise OrgsyncError(f"--only {a}: neither the source nor the ledger knows it (give "
                               "an employee id, a department code or a person's email)")
        keys.add(key)
    return keys


def _stale(ledger: Ledger, run_id: str, approved: str, plan: Plan,
           reasons: list[str]) -> PlanStale:
    """Record (and return) the refusal of an approval of ``approved`` when the source now
    gives ``plan``: that plan is held in turn when it needs approval (``reasons``)."""
    message = (f"the source changed since plan {approved} was held: the plan now is "
               f"{plan.plan_id} ({len(plan.operations)} operations); nothing was applied. ")
    if reasons:
        ledger.hold_plan(plan.plan_id, plan.checksum, reasons, plan.summary())
        message += (f"It is held too ({'; '.join(reasons)}): review it with 'orgsync plan', "
                    f"then 'orgsync approve {plan.plan_id}'.")
    else:
        message += "It needs no approval: review it with 'orgsync plan', then 'orgsync apply'."
    ledger.finish_run(run_id, "refused", plan_id=plan.plan_id, summary=plan.summary(),
                      error=message)
    return PlanStale(message, plan_id=plan.plan_id, reasons=reasons)


async def run_once(config: Config, ledger: Ledger, *, apply: bool, full: bool = False,
                   show: Callable[[Plan], None] | None = None,
                   confirm: Callable[[Plan], bool] | None = None,
                   progress: Callable[[OpResult], None] | None = None,
                   accept_shrink: bool = False, now: datetime | None = None,
                   approve: Approval | None = None,
                   only: Collection[str] | None = None) -> RunOutcome:
    """A whole run, recorded in the ledger's run table.

    ``full`` reads Feishu live: a resync (drift repaired, mirror rebuilt) when
    applying, a drift check (nothing written anywhere but the run record) when not.
    ``show`` is called with the plan before anything is written; ``confirm``
    (when given) may decline the apply, which then records the run as cancelled.
    The safety thresholds are checked on the whole plan in dry-run too: a plan
    over one is held (stored with its id) and :class:`PlanHeld` is raised,
    unless that exact plan was approved (``orgsync approve``, ``approve``: the
    approval is recorded when the apply starts; a plan other than the approved one
    raises :class:`PlanStale` and applies nothing).

    ``only`` (employee keys, department keys, emails): apply just the operations on
    those and what they depend on (:func:`orgsync.only.select`), checked by the same
    guards; such a run never moves the guards' baselines (the last good source size,
    the leaver history), since it did not apply the source in full.

    The run is recorded ``ok``, ``partial`` (some writes failed), ``held``,
    ``cancelled`` (``confirm`` declined), ``refused`` (the source guard, a stale
    approval), ``interrupted`` (Ctrl-C) or ``failed``, with the error that says why.
    """
    # The run's one client, made before the run is recorded (nothing may fail between
    # start_run and the try that records the failure). A dry plan calls Feishu for a few
    # account lookups at most: httpx's own transport, quicker to load than the aiohttp
    # one that a run reading or writing in bulk uses.
    client = FeishuClient(config.feishu, light=not (apply or full))
    # Only a run that writes may declare an earlier run dead: a dry-run or check
    # started beside a running daemon must not mark the daemon's run crashed.
    interrupted = ledger.recover_interrupted() if apply else 0
    mode = ("resync" if apply else "check") if full else ("apply" if apply else "plan")
    if only is not None:
        mode += "-only"
    run_id = ledger.start_run(mode)
    structlog.contextvars.bind_contextvars(run_id=run_id)
    if interrupted:
        log.warning("run.recovering", interrupted_operations=interrupted)
    try:
        # The source and the mirror stay alive for the whole run: the collector is
        # paused while they are built and they are frozen out of its later scans
        # (thawed when the run ends).
        with gcpause.paused_gc(freeze=True):
            planned = await make_plan(config, ledger, client, full=full, rebuild_mirror=apply,
                                      apply=apply, accept_shrink=accept_shrink, now=now)
        plan = planned.plan
        selection = None
        if only is not None:
            selection = select(plan, _only_keys(only, planned))
            plan = selection.plan
        # Measured before the plan is shown: its summary says how close it is to each guard.
        plan = plan.annotated(guards=(*gauges(
            plan, planned.state, config.safety,
            ledger.leaver_history(config.safety.churn_window)),
            *group_gauges(plan, config.groups, config.safety)))
        outcome = RunOutcome(run_id, plan, selection=selection, planned=planned)
        if show is not None:
            show(plan)
        reasons = violations(plan.guards)
        # A first run that was killed or failed left its own work in Feishu: it resumes.
        if planned.takeover is not None and config.safety.takeover_requires_approval \
                and not ledger.has_written():
            reasons.append("a takeover: the first run on a Feishu tenant that already holds "
                           "departments or people (safety.takeover_requires_approval)")
        status = ledger.plan_status(plan.plan_id)
        if approve is not None and approve.plan_id != plan.plan_id:
            raise _stale(ledger, run_id, approve.plan_id, plan, reasons)
        approved = status == "approved" or (approve is not None and status == "held")
        if reasons and not approved:
            ledger.hold_plan(plan.plan_id, plan.checksum, reasons, plan.summary())
            ledger.finish_run(run_id, "held", plan_id=plan.plan_id, summary=plan.summary(),
                              error="; ".join(reasons))
            if apply:  # once per plan id: a daemon meeting the same held plan stays quiet
                await send_alert(config, ledger, client, f"alert:held:{plan.plan_id}",
                                 notify.held_text(plan.plan_id, reasons))
            raise PlanHeld(
                f"plan {plan.plan_id} is held: " + "; ".join(reasons)
                + f". Review it, then release exactly this plan with "
                  f"'orgsync approve {plan.plan_id}'.", plan_id=plan.plan_id, reasons=reasons)
        if apply and not plan.empty and confirm is not None and not confirm(plan):
            ledger.finish_run(run_id, "cancelled", plan_id=plan.plan_id, summary=plan.summary(),
                              error="not confirmed: declined at the prompt, or no --yes "
                                    "without a terminal"
                                    + ("; the plan stays held" if approve else ""))
            outcome.cancelled = True
            return outcome
        if approve is not None and status == "held":
            ledger.approve_plan(plan.plan_id, by=approve.by)
        if apply and config.groups.define:  # before any write: a crash leaves none in step
            ledger.set_meta(IN_STEP, "")
        if apply and not plan.empty:
            outcome.result = await apply_plan(config, ledger, client, plan, run_id=run_id,
                                              progress=progress, now=now)
            if plan.takeover is not None:  # for 'orgsync status'
                ledger.set_meta("feishu_only", json.dumps(plan.takeover["feishu_only"],
                                                          ensure_ascii=False))
            outcome.stats = client.stats
            if approved:
                ledger.mark_plan_applied(plan.plan_id)
        if apply:  # also on an empty plan: welcomes still owed are retried
            ledger.check_fence()  # messages are Feishu writes too
            if config.groups.define and only is None and planned.source is not None:
                ledger.set_meta(IN_STEP, settled(ledger, config, plan, outcome.result,
                                                 planned.source.departments))
            await send_messages(config, ledger, client, outcome, now)
        summary: dict[str, int] = dict(plan.summary())
        if apply and not approved and only is None:  # the churn guard's history
            summary["leavers"] = leavers(plan, planned.state)
        if outcome.result is not None:
            summary.update({f"ops_{k}": v for k, v in outcome.result.summary().items()})
        status = "ok" if outcome.exit_code == EXIT_OK else "partial"
        ledger.finish_run(run_id, status, plan_id=plan.plan_id, summary=summary)
        if apply and status == "ok" and only is None:
            # Only a source that was applied in full confirms the guard's baseline: a plan,
            # a held, refused, cancelled or failed run, a partial apply or an --only run
            # never moves it.
            ledger.set_meta("last_good_employees", str(planned.active))
        return outcome
    except PlanHeld:
        raise
    except BaseException as exc:
        if not isinstance(exc, PlanStale):  # recorded where it was raised
            ledger.finish_run(run_id, _ended_as(exc),
                              error=mask_urls(str(exc) or type(exc).__name__)[:2000])
        # Fenced: this run may not write; FeishuUnusable: an alert could not get through.
        if apply and isinstance(exc, Exception) and not isinstance(exc, Fenced | FeishuUnusable):
            await send_alert(config, ledger, client, f"alert:failed:{run_id}",
                             notify.failed_text(run_id, str(exc)))
        raise
    finally:
        gcpause.thaw()
        structlog.contextvars.unbind_contextvars("run_id")
        await client.aclose()
