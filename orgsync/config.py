"""Config loading: one versioned YAML file → typed, frozen sections.

::

    version: 1
    feishu:  {base_url, app_id, app_secret | app_secret_file, timeout, max_retries,
              rate_limits, rate_scale}
    source:  {type: csv | ldap | hris | …, <the connector's own options>}
    ledger:  {url}
    sync:    {leaver_action, concurrency, adopt_existing, department_group_chat,
              ignore_key_case, ignore_key_leading_zeros, rename_min_overlap}
    logging: {format, level, mask_pii}
    daemon:  {interval | cron, full_resync_cron | full_resync_interval, jitter, misfire_grace,
              run_on_start, shutdown_grace, ready_max_age, leader_poll, lock_name, timezone}
    admin:   {bind, port, token | token_file, metrics_public, url}
    notify:  {enabled, language, retry_days, admin_chat_id, hr_chat_id, transfer_notes,
              transfer_to, leaver_notes, leave_note_days, links, templates}

Every key is read by :class:`orgsync.options.Section`, whose rules hold for the whole
file (connectors' options included): ``${VAR}`` interpolation, null as absent, text
accepted for numbers and booleans, ``x_file`` for secrets, paths relative to the
config file, unknown keys refused with a did-you-mean, and every error a
:class:`~orgsync.errors.ConfigError` naming the file, the dotted key and the remedy.

Each section has one small parser (``_parse_<section>``) registered in
:data:`_SECTIONS`; adding a section is adding a dataclass, a parser and a field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

import yaml

from orgsync.errors import ConfigError
from orgsync.feishu.schema import PROFILE_NAMES
from orgsync.feishu.settings import FEISHU_BASE_URL, LARK_BASE_URL, FeishuSettings
from orgsync.groups import GroupsConfig, parse_groups
from orgsync.leave_config import LeaveConfig, parse_leave
from orgsync.options import Section, describe, did_you_mean, interpolate
from orgsync.scope import ScopeConfig, parse_scope
from orgsync.stage import StageConfig, parse_stage
from orgsync.templates import (
    ALL_VARIABLES,
    Template,
    TemplateError,
    event_variables,
    parse_template,
)
from orgsync.urls import PERCENT_ENCODE, mask_url, userinfo_is_ambiguous

CONFIG_VERSION = 1
_SECRET_HINT = re.compile(r"password|secret|token|credential|private", re.IGNORECASE)


@dataclass(frozen=True)
class SourceConfig:
    """The ``source`` section: the connector type and its own, unparsed options.

    ``base_dir`` is the config file's directory and ``file`` its name, for the
    connector's relative paths and error messages. The repr masks options whose
    names look secret (password, token, …).
    """

    type: str
    options: Mapping[str, Any]
    base_dir: Path
    file: str

    def __repr__(self) -> str:
        shown = {k: "***" if _SECRET_HINT.search(k) else v for k, v in self.options.items()}
        return (f"SourceConfig(type={self.type!r}, options={shown!r}, "
                f"base_dir={self.base_dir!r}, file={self.file!r})")


@dataclass(frozen=True)
class LedgerConfig:
    """Where the ledger lives: a SQLAlchemy URL (relative SQLite paths already resolved)."""

    url: str = "sqlite:///orgsync.db"


@dataclass(frozen=True)
class SyncConfig:
    """What a run does with leavers, how many Feishu calls it keeps in flight, whether
    people about to be created are first matched (email/mobile) against existing accounts,
    and whether departments orgsync creates get a department group chat
    (``create_group_chat``: named after the department, owned by its main leader; departments
    that already exist are never given one)."""

    leaver_action: Literal["delete", "freeze"] = "freeze"
    concurrency: int = 16
    adopt_existing: bool = True
    department_group_chat: bool = False
    #: How employee ids are compared across runs (a changed id is a ``user.rekey``).
    ignore_key_case: bool = True
    ignore_key_leading_zeros: bool = False
    #: Share of members a new path-keyed department must have in common with one that
    #: vanished under the same parent to be taken as it renamed (see orgsync.renames).
    rename_min_overlap: float = 0.8
    #: Writes limited to a part of the org while the whole is planned (orgsync.stage).
    stage: StageConfig = field(default_factory=StageConfig)
    #: Who owns each profile field (orgsync.feishu.schema.PROFILE): the ones orgsync
    #: manages (None: those the source provides), and of those the ones only set when a
    #: person is created (never overwritten, never drift: e.g. a field employees edit).
    fields: tuple[str, ...] | None = None
    create_only: tuple[str, ...] = ()
    #: A job level / family / custom employee type the source names that the tenant lacks
    #: is created by apply
    #: (else the people naming it are held with the reason).
    create_job_levels: bool = False
    create_job_families: bool = False
    create_employee_types: bool = False


@dataclass(frozen=True)
class SafetyConfig:
    """Guards checked before anything is written (see :mod:`orgsync.safety`).

    Removals are deletes (those at the end of a grace period included) and
    freezes of users in one plan; a plan over a count *or* a fraction of the
    managed set is held until ``orgsync approve``. Fractions apply once orgsync
    manages at least ``min_managed`` entities. Defaults sit between Entra's
    500-object delete threshold and Okta's 20 % safeguard: a normal week's churn
    passes, a broken filter does not.

    Churn: more leavers (freezes + deletes of active users) in one run than
    ``max(churn_factor × the median of the last churn_window applied runs'
    leavers, churn_floor)`` is held. Identity: more than
    ``max_identity_change_fraction`` of the managed users changing name, email
    or mobile in one run is held.
    """

    max_user_removals: int = 500
    max_user_removal_fraction: float = 0.20
    max_department_deletes: int = 100
    max_department_delete_fraction: float = 0.20
    min_managed: int = 50
    max_source_shrink: float = 0.30
    churn_factor: float = 3.0
    churn_window: int = 8
    churn_floor: int = 10
    max_identity_change_fraction: float = 0.30
    #: Share of the managed users a plan may release (scope rules changed, see
    #: orgsync.scope) before it is held.
    max_user_release_fraction: float = 0.20
    protected_users: tuple[str, ...] = ()
    protected_departments: tuple[str, ...] = ()
    #: The first plan on a Feishu tenant that already holds departments or people
    #: (a takeover, see :mod:`orgsync.takeover`) is held until ``orgsync approve``.
    takeover_requires_approval: bool = True


@dataclass(frozen=True)
class TakeoverConfig:
    """Taking over a Feishu directory that exists already (see :mod:`orgsync.takeover`).

    ``rekey_departments`` / ``rekey_users``: after adopting a department or an account,
    set its custom ``department_id`` / ``user_id`` to the HR id (update-department-id,
    update-user-id), so later runs never depend on names, emails or mobiles again.
    ``unmatched_users``: whether the run report names the Feishu-only accounts
    (``report``) or not (``ignore``); they are never changed either way.
    """

    rekey_departments: bool = True
    rekey_users: bool = True
    unmatched_users: Literal["ignore", "report"] = "report"


@dataclass(frozen=True)
class LifecycleConfig:
    """Leavers, rehires and pre-hires (see :mod:`orgsync.diff`).

    Leavers are frozen, then deleted ``grace_days`` later with their documents,
    calendar and chats handed to their manager (or to ``handover_to``). A leaver
    who returns within ``resurrect_days`` of deletion is resurrected. Someone
    with a future ``join_date`` is created ``prehire_days`` before it. Frozen leavers in
    a department the source removed move to ``leavers_department`` (a department key;
    unset: the nearest ancestor the source keeps), so the department goes at once.
    """

    grace_days: int = 14
    handover_to: str | None = None
    leavers_department: str | None = None
    resurrect_days: int = 30
    prehire_days: int = 7


@dataclass(frozen=True)
class LoggingConfig:
    """Log rendering (``auto``: console on a TTY, JSON otherwise), level, PII masking."""

    format: Literal["auto", "console", "json"] = "auto"
    level: str = "info"
    mask_pii: bool = True


@dataclass(frozen=True)
class DaemonConfig:
    """When ``orgsync daemon`` runs what (see :mod:`orgsync.daemon`).

    Incremental runs on ``interval`` seconds or on ``cron``; full resyncs on
    ``full_resync_cron`` or every ``full_resync_interval`` seconds (``None`` for
    both: never). Cron expressions have 5 crontab fields, or 6 with seconds
    first; weekday numbers mean what crontab means (0 and 7 are Sunday). Times
    are seconds.
    """

    interval: float | None = 900.0
    cron: str | None = None
    full_resync_cron: str | None = "0 3 * * *"
    full_resync_interval: float | None = None
    jitter: float = 0.0
    misfire_grace: float = 600.0
    run_on_start: bool = True
    shutdown_grace: float = 30.0
    ready_max_age: float | None = None
    leader_poll: float = 5.0
    lock_name: str = "orgsync"
    timezone: str | None = None

    @property
    def max_age(self) -> float:
        """How old the last good run may be for ``/readyz``: ``ready_max_age``, else
        three incremental intervals, else 25 hours."""
        if self.ready_max_age is not None:
            return self.ready_max_age
        if self.interval is not None:
            return 3 * self.interval
        return 25 * 3600.0


@dataclass(frozen=True)
class AdminConfig:
    """The daemon's admin HTTP endpoint, and where ``orgsync resync`` finds a running daemon.

    ``token`` guards ``POST /resync``, ``GET /runs``, ``GET /metrics`` and the
    details of ``GET /readyz``; ``None`` disables the first three.
    ``metrics_public`` serves ``/metrics`` without the token. ``url`` (client
    side): when set, ``orgsync resync`` asks that daemon instead of running locally.
    """

    bind: str = "127.0.0.1"
    port: int = 8791
    token: str | None = field(default=None, repr=False)
    metrics_public: bool = False
    url: str | None = None


#: Events a template can be given for (see :mod:`orgsync.notify`).
NOTIFY_EVENTS = ("welcome", "manager_note", "transfer_note", "transfer_welcome", "leaver_note",
                 "leave_note")
#: Who hears of a transfer (``notify.transfer_to``): the manager after it, the person moved.
TRANSFER_RECEIVERS = ("manager", "employee")


@dataclass(frozen=True)
class NotifyConfig:
    """Onboarding messages and run reports (see :mod:`orgsync.notify`); off unless configured.

    ``templates`` maps an event of :data:`NOTIFY_EVENTS` to its checked template
    (built-in defaults for the ones not given); ``links`` are extra template
    variables (``{guide}``). Welcomes the bot cannot deliver yet are retried on
    later runs for ``retry_days``. Reports and alerts go to ``admin_chat_id``; a
    copy of each manager note and of each leaver note goes to ``hr_chat_id``.

    Off unless switched on: ``transfer_notes`` (someone's primary department
    changed: a ``transfer_note`` to their manager and/or a ``transfer_welcome``
    to them, as ``transfer_to`` says) and ``leaver_notes`` (someone was frozen,
    or deleted with ``sync.leaver_action: delete``: a ``leaver_note`` to their
    manager, never to the leaver) and ``leave_note_days`` (0: off; N: a leave mark of N
    calendar days or more, once created, owes a ``leave_note`` to the person's manager, once
    per leave).
    """

    enabled: bool = False
    language: Literal["zh", "en", "both"] = "both"
    retry_days: int = 7
    admin_chat_id: str | None = None
    hr_chat_id: str | None = None
    transfer_notes: bool = False
    transfer_to: tuple[Literal["manager", "employee"], ...] = ("manager",)
    leaver_notes: bool = False
    leave_note_days: int = 0
    links: Mapping[str, str] = field(default_factory=dict)
    templates: Mapping[str, Template] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """A whole, validated config. ``path`` is ``None`` when it did not come from a file."""

    path: Path | None
    feishu: FeishuSettings
    source: SourceConfig
    ledger: LedgerConfig
    sync: SyncConfig
    logging: LoggingConfig
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    takeover: TakeoverConfig = field(default_factory=TakeoverConfig)
    scope: ScopeConfig = field(default_factory=ScopeConfig)
    groups: GroupsConfig = field(default_factory=GroupsConfig)
    leave: LeaveConfig = field(default_factory=LeaveConfig)


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML config at ``path``.

    ``env`` replaces ``os.environ`` for ``${VAR}`` interpolation (tests).
    Raises :class:`ConfigError` for anything unusable.
    """
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "config file not found", file=file,
            remedy="pass the right path, or start from config/example.yaml",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", file=file) from None
    try:
        data = _load_yaml(text)
    except _AliasRefused as exc:
        raise ConfigError(_yaml_problem(exc, "a YAML alias"), file=file,
                          remedy="write the value out where the alias stands") from None
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(exc), file=file, remedy="fix the YAML syntax") from None
    return _build(data, file=file, base_dir=p.resolve().parent, path=p, env=env)


def config_from_dict(
    data: Mapping[str, Any],
    *,
    file: str = "<config>",
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate an already-parsed config; relative paths resolve against ``base_dir`` (or cwd)."""
    return _build(data, file=file, base_dir=(base_dir or Path.cwd()).resolve(), path=None, env=env)


# --- sections ------------------------------------------------------------------------------


def _parse_feishu(s: Section) -> FeishuSettings:
    base_url = s.string("base_url", FeishuSettings.base_url).rstrip("/")
    if not re.match(r"https?://[^/\s]+", base_url):
        raise s.error("base_url", f"'{mask_url(base_url)}' is not an http(s) URL",
                      f"e.g. {FEISHU_BASE_URL}, {LARK_BASE_URL}")
    return FeishuSettings(
        base_url=base_url,
        app_id=s.secret("app_id"),
        app_secret=s.secret("app_secret"),
        timeout=s.number("timeout", FeishuSettings.timeout, minimum=0, strict_minimum=True),
        max_retries=s.number("max_retries", FeishuSettings.max_retries, minimum=0,
                             maximum=100),
        rate_limits=s.boolean("rate_limits", FeishuSettings.rate_limits),
        rate_scale=s.number("rate_scale", FeishuSettings.rate_scale, minimum=0,
                            strict_minimum=True),
    )


def _parse_source(s: Section) -> SourceConfig:
    type_name = s.string("type")
    options = s.rest()
    return SourceConfig(type=type_name, options=MappingProxyType(options),
                        base_dir=s.base_dir, file=s.file)


def _parse_ledger(s: Section) -> LedgerConfig:
    url = s.string("url", LedgerConfig.url)
    if "://" not in url:
        raise s.error("url", f"'{mask_url(url)}' is not a database URL",
                      "e.g. sqlite:///orgsync.db or postgresql+psycopg://user@host/db")
    if userinfo_is_ambiguous(url):
        raise s.error("url", f"'{mask_url(url)}': the password holds a reserved character, "
                      "so part of it would be read as the host name", PERCENT_ENCODE)
    return LedgerConfig(url=_resolve_sqlite(url, s.base_dir))


def _parse_sync(s: Section) -> SyncConfig:
    action = s.choice("leaver_action", SyncConfig.leaver_action, ("delete", "freeze"))
    return SyncConfig(
        leaver_action=cast(Literal["delete", "freeze"], action),
        concurrency=s.number("concurrency", SyncConfig.concurrency, minimum=1, maximum=256),
        adopt_existing=s.boolean("adopt_existing", SyncConfig.adopt_existing),
        department_group_chat=s.boolean("department_group_chat",
                                        SyncConfig.department_group_chat),
        ignore_key_case=s.boolean("ignore_key_case", SyncConfig.ignore_key_case),
        ignore_key_leading_zeros=s.boolean("ignore_key_leading_zeros",
                                           SyncConfig.ignore_key_leading_zeros),
        rename_min_overlap=s.number("rename_min_overlap", SyncConfig.rename_min_overlap,
                                    minimum=0.5, maximum=1.0),
        stage=parse_stage(s.section("stage")),
        fields=s.choices("fields", (), PROFILE_NAMES, what="profile fields")
        if s.given("fields") else None,
        create_only=_create_only(s),
        create_job_levels=s.boolean("create_job_levels", SyncConfig.create_job_levels),
        create_job_families=s.boolean("create_job_families", SyncConfig.create_job_families),
        create_employee_types=s.boolean("create_employee_types",
                                        SyncConfig.create_employee_types),
    )


def _create_only(s: Section) -> tuple[str, ...]:
    """``sync.create_only``: profile fields, each one orgsync manages (``sync.fields``)."""
    found = s.choices("create_only", (), PROFILE_NAMES, what="profile fields")
    managed = s.raw("fields")
    if isinstance(managed, str):
        managed = [managed]
    for i, name in enumerate(found):
        if isinstance(managed, list) and name not in managed:
            raise s.error(f"create_only[{i}]", f"{name} is not in sync.fields",
                          f"add {name} to sync.fields, or remove it here")
    return found


def _parse_logging(s: Section) -> LoggingConfig:
    fmt = s.choice("format", LoggingConfig.format, ("auto", "console", "json"))
    return LoggingConfig(
        format=cast(Literal["auto", "console", "json"], fmt),
        level=s.choice("level", LoggingConfig.level,
                       ("debug", "info", "warning", "error", "critical")),
        mask_pii=s.boolean("mask_pii", LoggingConfig.mask_pii),
    )


_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MIN_TOKEN_LENGTH = 16


def cron_fields(expr: str) -> dict[str, str]:
    """APScheduler ``CronTrigger`` keyword arguments for a crontab expression.

    5 fields (minute hour day month weekday) or 6 (second first). Weekday
    numbers follow crontab (0 and 7 are Sunday), not APScheduler 3's own
    numbering (0 is Monday), so they are turned into names. Raises
    ``ValueError`` for the wrong number of fields.
    """
    values = expr.split()
    if len(values) not in (5, 6):
        raise ValueError(f"expected 5 or 6 fields, got {len(values)}")
    names = ("second", *_CRON_FIELDS) if len(values) == 6 else _CRON_FIELDS
    fields = dict(zip(names, values, strict=True))
    fields["day_of_week"] = _crontab_weekdays(fields["day_of_week"])
    return fields


def _crontab_weekdays(field_: str) -> str:
    names: list[str] = []
    days: set[str] = set()
    for part in field_.split(","):
        m = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", part)
        if m is None or part == "*":
            names.append(part)
            continue
        star = m.group(1) == "*"
        start = 0 if star else int(m.group(1))
        end = 6 if star else int(m.group(2)) if m.group(2) is not None else \
            (7 if m.group(3) else start)
        step = int(m.group(3) or 1)
        if end > 7 or start > end or step < 1 or (star and m.group(2) is not None):
            raise ValueError(f"bad weekday field '{part}'")
        days.update(_WEEKDAYS[d % 7] for d in range(start, end + 1, step))
    return ",".join([*names, *(d for d in _WEEKDAYS if d in days)])


def _cron(s: Section, key: str, default: str | None) -> str | None:
    if not s.given(key):
        return default
    value = s.raw(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise s.error(key, f"expected a cron expression, got {describe(value)}",
                      "quote it, e.g. \"0 3 * * *\"")
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

    try:
        CronTrigger(**cron_fields(value), timezone="UTC")
    except ValueError as exc:
        raise s.error(key, f"'{value.strip()}' is not a valid cron expression: {exc}",
                      "minute hour day month weekday, e.g. \"*/15 * * * *\"") from None
    return value.strip()


def _parse_daemon(s: Section) -> DaemonConfig:
    interval = s.duration("interval", None, minimum=1.0)
    cron = _cron(s, "cron", None)
    if interval is not None and cron is not None:
        raise s.error("cron", "both 'interval' and 'cron' are set",
                      "keep one of them for incremental runs")
    if interval is None and cron is None:
        interval = DaemonConfig.interval
    full_interval = s.duration("full_resync_interval", None, minimum=1.0)
    full_cron = _cron(s, "full_resync_cron",
                      None if full_interval is not None else DaemonConfig.full_resync_cron)
    if full_interval is not None and full_cron is not None:
        raise s.error("full_resync_cron", "both 'full_resync_cron' and 'full_resync_interval' "
                      "are set", "keep one of them for full resyncs")
    tz = s.string("timezone", None)
    if tz is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise s.error("timezone", f"unknown time zone '{tz}'",
                          "use an IANA name, e.g. Asia/Shanghai or UTC") from None
    return DaemonConfig(
        interval=interval, cron=cron, full_resync_cron=full_cron,
        full_resync_interval=full_interval,
        jitter=s.duration("jitter", DaemonConfig.jitter),
        misfire_grace=s.duration("misfire_grace", DaemonConfig.misfire_grace, minimum=1.0),
        run_on_start=s.boolean("run_on_start", DaemonConfig.run_on_start),
        shutdown_grace=s.duration("shutdown_grace", DaemonConfig.shutdown_grace),
        ready_max_age=s.duration("ready_max_age", None, minimum=1.0),
        leader_poll=s.duration("leader_poll", DaemonConfig.leader_poll, minimum=0.05),
        lock_name=s.string("lock_name", DaemonConfig.lock_name),
        timezone=tz,
    )


def _parse_admin(s: Section) -> AdminConfig:
    token = s.secret("token", required=False)
    if token is not None and len(token) < _MIN_TOKEN_LENGTH:
        raise s.error("token", f"the admin token is shorter than {_MIN_TOKEN_LENGTH} "
                      "characters", "generate one, e.g. openssl rand -hex 32")
    url = s.string("url", None)
    if url is not None and not re.match(r"https?://[^/\s]+", url):
        raise s.error("url", f"'{url}' is not an http(s) URL", "e.g. http://orgsync:8791")
    return AdminConfig(
        bind=s.string("bind", AdminConfig.bind),
        port=s.number("port", AdminConfig.port, minimum=0, maximum=65535),
        token=token,
        metrics_public=s.boolean("metrics_public", AdminConfig.metrics_public),
        url=url.rstrip("/") if url else None,
    )


def _parse_safety(s: Section) -> SafetyConfig:
    d = SafetyConfig()
    return SafetyConfig(
        max_user_removals=s.number("max_user_removals", d.max_user_removals, minimum=0),
        max_user_removal_fraction=s.number("max_user_removal_fraction",
                                           d.max_user_removal_fraction, minimum=0.0, maximum=1.0),
        max_department_deletes=s.number("max_department_deletes", d.max_department_deletes,
                                        minimum=0),
        max_department_delete_fraction=s.number("max_department_delete_fraction",
                                                d.max_department_delete_fraction,
                                                minimum=0.0, maximum=1.0),
        min_managed=s.number("min_managed", d.min_managed, minimum=0),
        max_source_shrink=s.number("max_source_shrink", d.max_source_shrink,
                                   minimum=0.0, maximum=1.0),
        churn_factor=s.number("churn_factor", d.churn_factor, minimum=0.0),
        churn_window=s.number("churn_window", d.churn_window, minimum=1, maximum=1000),
        churn_floor=s.number("churn_floor", d.churn_floor, minimum=0),
        max_identity_change_fraction=s.number("max_identity_change_fraction",
                                              d.max_identity_change_fraction,
                                              minimum=0.0, maximum=1.0),
        max_user_release_fraction=s.number("max_user_release_fraction",
                                           d.max_user_release_fraction, minimum=0.0,
                                           maximum=1.0),
        protected_users=s.strings("protected_users"),
        protected_departments=s.strings("protected_departments"),
        takeover_requires_approval=s.boolean("takeover_requires_approval",
                                             d.takeover_requires_approval),
    )


def _parse_takeover(s: Section) -> TakeoverConfig:
    d = TakeoverConfig()
    unmatched = s.choice("unmatched_users", d.unmatched_users, ("ignore", "report"))
    return TakeoverConfig(
        rekey_departments=s.boolean("rekey_departments", d.rekey_departments),
        rekey_users=s.boolean("rekey_users", d.rekey_users),
        unmatched_users=cast(Literal["ignore", "report"], unmatched),
    )


def _parse_lifecycle(s: Section) -> LifecycleConfig:
    d = LifecycleConfig()
    handover = s.raw("handover_to")
    if handover is not None and not isinstance(handover, str):
        raise s.error("handover_to", f"expected an employee id, got {describe(handover)}",
                      "write e.g. handover_to: 'E0001' (quote ids YAML reads as numbers)")
    leavers = s.raw("leavers_department")
    if leavers is not None and not isinstance(leavers, str):
        raise s.error("leavers_department", f"expected a department id, got {describe(leavers)}",
                      "write e.g. leavers_department: 'D900' (quote ids YAML reads as numbers)")
    return LifecycleConfig(
        grace_days=s.number("grace_days", d.grace_days, minimum=0, maximum=3650),
        handover_to=handover if isinstance(handover, str) and handover else None,
        leavers_department=leavers or None,
        resurrect_days=s.number("resurrect_days", d.resurrect_days, minimum=0, maximum=30),
        prehire_days=s.number("prehire_days", d.prehire_days, minimum=0, maximum=365),
    )


def _parse_notify(s: Section) -> NotifyConfig:
    enabled = s.boolean("enabled", bool(s.data))
    links_raw = s.raw("links")
    links: dict[str, str] = {}
    if links_raw is not None:
        if not isinstance(links_raw, Mapping):
            raise s.error("links", f"expected a mapping, got {describe(links_raw)}",
                          "write e.g. links: {guide: 'https://…'}")
        for name, url in links_raw.items():
            if not isinstance(name, str) or not name.isidentifier() or \
                    name in ALL_VARIABLES:
                raise s.error(f"links.{name}", "is not a usable variable name",
                              "use a plain name that is not a built-in variable, e.g. guide")
            if not isinstance(url, str) or not url.strip():
                raise s.error(f"links.{name}", f"expected a string, got {describe(url)}")
            links[name] = url.strip()
    templates_raw = s.raw("templates")
    templates: dict[str, Template] = {}
    if templates_raw is not None:
        if not isinstance(templates_raw, Mapping):
            raise s.error("templates", f"expected a mapping, got {describe(templates_raw)}",
                          f"write one entry per event: {', '.join(NOTIFY_EVENTS)}")
        for event, raw in templates_raw.items():
            if event not in NOTIFY_EVENTS:
                raise s.error(f"templates.{event}", "unknown event",
                              did_you_mean(str(event), NOTIFY_EVENTS)
                              or f"known events: {', '.join(NOTIFY_EVENTS)}")
            try:
                templates[event] = parse_template(raw, event_variables(event,
                                                                      frozenset(links)))
            except TemplateError as exc:
                where = f"templates.{event}" + (f".{exc.path}" if exc.path else "")
                raise s.error(where, exc.message,
                              "fix the template; variables are written {name}") from None
    language = s.choice("language", NotifyConfig.language, ("zh", "en", "both"))
    return NotifyConfig(
        enabled=enabled,
        language=cast(Literal["zh", "en", "both"], language),
        retry_days=s.number("retry_days", NotifyConfig.retry_days, minimum=0, maximum=365),
        admin_chat_id=s.string("admin_chat_id", None),
        hr_chat_id=s.string("hr_chat_id", None),
        transfer_notes=s.boolean("transfer_notes", NotifyConfig.transfer_notes),
        transfer_to=cast(tuple[Literal["manager", "employee"], ...],
                         s.choices("transfer_to", NotifyConfig.transfer_to, TRANSFER_RECEIVERS,
                                   what="receivers")),
        leaver_notes=s.boolean("leaver_notes", NotifyConfig.leaver_notes),
        leave_note_days=s.number("leave_note_days", NotifyConfig.leave_note_days, minimum=0,
                                 maximum=366),
        links=MappingProxyType(links),
        templates=MappingProxyType(templates),
    )


# section name -> (parser, required)
_SECTIONS: dict[str, tuple[Callable[[Section], Any], bool]] = {
    "feishu": (_parse_feishu, True),
    "source": (_parse_source, True),
    "ledger": (_parse_ledger, False),
    "sync": (_parse_sync, False),
    "logging": (_parse_logging, False),
    "safety": (_parse_safety, False),
    "lifecycle": (_parse_lifecycle, False),
    "daemon": (_parse_daemon, False),
    "admin": (_parse_admin, False),
    "notify": (_parse_notify, False),
    "takeover": (_parse_takeover, False),
    "scope": (parse_scope, False),
    "groups": (parse_groups, False),
    "leave": (parse_leave, False),
}


def _build(data: Any, *, file: str, base_dir: Path, path: Path | None,
           env: Mapping[str, str] | None) -> Config:
    if data is None:
        raise ConfigError("the config is empty", file=file,
                          remedy="start from config/example.yaml")
    top = Section(data, name="", file=file, base_dir=base_dir)
    version = top.raw("version")
    if version is None:
        raise top.error("version", "is missing", f"add 'version: {CONFIG_VERSION}' at the top")
    if version != CONFIG_VERSION or isinstance(version, bool):
        raise top.error("version", f"unsupported config version {version!r}",
                        f"this orgsync reads version {CONFIG_VERSION}")
    values = interpolate(dict(data), "", file, os.environ if env is None else env)
    parsed: dict[str, Any] = {}
    for name, (parser, required) in _SECTIONS.items():
        raw = top.raw(name)
        if raw is None and required:
            raise top.error(name, "section is missing", f"add a '{name}:' section")
        section = Section(None if raw is None else values[name], name=name, file=file,
                           base_dir=base_dir)
        parsed[name] = parser(section)
        section.done()
    top.done()
    return Config(path=path, **parsed)


# --- helpers -------------------------------------------------------------------------------

def _resolve_sqlite(url: str, base_dir: Path) -> str:
    """``sqlite:///rel.db`` → ``sqlite:////abs/dir/rel.db``; other URLs unchanged."""
    m = re.fullmatch(r"(sqlite(?:\+\w+)?):///(.*)", url, re.DOTALL)
    if m is None:
        return url
    rest = m.group(2)
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith("/") or path.startswith("file:"):
        return url
    return f"{m.group(1)}:///{(base_dir / path).resolve()}{sep}{query}"




def _yaml_problem(exc: yaml.YAMLError, what: str = "invalid YAML") -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{what} at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"{what}: {problem}"


class _AliasRefused(yaml.composer.ComposerError):
    """The config uses a YAML alias (``*name``)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one) and
    aliases: a few hundred bytes of nested aliases expand to 10⁹ values once the
    config is interpolated, so none is composed."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _AliasRefused(None, None, f"orgsync does not expand aliases (*{event.anchor})",
                                event.start_mark)
        return super().compose_node(parent, index)


def _mapping_without_duplicates(loader: yaml.SafeLoader | yaml.CSafeLoader,
                                node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, str | int | float | bool):
            continue  # unhashable keys are PyYAML's to reject
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"duplicate key '{key}'", key_node.start_mark,
            )
        seen.add(key)
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _load_yaml(text: str) -> Any:
    """The YAML document ``text``, as :class:`_StrictLoader` loads it (raising its errors).

    libyaml's parser (PyYAML's ``CSafeLoader``, when built with it) reads first: a
    200-group ``groups:`` section parses several times faster. Any error, and any alias
    (a node reached twice in what libyaml composed), is left to :class:`_StrictLoader`, so
    every message — line, column, the alias refused before it expands — stays its own."""
    if _FastLoader is not None:
        loader = _FastLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if not _reached_twice(node):
                return loader.construct_document(node)
        except yaml.YAMLError:
            pass
        finally:
            loader.dispose()
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def _reached_twice(root: yaml.Node) -> bool:
    """Whether a node of the graph under ``root`` is reached twice: an alias (libyaml
    composes ``*a`` as the anchored node itself, which nothing has expanded yet)."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
    return False


_FastLoader: type[yaml.CSafeLoader] | None = None
if getattr(yaml, "__with_libyaml__", False):
    class _StrictCLoader(yaml.CSafeLoader):
        """libyaml's parser with :class:`_StrictLoader`'s duplicate-key check."""

    _StrictCLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
    _FastLoader = _StrictCLoader
