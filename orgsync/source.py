"""What a source read produced: a snapshot plus the problems found on the way.

An :class:`Issue` is one problem with one value of one record. Its severity says
what happened to the record:

* ``error`` — the record is held back. Its key (when known) goes into
  :attr:`SourceData.held_departments` / :attr:`SourceData.held_employees`, and
  the diff engine leaves that entity exactly as it is in Feishu: no create, no
  update and, above all, no delete. A bad row must never look like a leaver.
* ``warning`` — the offending field was cleared and the record proceeds; but a
  link to someone held back (``kept``) stays as far as Feishu allows (see
  :attr:`SourceData.held_managers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from orgsync.identity import Identity
from orgsync.model import Snapshot

if TYPE_CHECKING:
    from orgsync.custom_attrs import Attribute

EntityKind = Literal["department", "employee", "group"]
Severity = Literal["error", "warning"]

_ENTITY_RANK = {"department": 0, "employee": 1, "group": 2}
_SEVERITY_RANK = {"error": 0, "warning": 1}


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with one record.

    ``key`` is the record key when known (``None`` e.g. for a row with an empty
    id), ``field`` the canonical field name, ``reason`` a human sentence naming
    the value problem, and ``where`` the source position (``"employees.csv:17"``)
    when the connector knows it.
    """

    entity: EntityKind
    key: str | None
    field: str | None
    reason: str
    severity: Severity
    where: str | None = None
    kept: bool = False  # a warning about a link to someone held back: the link is kept
    later: bool = False  # a warning about a pre-hire: their account is created later

    @property
    def held(self) -> bool:
        """True when the record was held back (an error), False when it proceeds."""
        return self.severity == "error"

    def sort_key(self) -> tuple[int, str, int, str, str, str]:
        """Departments first, then by record key, errors before warnings, field, reason."""
        return (
            _ENTITY_RANK[self.entity],
            self.key or "",
            _SEVERITY_RANK[self.severity],
            self.field or "",
            self.reason,
            self.where or "",
        )

    def __str__(self) -> str:
        """``employees.csv:17: employee E0042: mobile: '12345' is not valid (held back)``."""
        subject = f"{self.entity} {self.key}" if self.key is not None else self.entity
        parts = [p for p in (self.where, subject, self.field) if p]
        outcome = ("held back" if self.held else "link kept" if self.kept
                   else "not created yet" if self.later else "cleared")
        return f"{': '.join(parts)}: {self.reason} ({outcome})"


@dataclass(slots=True)
class SourceData:
    """A connector's result: the snapshot, the issues, and the keys held back.

    Held keys name entities the source does have but whose records are unusable;
    they are never in ``snapshot``. The diff engine treats them as "leave as is".
    ``department_rows`` / ``employee_rows`` are optional: connectors that know row
    positions fill them.
    """

    snapshot: Snapshot
    issues: list[Issue] = field(default_factory=list)
    held_departments: set[str] = field(default_factory=set)
    held_employees: set[str] = field(default_factory=set)
    # Where each record came from, when the source knows (key → "employees.csv:17"), so
    # that issues found later (validation) can point at the row too.
    department_rows: dict[str, str] = field(default_factory=dict)
    employee_rows: dict[str, str] = field(default_factory=dict)
    # Links validation took out of a record because they point at someone held back
    # (employee key → its manager's key, department key → its leader's key). The
    # diff keeps them as far as Feishu allows: a held person who exists there stays
    # linked; otherwise the link is left as it is (see orgsync.diff).
    held_managers: dict[str, str] = field(default_factory=dict)
    held_leaders: dict[str, str] = field(default_factory=dict)
    # The identifying values (id, email, mobile) of employee rows the connector held
    # back, which are not in ``snapshot``: such a row still accounts for the managed
    # person it matches, who is then no leaver (see orgsync.identity.resolve).
    held_rows: list[Identity] = field(default_factory=list)
    # Records the ``scope`` rules took out (key → why, naming the rule; see
    # orgsync.scope): held like the others, and a managed person among them is released.
    out_of_scope_employees: dict[str, str] = field(default_factory=dict)
    out_of_scope_departments: dict[str, str] = field(default_factory=dict)
    out_of_scope_active: int = 0  # active people among them

    def read_active(self) -> int:
        """Active people the source returned, in scope or not: what the shrink guard
        compares (a scope change is the release threshold's, see orgsync.safety)."""
        return self.snapshot.active_count() + self.out_of_scope_active
    # The profile fields (orgsync.feishu.schema.PROFILE) the source provides: a column or
    # a mapping rule, whether or not a row has a value. Only these are managed: written,
    # compared and cleared; the others stay as whoever set them in Feishu left them.
    profile_fields: frozenset[str] = frozenset()
    # The tenant's job levels and families the records name (orgsync.catalogs): catalog →
    # name → Feishu id, for the bodies of the plan.
    catalogs: dict[str, dict[str, str]] = field(default_factory=dict)
    # Source groups (LDAP group objects, SCIM /Groups) by name: the keys of the people in
    # each, nested groups flattened (``groups.define.*.members: {source_group: …}``).
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    # The tenant's custom attributes by name (orgsync.custom_attrs), for the plan's bodies.
    custom_attrs: dict[str, Attribute] = field(default_factory=dict)

    def where(self, entity: EntityKind, key: str | None) -> str | None:
        """The source position of a record, or ``None``."""
        if key is None:
            return None
        rows = self.department_rows if entity == "department" else self.employee_rows
        return rows.get(key)

    def errors(self) -> list[Issue]:
        """The issues that held a record back."""
        return [i for i in self.issues if i.held]

    def warnings(self) -> list[Issue]:
        """The issues that only cleared a field."""
        return [i for i in self.issues if not i.held]
