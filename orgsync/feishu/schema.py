"""Feishu's user and department objects ↔ canonical records: one row per field.

Every field of :class:`~orgsync.model.Employee` and :class:`~orgsync.model.Department`
that Feishu holds is described here once (``Employee.status`` is not a Feishu field:
a leaver is frozen or deleted). A row names the canonical field, Feishu's name for
it in create/patch bodies and in responses, how a value crosses in each direction,
what a PATCH sends when the source has no value, and the read permissions that make
Feishu return it (feishu-api-more.md §1.1: without any of them the field is
*absent* from every read, not an error).

Values cross in two shapes. ``to_wire`` takes the value as the record's
``fields()`` holds it (JSON-able: a date is ISO text, an employee type an int);
``from_wire`` returns the record's attribute value. Fields whose value is another
entity's key (departments, manager, parent, leader) are *links*: they cross through
the id maps, so the body and record builders below translate them, not the row.

The diff (:mod:`orgsync.diff`) builds its bodies and the reader
(:mod:`orgsync.feishu.reader`) its records with the functions at the end of this module,
and neither names a Feishu field itself.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Any, Final, Literal

from orgsync.custom_attrs import Attribute
from orgsync.custom_attrs import to_wire as _attrs_to_wire
from orgsync.model import CUSTOM_ATTRS, NO_PROFILE, Department, Employee, EmployeeType


class Clear(enum.Enum):
    """How a PATCH treats a field the source has no value for, when not a value to send."""

    KEEP = "keep"
    """Never cleared: compared only when the source gives a value ("unknown" is not "clear")."""


KEEP: Final = Clear.KEEP


@dataclass(frozen=True, slots=True)
class FeishuField:
    """One canonical field as Feishu carries it.

    * ``name``: the canonical field (record attribute and ``fields()`` key);
    * ``wire``: Feishu's field in create/patch bodies and in responses;
    * ``read``: the permissions any one of which makes Feishu return it (§1.1);
    * ``clear``: what a PATCH sends when the source has no value, or :data:`KEEP`;
    * ``documented_clear``: the value Feishu documents as clearing it (§1.5);
      ``None`` where the docs leave it open (UNCONFIRMED, see the row's comment);
    * ``to_wire``: canonical → body value (``None``: as it is);
    * ``from_wire``: response value → record value (``None``: as it is, empty as ``None``);
    * ``link``: ``"department"`` or ``"user"`` when the value is a key (or keys)
      of that kind, translated through the id maps;
    * ``parse``: for a :data:`PROFILE` field, a source cell (stripped text) → the
      canonical value (``None``: no value); ValueError with the reason when the
      cell is none (the row is held, naming the field);
    * ``column``: for a :data:`PROFILE` field, its native CSV column when that is not
      ``name`` (keys are ``…_key(s)`` in the model, ``…_id(s)`` in files);
    * ``catalog``: the tenant catalog (``job_level`` / ``job_family``) whose entries the
      value names: the record holds the name, Feishu the entry's id (see ``catalogs`` of
      the body builders).
    """

    name: str
    wire: str
    read: tuple[str, ...]
    clear: Any = ""
    documented_clear: Any = None
    to_wire: Callable[[Any], Any] | None = None
    from_wire: Callable[[Any], Any] | None = None
    link: Literal["department", "user"] | None = None
    parse: Callable[[str], Any] | None = None
    column: str | None = None
    catalog: str | None = None


ROOT: Final = "0"
"""The root department's id (a top-level department's parent)."""


# ---------------------------------------------------------------- read permissions (§1.1)

RA3: Final = ("contact:contact:access_as_app", "contact:contact:readonly",
              "contact:contact:readonly_as_app")
"""The app-wide contact scopes that stand in for most per-field ones."""

_USER_BASE_READ = ("contact:user.base:readonly", *RA3)
_USER_EMPLOYEE_READ = ("contact:user.employee:readonly", *RA3)
_USER_DEPARTMENT_READ = ("contact:user.department:readonly", *RA3)
_DEPARTMENT_BASE_READ = ("contact:department.base:readonly", *RA3)
_DEPARTMENT_ORGANIZE_READ = ("contact:department.organize:readonly", *RA3)

USER_READ: Final[Mapping[str, tuple[str, ...]]] = {
    # Only this one, not RA3 (also what user_id_type=user_id needs; whether such a call
    # then errors or only leaves the ids out is UNCONFIRMED, §2.4: the sandbox leaves them out).
    "user_id": ("contact:user.employee_id:readonly",),
    **dict.fromkeys(("name", "en_name", "nickname", "avatar"), _USER_BASE_READ),
    # The patch page also accepts directory:employee.base.email:read.
    "email": ("contact:user.email:readonly",),
    "mobile": ("contact:user.phone:readonly",),
    "gender": ("contact:user.gender:readonly", *RA3),
    **dict.fromkeys(("status", "city", "country", "work_station", "join_time",
                     "is_tenant_manager", "employee_type", "custom_attrs", "enterprise_email",
                     "job_title"), _USER_EMPLOYEE_READ),
    "employee_no": ("contact:user.employee_number:read", "contact:user.employee:readonly", *RA3),
    **dict.fromkeys(("department_ids", "leader_user_id", "orders"), _USER_DEPARTMENT_READ),
    "job_level_id": ("contact:user.job_level:readonly",),
    "job_family_id": ("contact:user.job_family:readonly",),
    "dotted_line_leader_user_ids": ("contact:user.dotted_line_leader_info.read",),
    "geo": ("contact:user.user_geo",),
    "assign_info": ("contact:user.assign_info:read",),  # GET only
    "department_path": ("contact:user.department_path:readonly",),  # and a user token
}
"""A user object's fields and the permissions any one of which makes Feishu return them
(feishu-api-more.md §1.1, from ``U/get``, ``U/find_by_department``,
``/document/contact-v3/user/batch``; create/patch responses and events follow the same
rules). A field not listed (``open_id``, ``union_id``, ``mobile_visible``) needs none."""

DEPARTMENT_READ: Final[Mapping[str, tuple[str, ...]]] = {
    **dict.fromkeys(("name", "i18n_name", "department_id", "chat_id", "status"),
                    _DEPARTMENT_BASE_READ),
    # leaders[].leaderID too (leaders[].leaderType needs none).
    **dict.fromkeys(("parent_department_id", "leader_user_id", "order", "unit_ids",
                     "member_count", "primary_member_count", "leaders"),
                    _DEPARTMENT_ORGANIZE_READ),
    "department_hrbps": ("contact:department.hrbp:readonly",),
}
"""A department object's fields and their read permissions, as :data:`USER_READ`
(§1.1, ``D/get``). Not listed (``open_department_id``, ``group_chat_employee_types``): none."""


# ---------------------------------------------------------------- conversions


@lru_cache(maxsize=1 << 16)  # a first sync converts a date per person; people share a few thousand
def join_time(iso_date: str) -> int:
    """A canonical join date (ISO text) as Feishu's ``join_time``: Unix seconds, UTC midnight."""
    day = datetime.fromisoformat(iso_date).date()
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def _join_date(value: Any) -> Any:
    return datetime.fromtimestamp(int(value), UTC).date() if value else None


EMPLOYEE_TYPE_NAMES: Final[Mapping[int, str]] = {
    EmployeeType.REGULAR: "regular", EmployeeType.INTERN: "intern",
    EmployeeType.OUTSOURCED: "outsourced", EmployeeType.CONTRACTOR: "contractor",
    EmployeeType.CONSULTANT: "consultant"}
"""``employee_type``'s built-in values (1–5, feishu-api-more.md §1.13) as people say them:
the words the CSV source also reads. A custom type (6 and up) has none."""


def employee_type_name(value: Any) -> str:
    """``regular`` for 1 (``"1"``, :attr:`EmployeeType.REGULAR`); a custom type as its number."""
    try:
        return EMPLOYEE_TYPE_NAMES.get(int(value), str(value))
    except (TypeError, ValueError):
        return str(value)


def _employee_type(value: Any) -> EmployeeType:
    # A custom type (6 and up, §1.13) has no canonical member: read as regular.
    et = int(value or 1)
    return EmployeeType(et) if et in EmployeeType._value2member_map_ else EmployeeType.REGULAR


def _text(value: Any) -> str:
    return str(value or "")


def _optional(value: Any) -> Any:
    return value or None


def _order(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def _en_us(value: Any) -> str | None:
    return (value or {}).get("en_us") or None


def _text_of(limit: int) -> Callable[[str], str]:
    """A source text of at most ``limit`` characters (Feishu's limit for the field)."""
    def parse(text: str) -> str:
        if len(text) > limit:
            raise ValueError(f"is {len(text)} characters long; Feishu takes at most {limit}")
        return text
    return parse


_GENDERS: Final = {
    **dict.fromkeys(("1", "male", "m", "man", "男"), 1),
    **dict.fromkeys(("2", "female", "f", "woman", "女"), 2),
    **dict.fromkeys(("3", "other", "x", "diverse", "其他"), 3),
    **dict.fromkeys(("0", "secret", "unknown", "undisclosed", "保密", "未知"), None),
}


def _gender(text: str) -> int | None:
    """``male``/``female``/``other`` (1–3, 男/女/其他, M/F/X); ``secret`` (0, 保密) is no value."""
    key = text.strip().lower()
    if key not in _GENDERS:
        raise ValueError(f"'{text}' is not a gender (male, female, other, secret; 男, 女, 其他, 保密)")
    return _GENDERS[key]


def _key_list(text: str) -> list[str] | None:
    """``;``-separated keys (``；`` too), in the source's order, each once; none is no value."""
    keys = list(dict.fromkeys(k.strip() for k in text.replace("；", ";").split(";")))
    return [k for k in keys if k] or None


def _custom_type(value: Any) -> str | None:
    """A custom employee type's enum_value (6 and up) as read; built-ins are no value."""
    return str(value) if value not in (None, "") and int(value) > 5 else None


def _whole(text: str) -> int:
    """A non-negative whole number (full-width digits too)."""
    digits = text.translate({c: c - 0xFEE0 for c in range(0xFF10, 0xFF1A)})
    if not digits.isdigit():
        raise ValueError(f"'{text}' is not a non-negative whole number")
    return int(digits)


def _primary_user_order(value: Any) -> int | None:
    """``orders`` as read: the primary department's ``user_order`` (0, the default, is none)."""
    for o in value or ():
        if isinstance(o, Mapping) and o.get("is_primary_dept"):
            return int(o.get("user_order") or 0) or None
    return None


def _elements(value: Any) -> list[Any] | None:
    """``custom_attrs`` as read: the elements (canonical once ``custom_attrs.named`` ran)."""
    return [e for e in value if isinstance(e, Mapping)] or None if isinstance(value, list) \
        else None


def _gender_from_wire(value: Any) -> int | None:
    return int(value) or None if value not in (None, "") else None


# ---------------------------------------------------------------- the tables

_UR, _DR = USER_READ, DEPARTMENT_READ

# Clearing (§1.5, from U/patch and D/patch): documented are job_title " " (a single
# space), join_time 0, and department leaders [] / department_hrbps []. Whether "" clears
# any other field is UNCONFIRMED; where orgsync clears with "" the row says so.
USER: Final = (
    FeishuField("key", "user_id", _UR["user_id"], link="user"),
    # Required by Feishu; a PATCH never sends it empty (validation holds nameless rows).
    FeishuField("name", "name", _UR["name"], from_wire=_text),
    # The primary department first; a user always has one, so never cleared. Sent with
    # ``orders`` (department_orders): the primary is the largest department_order.
    FeishuField("department_keys", "department_ids", _UR["department_ids"], link="department"),
    # UNCONFIRMED (§1.5): whether "" clears en_name, email or city; the sandbox clears
    # with "", and so does orgsync.
    FeishuField("en_name", "en_name", _UR["en_name"]),
    FeishuField("email", "email", _UR["email"]),
    # Required (41010 on create; validation holds a row without one): never cleared.
    FeishuField("mobile", "mobile", _UR["mobile"], clear=KEEP),
    # UNCONFIRMED (§1.5): whether "" clears leader_user_id; orgsync sends it (see manager_body).
    FeishuField("manager_key", "leader_user_id", _UR["leader_user_id"], link="user"),
    # Documented: a single space clears the title (§1.5, U/patch). The sandbox also
    # takes "" as a clear, as it always has (UNCONFIRMED in Feishu); orgsync sends " ".
    FeishuField("job_title", "job_title", _UR["job_title"], clear=" ", documented_clear=" "),
    # UNCONFIRMED (§1.5): whether "" clears it. Compared only when the source has one.
    FeishuField("employee_no", "employee_no", _UR["employee_no"], clear=KEEP),
    # Always has a value (the model defaults to regular): nothing to clear.
    FeishuField("employee_type", "employee_type", _UR["employee_type"], clear=None,
                from_wire=_employee_type),
    # Documented: 0 clears (§1.5). orgsync never clears it: Feishu sets the create time
    # when none is given, so a source without a date means "unknown", not "clear".
    FeishuField("join_date", "join_time", _UR["join_time"], clear=KEEP, documented_clear=0,
                to_wire=join_time, from_wire=_join_date),
    FeishuField("city", "city", _UR["city"]),
)
"""Every :class:`~orgsync.model.Employee` field but ``status`` and ``profile``, in the
model's order."""

PROFILE: Final = (
    # ≤ 255 (feishu-api-more.md §1.11, §7). UNCONFIRMED (§1.5) whether "" clears it; the
    # sandbox clears with "", and so does orgsync.
    FeishuField("work_station", "work_station", _UR["work_station"], parse=_text_of(255)),
    # 0 secret, 1 male, 2 female, 3 other; anything else is 41038 (§1.17, §7). 0 ("secret")
    # is Feishu's default, so it reads as no value and clears.
    FeishuField("gender", "gender", _UR["gender"], clear=0, documented_clear=0,
                from_wire=_gender_from_wire, parse=_gender),
    # User ids (user_id_type); resigned 44021, invalid 44022 (shared with leader_user_id, §7).
    # Linked in the second pass with the manager. UNCONFIRMED (§1.5) whether [] clears
    # them and what the maximum count is; the sandbox clears with [], and so does orgsync.
    # Reading needs contact:user.dotted_line_leader_info.read only (§1.1).
    # Names of the tenant's job levels (≤ 255) and families (≤ 100), looked up (and created
    # when sync.create_job_levels / create_job_families allow) by orgsync.catalogs; Feishu
    # holds the entry's id (invalid: 44044 / 44045; §5.2, §5.3). Reading needs their own
    # scopes only (§1.1). UNCONFIRMED (§1.5) whether "" clears them; the sandbox clears.
    FeishuField("job_level", "job_level_id", _UR["job_level_id"], parse=_text_of(255),
                catalog="job_level"),
    FeishuField("job_family", "job_family_id", _UR["job_family_id"], parse=_text_of(100),
                catalog="job_family"),
    # A custom employee type (§1.13, §5.1) by its name (content ≤ 100): Feishu's
    # employee_type is then the type's enum_value (6 and up) instead of the built-in one
    # (the same wire field as the base row: this one wins when set; cleared, the base
    # type is sent back).
    FeishuField("custom_employee_type", "employee_type", _UR["employee_type"],
                from_wire=_custom_type, parse=_text_of(100), catalog="employee_type"),
    # The person's place in their primary department: orders[].user_order, larger sorts
    # first, default 0 (§1.6, §7). orders go only with department_ids (44002), so a change
    # is a membership PATCH (1 QPS, like a move); the other departments keep 0.
    FeishuField("user_order", "orders", _UR["orders"], clear=KEEP, from_wire=_primary_user_order,
                parse=_whole, column="order"),
    FeishuField("dotted_line_manager_keys", "dotted_line_leader_user_ids",
                _UR["dotted_line_leader_user_ids"], clear=[], link="user", parse=_key_list,
                column="dotted_line_manager_ids"),
    # The tenant's custom attributes (§6) as attribute name → value, from custom.<name>
    # columns; checked per type and sent as elements by orgsync.custom_attrs (a read keeps
    # the elements until custom_attrs.named). An empty cell leaves that attribute as it
    # is: whether and how Feishu clears one is UNCONFIRMED (§1.5).
    FeishuField(CUSTOM_ATTRS, "custom_attrs", _UR["custom_attrs"], clear=KEEP,
                from_wire=_elements, column="custom.<name>"),
    # A picture's file path or URL; orgsync.avatars loads it, holds the record on a bad
    # picture, and compares and sends its content's sha256, which the "avatar" catalog
    # (the ledger: sha256 → image_key from POST im/v1/images, §7) turns into avatar_key.
    # An empty cell leaves the avatar (whether "" clears it is UNCONFIRMED, §1.5). Whether
    # a user read returns avatar_key is UNCONFIRMED (the docs show avatar URLs); the
    # sandbox returns it. Usually create_only: people choose their own.
    FeishuField("avatar", "avatar_key", _UR["avatar"], clear=KEEP, catalog="avatar"),
)
"""The optional profile fields (:attr:`~orgsync.model.Employee.profile`), one row each.

A source gives them through a column or a mapping rule of the row's ``name``; orgsync
manages (writes, compares, reports drift on) only those the source provides
(:attr:`orgsync.source.SourceData.profile_fields`), so a field someone sets in Feishu by
hand stays theirs until the source has it."""

PROFILE_NAMES: Final = tuple(f.name for f in PROFILE)
PROFILE_VALUES: Final = tuple(f.name for f in PROFILE if f.link is None)
"""The profile fields a create or update carries as values (the links go apart)."""

CATALOG_FIELDS: Final = {f.name: f.catalog for f in PROFILE if f.catalog}
"""Profile fields whose value names a tenant catalog entry → the catalog."""

CATALOG_CODES: Final = {"job_level": "job_level_code", "job_family": "job_family_code"}
"""Profile fields whose catalog entry HR may also name by a stable code → the code's
column (optional; kept in :attr:`~orgsync.model.Employee.profile`, never sent): a new name
under a known code renames the entry (``orgsync.catalogs``), it is not a new entry."""

CODE_PARSE: Final = _text_of(255)
"""A catalog code cell: text of at most 255 characters (orgsync's own limit)."""

Catalogs = Mapping[str, Mapping[str, str]]
"""Catalog (``job_level``) → entry name → Feishu id."""

DEPARTMENT: Final = (
    FeishuField("key", "department_id", _DR["department_id"], link="department"),
    FeishuField("name", "name", _DR["name"], from_wire=_text),
    # None is the root (ROOT): nothing to clear.
    FeishuField("parent_key", "parent_department_id", _DR["parent_department_id"], clear=None,
                link="department"),
    # Set and cleared through "leaders" (documented: [] clears, §1.5); leader_user_id
    # always equals the main leader (§1.12), so both are sent together (leader_body).
    FeishuField("leader_key", "leader_user_id", _DR["leader_user_id"], clear=[],
                documented_clear=[], link="user"),
    # Compared only when the source has one. UNCONFIRMED (§1.5 is silent): whether and
    # how an order can be cleared.
    FeishuField("order", "order", _DR["order"], clear=KEEP, to_wire=str, from_wire=_order),
    # i18n_name carries the Chinese name too ({"zh_cn": name, "en_us": en_name}): built by
    # department_patch_body. UNCONFIRMED (§1.5) whether en_us "" clears; orgsync sends it.
    FeishuField("en_name", "i18n_name", _DR["i18n_name"], from_wire=_en_us),
    # The deputies are leaders of leaderType 2 beside exactly one main leader (type 1);
    # sent with the main leader in one "leaders" list (leader_body). Wire casing: the docs
    # and the sandbox agree on camelCase leaderType/leaderID in requests, responses and
    # events (feishu-api-more.md §1.12, §7); the Python SDK's DepartmentLeader would send
    # snake_case and drops camelCase keys it reads, so orgsync sends plain dicts.
    FeishuField("deputy_leader_keys", "leaders", _DR["leaders"], clear=[], documented_clear=[],
                link="user"),
    # ≤ 500 user ids (43028); [] clears (§1.5, D/patch); reading needs the HRBP scope only.
    FeishuField("hrbp_keys", "department_hrbps", _DR["department_hrbps"], clear=[],
                documented_clear=[], link="user"),
)
"""Every :class:`~orgsync.model.Department` field, in the model's order."""

OPTIONAL_DEPARTMENT_LINKS: Final = ("deputy_leader_keys", "hrbp_keys")
"""Department fields a source may leave out altogether: their read permissions are needed
only when it gives them (doctor and the live read do not insist otherwise)."""

KEEP_WHEN_UNSET: Final = frozenset(f.name for f in (*USER, *PROFILE, *DEPARTMENT)
                                   if f.clear is KEEP)
"""Canonical fields compared only when the source gives a value."""

USER_VALUE_FIELDS: Final = tuple(f.name for f in USER if f.link is None)
"""The user fields a create or update carries as values (links go apart); the
:data:`PROFILE` fields the source provides go with them."""

_U = {f.name: f for f in (*USER, *PROFILE)}
_D = {f.name: f for f in DEPARTMENT}
# (name, wire, conversion) of the value fields, unpacked once: plans build 10⁵ bodies.
_USER_WRITES = tuple((f.name, f.wire, f.to_wire) for f in (*USER, *PROFILE) if f.link is None)
_USER_READS = tuple((f.name, f.wire, f.from_wire or _optional) for f in USER if f.link is None)
_PROFILE_READS = tuple((f.name, f.wire, f.from_wire or _optional) for f in PROFILE
                       if f.link is None)
_DOTTED = _U["dotted_line_manager_keys"]
_CUSTOM = _U[CUSTOM_ATTRS].wire
_USER_ORDER = "user_order"
_DEPARTMENT_READS = tuple((f.name, f.wire, f.from_wire or _optional) for f in DEPARTMENT
                          if f.link is None)
_USER_ID = _U["key"].wire
_DEPARTMENT_IDS = _U["department_keys"].wire
_ORDERS = "orders"  # the user's place in each department, and which one is primary
_MANAGER = _U["manager_key"]
_FROZEN = "is_frozen"  # in a user's "status" object; a PATCH of it freezes or unfreezes
_DEPT_ID = _D["key"].wire
_DEPT_NAME = _D["name"].wire
_PARENT = _D["parent_key"].wire
_LEADER = _D["leader_key"]
_LEADERS = _D["deputy_leader_keys"].wire
_HRBPS = _D["hrbp_keys"].wire
_MAIN, _DEPUTY = 1, 2  # leaderType (§1.12)
_ORDER = _D["order"]
_I18N = _D["en_name"].wire


# ---------------------------------------------------------------- canonical → Feishu


def _send(f: FeishuField, value: Any) -> Any:
    """``value`` (as ``fields()`` holds it) as a body value of ``f``; None clears."""
    if value is None:
        return f.clear
    return value if f.to_wire is None else f.to_wire(value)


def _with_ids(body: dict[str, Any], fields: Mapping[str, Any],
              catalogs: Catalogs) -> dict[str, Any]:
    """``body`` with catalog names (job levels, families, custom employee types) replaced
    by their Feishu ids (``orgsync.catalogs`` resolved every name a plan sends).

    Clearing ("") stays, but for a custom employee type: Feishu's type is then the base one."""
    for name, catalog in CATALOG_FIELDS.items():
        wire = _U[name].wire
        if wire not in body:
            continue
        value = fields.get(name)
        if value:
            found = catalogs[catalog][value]
            body[wire] = int(found) if catalog == "employee_type" and found.isdigit() else found
        elif catalog == "employee_type":
            body[wire] = fields["employee_type"]
    return body


def _with_attrs(body: dict[str, Any], fields: Mapping[str, Any],
                attrs: Mapping[str, Attribute] | None) -> dict[str, Any]:
    """``body`` with the custom attributes (by name) as Feishu's elements (§6)."""
    if _CUSTOM in body:
        body[_CUSTOM] = _attrs_to_wire(fields[CUSTOM_ATTRS], attrs or {})
    return body


def user_create_body(fields: Mapping[str, Any], department_ids: list[str], *,
                     user_id: str | None, manager_id: str | None = None,
                     catalogs: Catalogs | None = None,
                     attrs: Mapping[str, Attribute] | None = None) -> dict[str, Any]:
    """A user create (or adoption PATCH, ``user_id`` None) body from ``Employee.fields()``.

    Carries the values the source has, the departments and, when ``manager_id`` (the
    manager's Feishu user id) is given, the manager link (``leader_user_id`` is a create
    field, feishu-api.md ``U/create``): the caller names a manager only once it exists.
    """
    body: dict[str, Any] = {} if user_id is None else {_USER_ID: user_id}
    body[_DEPARTMENT_IDS] = department_ids
    if manager_id is not None:
        body[_MANAGER.wire] = manager_id
    user_order = fields.get(_USER_ORDER)
    if (user_id is None and len(department_ids) > 1) or user_order:
        # An adoption PATCHes an existing account: its primary is set only by orders.
        body[_ORDERS] = department_orders(department_ids, user_order)
    for name, wire, to_wire in _USER_WRITES:
        if name == _USER_ORDER:
            continue
        v = fields.get(name)
        if v is None or v == "":
            continue
        body[wire] = v if to_wire is None else to_wire(v)
    _with_attrs(body, fields, attrs)
    return _with_ids(body, fields, catalogs) if catalogs else body


def without_manager(body: Mapping[str, Any]) -> dict[str, Any]:
    """A user create body without its manager link."""
    return {k: v for k, v in body.items() if k != _MANAGER.wire}


def user_patch_body(fields: Mapping[str, Any], changed: Iterable[str],
                    department_ids: list[str] | None = None,
                    catalogs: Catalogs | None = None,
                    attrs: Mapping[str, Attribute] | None = None) -> dict[str, Any]:
    """A user PATCH body for the ``changed`` fields of ``Employee.fields()``.

    ``changed`` holds value fields and possibly ``department_keys`` (then
    ``department_ids`` are the new departments' Feishu ids, the primary first, and
    with more than one their ``orders`` go along). A value the source lacks is sent as the row's
    ``clear`` (:data:`KEEP` fields are never changed to nothing).
    """
    body: dict[str, Any] = {}
    for name in changed:
        if name in ("department_keys", _USER_ORDER):
            assert department_ids is not None
            body[_DEPARTMENT_IDS] = department_ids
            if len(department_ids) > 1 or _USER_ORDER in changed:
                body[_ORDERS] = department_orders(department_ids, fields.get(_USER_ORDER))
            continue
        f = _U[name]
        body[f.wire] = _send(f, fields.get(name))
    _with_attrs(body, fields, attrs)
    return _with_ids(body, fields, catalogs) if catalogs else body


def department_orders(department_ids: Sequence[str],
                      user_order: int | None = None) -> list[dict[str, Any]]:
    """``orders`` that make the first of ``department_ids`` the primary department.

    Feishu's primary department is the one with the largest ``department_order``
    (feishu-api-more.md §1.6, ``U/patch``): a PATCH of ``department_ids`` alone may
    keep the old orders, hence the old primary (UNCONFIRMED; the sandbox keeps them).
    The orders count down from ``len(department_ids)``, so the source's order of the
    others holds too. ``user_order`` (the person's place within the primary department,
    larger first) goes with the primary when the source gives one; left out, Feishu's
    default is 0.
    """
    n = len(department_ids)
    orders: list[dict[str, Any]] = [{"department_id": d, "department_order": n - i}
                                    for i, d in enumerate(department_ids)]
    if user_order is not None and orders:
        orders[0]["user_order"] = user_order
    return orders


def resurrect_body(department_ids: Sequence[str]) -> dict[str, Any]:
    """The body of a resurrect: the departments the person returns to."""
    return {"departments": [{"department_id": d} for d in department_ids]}


def manager_body(manager_id: str | None) -> dict[str, Any]:
    """A PATCH that links a user to its manager (Feishu user id), or unlinks (None)."""
    return {_MANAGER.wire: manager_id or _MANAGER.clear}


def dotted_line_body(manager_ids: Sequence[str]) -> dict[str, Any]:
    """A PATCH that sets a user's dotted-line managers (Feishu user ids; none clears)."""
    return {_DOTTED.wire: list(manager_ids) or list(_DOTTED.clear)}


def frozen_body(frozen: bool) -> dict[str, Any]:
    """A PATCH that freezes (True) or unfreezes a user."""
    return {_FROZEN: frozen}


def _i18n(d: Department) -> dict[str, str]:
    return {"zh_cn": d.name, "en_us": d.en_name or ""}


def department_create_body(d: Department, department_id: str, parent_id: str) -> dict[str, Any]:
    """A department create body: id, name, parent, and English name and order when set.

    The leader is linked apart, once the leader exists.
    """
    body: dict[str, Any] = {_DEPT_ID: department_id, _DEPT_NAME: d.name, _PARENT: parent_id}
    if d.en_name:
        body[_I18N] = _i18n(d)
    if d.order is not None:
        body[_ORDER.wire] = _send(_ORDER, d.order)
    return body


def department_patch_body(d: Department, changed: Iterable[str],
                          parent_id: str | None = None) -> dict[str, Any]:
    """A department PATCH body for the ``changed`` fields (``parent_id``: the new parent's
    Feishu id, when ``parent_key`` changed).

    A new name carries the English name along when there is one: ``i18n_name``
    holds both.
    """
    changed = tuple(changed)
    body: dict[str, Any] = {}
    for f in changed:
        if f == "name":
            body[_DEPT_NAME] = d.name
        elif f == "en_name":
            body[_I18N] = _i18n(d)
        elif f == "order":
            body[_ORDER.wire] = _send(_ORDER, d.order)
        elif f == "parent_key":
            body[_PARENT] = parent_id
    if "name" in changed and "en_name" not in changed and d.en_name:
        body[_I18N] = _i18n(d)
    return body


def leader_body(leader_id: str | None, deputy_ids: Sequence[str] = ()) -> dict[str, Any]:
    """A department PATCH that sets its main leader and deputies (Feishu user ids), or
    clears them all (``leader_id`` None: Feishu has no deputies without a main leader).

    ``leader_user_id`` must equal the main leader of ``leaders`` (§1.12).
    """
    if leader_id is None:
        return {_LEADERS: list(_LEADER.clear)}
    return {_LEADER.wire: leader_id,
            _LEADERS: [{"leaderType": _MAIN, "leaderID": leader_id},
                       *({"leaderType": _DEPUTY, "leaderID": d} for d in deputy_ids)]}


def hrbp_body(hrbp_ids: Sequence[str]) -> dict[str, Any]:
    """A department PATCH that sets its HRBPs (Feishu user ids; none clears them)."""
    return {_HRBPS: list(hrbp_ids)}


# ---------------------------------------------------------------- Feishu → canonical


def user_id_of(u: Mapping[str, Any]) -> str:
    """A user object's custom id."""
    return str(u[_USER_ID])


def is_frozen(u: Mapping[str, Any]) -> bool:
    """Whether a user object is frozen."""
    return bool((u.get("status") or {}).get(_FROZEN))


def employee_from_feishu(u: Mapping[str, Any], dept_key_of: Mapping[str, str],
                         key_of: Mapping[str, str]) -> Employee:
    """A Feishu user object (custom-id types) as a canonical record.

    ``dept_key_of`` / ``key_of`` map Feishu ids back to source keys; an id they do
    not hold is its own key.
    """
    uid = user_id_of(u)
    get = u.get
    leader = get(_MANAGER.wire) or None
    profile = {name: v for name, wire, from_wire in _PROFILE_READS
               if (v := from_wire(get(wire))) is not None}
    dotted = [key_of.get(str(u), str(u)) for u in get(_DOTTED.wire) or () if u]
    if dotted:
        profile[_DOTTED.name] = dotted
    return Employee(
        key=key_of.get(uid, uid),
        department_keys=tuple(dept_key_of.get(d, d) for d in _primary_first(u)),
        manager_key=key_of.get(str(leader), str(leader)) if leader else None,
        profile=profile or NO_PROFILE,
        **{name: from_wire(get(wire)) for name, wire, from_wire in _USER_READS},
    )


def _primary_first(u: Mapping[str, Any]) -> list[str]:
    """A user's ``department_ids``, the primary first, then by ``department_order``
    (larger first, §1.6); ties keep Feishu's order."""
    ids = [str(d) for d in u.get(_DEPARTMENT_IDS) or ()]
    rank = {str(o.get("department_id")): (not o.get("is_primary_dept"),
                                          -int(o.get("department_order") or 0))
            for o in u.get(_ORDERS) or () if isinstance(o, Mapping)}
    return sorted(ids, key=lambda d: rank.get(d, (True, 0)))


def unread_fields(obj: Mapping[str, Any], rows: Sequence[FeishuField]) -> frozenset[str]:
    """The canonical fields of ``rows`` (:data:`USER` or :data:`DEPARTMENT`) that a
    Feishu object leaves out: the app lacks their read permission (§1.1), so their
    values are unknown, never empty."""
    return frozenset(f.name for f in rows if f.wire not in obj)


def department_id_of(d: Mapping[str, Any]) -> str:
    """A department object's custom id."""
    return str(d[_DEPT_ID])


def department_from_feishu(d: Mapping[str, Any], key_of: Mapping[str, str],
                           user_key_of: Mapping[str, str]) -> Department:
    """A Feishu department object (custom-id types) as a canonical record.

    ``key_of`` / ``user_key_of`` map Feishu ids back to source keys, as for users.
    """
    fid = department_id_of(d)
    parent = str(d.get(_PARENT) or ROOT)
    leader = d.get(_LEADER.wire) or None

    def users(ids: Iterable[Any]) -> tuple[str, ...]:
        return tuple(user_key_of.get(str(u), str(u)) for u in ids if u)

    return Department(
        key=key_of.get(fid, fid),
        parent_key=None if parent == ROOT else key_of.get(parent, parent),
        leader_key=user_key_of.get(str(leader), str(leader)) if leader else None,
        deputy_leader_keys=users(x.get("leaderID") for x in d.get(_LEADERS) or ()
                                 if isinstance(x, Mapping) and x.get("leaderType") == _DEPUTY),
        hrbp_keys=users(d.get(_HRBPS) or ()),
        **{name: from_wire(d.get(wire)) for name, wire, from_wire in _DEPARTMENT_READS},
    )
