"""What Feishu holds for the entities orgsync manages (the "current" side of a diff).

Incremental runs build it from the ledger's mirror of what orgsync last applied;
a full resync builds it from a live read of Feishu. Records are canonical
(:mod:`orgsync.model`), so the diff compares like with like.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from orgsync.model import Department, Employee


class Lifecycle(enum.StrEnum):
    """Where a managed user is in orgsync's leaver lifecycle."""

    ACTIVE = "active"
    FROZEN = "frozen"
    DELETED = "deleted"
    #: Out of scope (orgsync.scope): no longer managed, left in Feishu as it is; the row
    #: stays so that coming back into scope re-adopts the same account.
    RELEASED = "released"


@dataclass(slots=True)
class MirrorDepartment:
    """A managed department: its canonical record as applied, and its Feishu ids."""

    record: Department
    feishu_id: str
    open_id: str | None = None
    #: Fields of ``record`` a live read could not see (the app lacks their read
    #: permission): unknown, never empty, so never a change.
    unknown: frozenset[str] = frozenset()


@dataclass(slots=True)
class MirrorUser:
    """A managed user: canonical record as applied, Feishu ids and lifecycle dates."""

    record: Employee
    feishu_id: str
    open_id: str | None = None
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    frozen_at: datetime | None = None
    deleted_at: datetime | None = None
    #: As :attr:`MirrorDepartment.unknown`; ``"lifecycle"`` and ``"tenant_admin"`` when
    #: Feishu left out ``status`` / ``is_tenant_manager``.
    unknown: frozenset[str] = frozenset()


@dataclass(slots=True)
class DirectoryState:
    """Managed departments and users keyed by source key."""

    departments: dict[str, MirrorDepartment] = field(default_factory=dict)
    users: dict[str, MirrorUser] = field(default_factory=dict)
    #: Managed users Feishu says are tenant admins (learned by a full read): never touched.
    tenant_admins: set[str] = field(default_factory=set)
    #: Active users whose record is the very object of the records the state was loaded
    #: against (``Ledger.load_state(known=...)``): Feishu holds exactly those values.
    unchanged: set[str] = field(default_factory=set)
    #: Users released by the scope rules (not managed: never in ``users``), by key.
    released: dict[str, MirrorUser] = field(default_factory=dict)

    def live_users(self) -> dict[str, MirrorUser]:
        """Users that still exist in Feishu (active or frozen)."""
        return {k: u for k, u in self.users.items() if u.lifecycle is not Lifecycle.DELETED}

    def live_count(self) -> int:
        """How many users still exist in Feishu (without building :meth:`live_users`)."""
        deleted = Lifecycle.DELETED
        return sum(1 for u in self.users.values() if u.lifecycle is not deleted)
