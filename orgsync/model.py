"""The canonical org model every connector produces and the diff engine consumes.

Records are frozen and keyed by stable source identity — the HR department code
and the HR employee id — never by a name or a DN. Keys become Feishu's custom
``department_id`` / ``user_id`` (see :mod:`orgsync.identity`).

A :class:`Snapshot` is a plain container; :func:`orgsync.validate.validate` turns
a raw snapshot into a clean one plus a report of held-back records.
"""

from __future__ import annotations

import enum
import marshal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from hashlib import blake2b
from types import MappingProxyType
from typing import Any, Final

NO_PROFILE: Final[Mapping[str, Any]] = MappingProxyType({})
"""The shared empty :attr:`Employee.profile` (most records of most sources)."""

CUSTOM_ATTRS: Final = "custom_attrs"
"""The profile field holding the custom attributes (:mod:`orgsync.custom_attrs`): a mapping
of attribute name → value, the one profile value that is a mapping."""


class EmployeeType(enum.IntEnum):
    """Feishu's built-in employee types (``employee_type`` on the user object)."""

    REGULAR = 1
    INTERN = 2
    OUTSOURCED = 3
    CONTRACTOR = 4
    CONSULTANT = 5


class Status(enum.StrEnum):
    """Employment status in the source. Absent employees are leavers too."""

    ACTIVE = "active"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True, kw_only=True)
class Department:
    """One department, built by keyword.

    ``parent_key`` is ``None`` for a top-level department (Feishu parent ``"0"``).
    ``order`` is the sort position among siblings, when the source has one.
    ``leader_key`` is the main leader; ``deputy_leader_keys`` the deputies (Feishu has
    deputies only beside a main leader) and ``hrbp_keys`` the department's HRBPs, as
    employee keys in the source's order.
    """

    key: str
    name: str
    parent_key: str | None = None
    leader_key: str | None = None
    order: int | None = None
    en_name: str | None = None
    deputy_leader_keys: tuple[str, ...] = ()
    hrbp_keys: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        """The comparable fields (everything but the key), as plain JSON-able values, in
        the order they are declared (spelled out: ``asdict`` costs ten times as much)."""
        return {"name": self.name, "parent_key": self.parent_key, "leader_key": self.leader_key,
                "order": self.order, "en_name": self.en_name,
                "deputy_leader_keys": list(self.deputy_leader_keys),
                "hrbp_keys": list(self.hrbp_keys)}


@dataclass(slots=True, kw_only=True)
class Employee:
    """One person, built by keyword (nine ``str | None`` fields in a row could swap silently).

    ``department_keys`` holds the primary department first. ``manager_key`` is the
    direct manager's employee key. ``join_date`` is the start date, when known.
    ``profile`` holds the optional profile fields the source gives a value for (work
    station, gender, …: :data:`orgsync.feishu.schema.PROFILE` lists them, one row each),
    by canonical name, as plain JSON-able values; a field without a value is absent.

    Treat it as immutable (derive changed copies with :func:`dataclasses.replace`):
    records are shared between the source snapshot and the mirror. It is not a
    frozen dataclass only because a frozen ``__init__`` costs five times as
    much, and plans build 100k of these (``orgsync.bench`` measures it).
    """

    key: str
    name: str
    department_keys: tuple[str, ...]
    en_name: str | None = None
    email: str | None = None
    mobile: str | None = None
    manager_key: str | None = None
    job_title: str | None = None
    employee_no: str | None = None
    employee_type: EmployeeType = EmployeeType.REGULAR
    join_date: date | None = None
    city: str | None = None
    status: Status = Status.ACTIVE
    profile: Mapping[str, Any] = field(default_factory=lambda: NO_PROFILE)

    def fields(self) -> dict[str, Any]:
        """The comparable fields (everything but the key), as plain JSON-able values;
        the profile's are flattened in (their names never clash with the others)."""
        return {
            **self.profile,
            "name": self.name,
            "department_keys": list(self.department_keys),
            "en_name": self.en_name,
            "email": self.email,
            "mobile": self.mobile,
            "manager_key": self.manager_key,
            "job_title": self.job_title,
            "employee_no": self.employee_no,
            "employee_type": int(self.employee_type),
            "join_date": self.join_date.isoformat() if self.join_date else None,
            "city": self.city,
            "status": str(self.status),
        }

    def fingerprint(self) -> int:
        """A stable signed 64-bit digest of the whole record, key included.

        Equal records give equal fingerprints in every process, so the ledger
        keeps one beside each mirrored user and a plan recognises an unchanged
        person without decoding the stored record. Different records differ but
        for odds of 2⁻⁶⁴. The record is serialised as one tuple by :mod:`marshal`
        at format version 2, the last without back-references and interning
        flags, so its bytes depend on the values alone (every value carries its
        type and length: no separator can alias another value); the profile's
        items come sorted, a custom attributes mapping's too. A profile value whose
        lists come in another order differs (one more decode, never a wrong match).
        Changing this function needs a migration that stores the new fingerprints
        (as ``0011``), or every unchanged person decodes on every plan.

        One C call for the whole record: 0.4 µs a person less than formatting the
        fields into text first (``orgsync.bench``).
        """
        jd = self.join_date
        p = self.profile
        items: list[tuple[str, Any]] | None = None
        if p:
            items = sorted(p.items())
            if CUSTOM_ATTRS in p:  # the one mapping value: its own keys in order too
                items = [(k, sorted(v.items()) if type(v) is dict else v) for k, v in items]
        # The members' values, not the members (marshal knows no Enum).
        return int.from_bytes(blake2b(marshal.dumps((
            self.key, self.name, self.department_keys, self.en_name, self.email, self.mobile,
            self.manager_key, self.job_title, self.employee_no, self.employee_type._value_,
            None if jd is None else jd.toordinal(), self.city, self.status._value_, items), 2),
            digest_size=8).digest(), "big", signed=True)

    @classmethod
    def from_fields(cls, key: str, f: Mapping[str, Any]) -> Employee:
        """Inverse of :meth:`fields` (used to load the ledger's mirror)."""
        jd = f.get("join_date")
        get = f.get
        extra = f.keys() - _BASE_FIELDS
        # Plain dict lookups, not Enum calls: this runs once per mirrored user.
        return cls(
            key=key, name=f["name"], department_keys=tuple(get("department_keys") or ()),
            en_name=get("en_name"), email=get("email"), mobile=get("mobile"),
            manager_key=get("manager_key"), job_title=get("job_title"),
            employee_no=get("employee_no"),
            employee_type=_EMPLOYEE_TYPES.get(get("employee_type") or 1)
            or EmployeeType(int(f["employee_type"])),
            join_date=date.fromisoformat(jd) if jd else None, city=get("city"),
            status=_STATUSES.get(get("status") or "active") or Status(str(get("status"))),
            profile=_profile({k: v for k in extra if (v := f[k]) is not None}) if extra
            else NO_PROFILE,
        )


def _profile(values: dict[str, Any]) -> Mapping[str, Any]:
    return values if values else NO_PROFILE


_EMPLOYEE_TYPES: dict[Any, EmployeeType] = {int(t): t for t in EmployeeType}
_STATUSES: dict[Any, Status] = {s.value: s for s in Status}
_BASE_FIELDS = frozenset(Employee(key="", name="", department_keys=()).fields())


def rename_people(d: Department, renamed: Mapping[str, str]) -> Department:
    """``d`` with its leader, deputies and HRBPs renamed by ``renamed`` (old key → new)."""
    def one(k: str) -> str:
        return renamed.get(k, k)
    people = (d.leader_key, *d.deputy_leader_keys, *d.hrbp_keys)
    if not any(k in renamed for k in people if k is not None):
        return d
    return replace(d, leader_key=one(d.leader_key) if d.leader_key else None,
                   deputy_leader_keys=tuple(map(one, d.deputy_leader_keys)),
                   hrbp_keys=tuple(map(one, d.hrbp_keys)))


def department_from_fields(key: str, f: Mapping[str, Any]) -> Department:
    """Inverse of :meth:`Department.fields` (used to load the ledger's mirror)."""
    return Department(
        key=key,
        name=f["name"],
        parent_key=f.get("parent_key"),
        leader_key=f.get("leader_key"),
        order=f.get("order"),
        en_name=f.get("en_name"),
        deputy_leader_keys=tuple(f.get("deputy_leader_keys") or ()),
        hrbp_keys=tuple(f.get("hrbp_keys") or ()),
    )


@dataclass(slots=True)
class Snapshot:
    """Departments and employees keyed by their stable source keys.

    ``employees`` holds only people the source says exist; ``status`` tells
    active from terminated. Someone absent from a snapshot is a leaver too.
    """

    departments: dict[str, Department] = field(default_factory=dict)
    employees: dict[str, Employee] = field(default_factory=dict)

    @classmethod
    def of(cls, departments: Iterable[Department], employees: Iterable[Employee]) -> Snapshot:
        """Build a snapshot from records; a later record with the same key wins."""
        return cls({d.key: d for d in departments}, {e.key: e for e in employees})

    def active_count(self) -> int:
        """How many employees are active (without building :meth:`active_employees`)."""
        active = Status.ACTIVE
        return sum(1 for e in self.employees.values() if e.status is active)

    def active_employees(self) -> dict[str, Employee]:
        """Employees whose status is active."""
        return {k: e for k, e in self.employees.items() if e.status is Status.ACTIVE}
