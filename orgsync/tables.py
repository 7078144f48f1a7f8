"""The ledger's tables (SQLModel): runs, the journal, the mirror, held plans, messages, meta,
leave marks.

Their own module so that both :mod:`orgsync.ledger` (which reads and writes them) and
:mod:`orgsync.migrations` (which compares them with the schema) import them without
importing each other. A change here needs a migration (see :mod:`orgsync.migrations`).

A plan process never imports this module (nor SQLModel): the statements a plan runs are
plain SQL naming these tables' columns (in :mod:`orgsync.ledger` and
:mod:`orgsync.group_mirror`), so renaming a column means changing them too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel


class RunRow(SQLModel, table=True):
    """One run of orgsync (plan, apply, resync …)."""

    __tablename__ = "runs"
    id: str = Field(primary_key=True)
    mode: str
    status: str = "running"
    plan_id: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    summary: str = "{}"
    error: str | None = None


class JournalRow(SQLModel, table=True):
    """One Feishu write: journaled before the call, finished after it."""

    __tablename__ = "journal"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    plan_id: str
    op_id: str
    kind: str
    target_key: str = Field(index=True)
    feishu_id: str
    client_token: str
    status: str = "started"
    code: int | None = None
    message: str | None = None
    #: Why the plan made this write, with the fields it changes (``orgsync explain``).
    reason: str | None = None
    started_at: datetime
    finished_at: datetime | None = None


class MirrorDepartmentRow(SQLModel, table=True):
    """A managed department as last applied."""

    __tablename__ = "mirror_departments"
    key: str = Field(primary_key=True)
    feishu_id: str
    open_id: str | None = None
    fields: str
    updated_at: datetime


class MirrorUserRow(SQLModel, table=True):
    """A managed user as last applied, with lifecycle dates."""

    __tablename__ = "mirror_users"
    key: str = Field(primary_key=True)
    feishu_id: str
    open_id: str | None = None
    fields: str
    #: :meth:`Employee.fingerprint` of ``fields`` (``None``: unknown, the row is decoded).
    fingerprint: int | None = Field(default=None, sa_type=BigInteger)
    lifecycle: str = "active"
    frozen_at: datetime | None = None
    deleted_at: datetime | None = None
    updated_at: datetime


class HeldPlanRow(SQLModel, table=True):
    """A plan held by a safety threshold, until approved by its id."""

    __tablename__ = "held_plans"
    plan_id: str = Field(primary_key=True)
    checksum: str
    reasons: str
    summary: str
    status: str = "held"  # held | approved | applied | discarded
    created_at: datetime
    approved_at: datetime | None = None
    #: Who approved it (``orgsync approve --by``, else the OS user), or discarded it.
    approved_by: str | None = None


class NotificationRow(SQLModel, table=True):
    """One message orgsync owes (see :mod:`orgsync.notify`), keyed by its event.

    ``event`` is ``<kind>:<target>`` (``welcome:E0001``, ``report:<run id>``), or
    ``<kind>@<qualifier>…:<target>`` for an event that can happen to one target
    more than once (``leaver_note@<run id>:E0001``; see :func:`event_kind_target`);
    ``uuid`` is Feishu's dedup key for it. ``status``: ``pending`` (not sent yet:
    not due, or the receiver cannot be reached yet), ``sending`` (an attempt began
    and its answer was never recorded: a crash, or in flight), ``sent``, ``expired``
    (still unreachable after the retry window), ``failed`` (Feishu refused it for
    good), ``cancelled`` (nobody left to send it to) or ``unknown`` (an attempt
    never confirmed, too old to be re-sent under its uuid: maybe delivered, maybe
    not; see :mod:`orgsync.notify`). ``attempts`` counts sends begun;
    ``last_tried_at`` is when the latest began — while ``sending``, the first
    attempt still unanswered, which Feishu's dedup window counts from.
    """

    __tablename__ = "notifications"
    event: str = Field(primary_key=True)
    kind: str = Field(index=True)
    target: str
    uuid: str
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    created_at: datetime
    last_tried_at: datetime | None = None
    sent_at: datetime | None = None
    code: int | None = None
    message: str | None = None


class MetaRow(SQLModel, table=True):
    """Small key/value facts: schema version, last good snapshot size."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class MirrorGroupRow(SQLModel, table=True):
    """A managed user group as last applied (:mod:`orgsync.groups`)."""

    __tablename__ = "mirror_groups"
    key: str = Field(primary_key=True)
    feishu_id: str
    name: str
    digest: str = ""
    """:func:`orgsync.group_mirror.member_digest` of the group's members."""
    updated_at: datetime


class MirrorGroupMemberRow(SQLModel, table=True):
    """One managed person in one managed group, as last applied."""

    __tablename__ = "mirror_group_members"
    # A plan reads the memberships of the people it changes: by person, from the index alone.
    __table_args__ = (Index("ix_mirror_group_members_user_key", "user_key", "group_key"),)
    group_key: str = Field(primary_key=True)
    user_key: str = Field(primary_key=True)
class LeaveMarkRow(SQLModel, table=True):
    """One time-off event orgsync keeps in Feishu for a leave (see :mod:`orgsync.leave_sync`).

    Feishu cannot list or read time-off events, so this row is the only record of the
    event's id. ``status``: ``creating`` (journaled before the create; the id is not known
    yet — a crash here may leave an event orgsync cannot name), ``active`` (created, id
    known), ``deleting`` (journaled before the delete). ``key`` is the leave id, or the
    ``+``-joined ids of overlapping leaves merged into one mark.
    """

    __tablename__ = "leave_marks"
    key: str = Field(primary_key=True)
    employee_id: str = Field(index=True)
    user_id: str
    event_id: str | None = None
    status: str = "creating"
    fingerprint: str
    start_time: str
    end_time: str
    timezone: str
    ends_at: datetime
    run_id: str
    updated_at: datetime
