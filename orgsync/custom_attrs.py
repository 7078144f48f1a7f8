"""Custom profile attributes (自定义字段): the tenant's definitions, a source's values
checked against them, the wire elements of a user create/patch, and field-level changes.

Facts (feishu-api-more.md §6, ``/document/server-docs/contact-v3/custom_attr/list``,
``U/create``, ``U/patch``): ``GET /contact/v3/custom_attrs`` lists the member fields an
admin opened to the API (管理后台 › 组织架构 › 字段管理 › 字段设置 › API 调用设置); a field
not opened is not listed, and user ``custom_attrs`` naming it have no effect. Each item has
an ``id`` (``C-…``), a ``type`` (TEXT, HREF, ENUMERATION, PICTURE_ENUM, GENERIC_USER),
``options`` and ``i18n_name``. A source names an attribute by any of its i18n names.

A source's value, as a record holds it (the canonical value), by type:

* TEXT: the text (≤ 100 characters);
* HREF: ``{"text": title, "url": url}`` from a cell ``title|url`` or ``url`` alone (the
  title is then the URL); the URL starts with http(s)://;
* ENUMERATION / PICTURE_ENUM: the option's name; the wire carries the option **id** (the
  API pages; the FAQ says the name: UNCONFIRMED, §6);
* GENERIC_USER: the person's HR key; the wire carries their user_id (the patch page says
  user_id only, whatever ``user_id_type`` says: UNCONFIRMED, §6), ``type`` 1.

Whether a PATCH of ``custom_attrs`` replaces the whole list or only the listed ids is
UNCONFIRMED (§1.5): orgsync always sends every attribute it manages for the person.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from orgsync.model import CUSTOM_ATTRS
from orgsync.source import Issue, SourceData
from orgsync.state import DirectoryState

if TYPE_CHECKING:
    from orgsync.ledger import Ledger

TEXT_LIMIT: Final = 100
_ENUMS: Final = frozenset({"ENUMERATION", "PICTURE_ENUM"})
_TYPES: Final = frozenset({"TEXT", "HREF", "GENERIC_USER", *_ENUMS})
_REPORTED: Final = "custom_attrs.unavailable"  # ledger meta: names reported as not open
REMEDY: Final = ("open it to the API in 管理后台 › 组织架构 › 字段管理 › 字段设置 › API 调用设置 "
                 "(允许开放平台通讯录 API 调用), or drop the column")


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute definition as the tenant lists it: ``options`` is option name → id."""

    id: str
    name: str
    type: str
    options: Mapping[str, str] = field(default_factory=dict)


def definitions(items: Iterable[Mapping[str, Any]]) -> dict[str, Attribute]:
    """The listed attributes (``GET custom_attrs`` items) by each of their i18n names."""
    found: dict[str, Attribute] = {}
    for item in items:
        names = [str(n["value"]) for n in item.get("i18n_name") or () if n.get("value")]
        if not names or not item.get("id"):
            continue
        opts = (item.get("options") or {}).get("options") or ()
        attr = Attribute(str(item["id"]), names[0], str(item.get("type") or ""),
                         {str(o["name"]): str(o["id"]) for o in opts if o.get("name")})
        for name in names:
            found.setdefault(name, attr)
    return found


def parse(attr: Attribute, text: str) -> Any:
    """A source cell (stripped text) as ``attr``'s canonical value; ValueError with the
    reason when the tenant's definition does not take it."""
    if attr.type not in _TYPES:
        raise ValueError(f"has type {attr.type or '(none)'}, which orgsync cannot write")
    if attr.type == "TEXT":
        if len(text) > TEXT_LIMIT:
            raise ValueError(f"is {len(text)} characters long; Feishu takes at most {TEXT_LIMIT}")
        return text
    if attr.type == "HREF":
        title, _, url = text.rpartition("|") if "|" in text else (text, "", text)
        title, url = title.strip(), url.strip()
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"'{text}' is not a link: write 'title|https://…' or a URL")
        return {"text": title or url, "url": url}
    if attr.type in _ENUMS:
        if text not in attr.options:
            raise ValueError(f"'{text}' is not one of its options ({', '.join(attr.options)})")
        return text
    return text  # GENERIC_USER: an HR key; the plan checks the person exists


def element(attr: Attribute, value: Any, user_id: Callable[[str], str]) -> dict[str, Any]:
    """The create/patch element setting ``attr`` to the canonical ``value``."""
    wire: dict[str, Any]
    if attr.type == "HREF":
        wire = {"text": value["text"], "url": value["url"], "pc_url": value["url"]}
    elif attr.type in _ENUMS:
        wire = {"option_id": attr.options[value]}
    elif attr.type == "GENERIC_USER":
        wire = {"generic_user": {"id": user_id(value), "type": 1}}
    else:
        wire = {"text": value}
    return {"type": attr.type, "id": attr.id, "value": wire}


def to_wire(values: Mapping[str, Any], attrs: Mapping[str, Attribute],
            user_id: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """The ``custom_attrs`` body list for a person's canonical ``values`` (by name; every
    name is in ``attrs``), in name order so that equal values make equal bodies."""
    return [element(attrs[n], values[n], user_id) for n in sorted(values)]


def from_wire(elements: Iterable[Mapping[str, Any]], attrs: Mapping[str, Attribute],
              key_of: Callable[[str], str] = str) -> dict[str, Any]:
    """A user's ``custom_attrs`` as read, as canonical values by name (attributes not in
    ``attrs``, and empty values, are left out: orgsync does not manage them)."""
    by_id = {a.id: a for a in attrs.values()}
    values: dict[str, Any] = {}
    for e in elements:
        attr = by_id.get(str(e.get("id")))
        wire = e.get("value") or {}
        if attr is None:
            continue
        if attr.type == "HREF":
            value: Any = {"text": wire.get("text") or "", "url": wire.get("url") or ""} \
                if wire.get("url") else None
        elif attr.type in _ENUMS:
            names = {i: n for n, i in attr.options.items()}
            value = names.get(str(wire.get("option_id")), wire.get("option_id"))
        elif attr.type == "GENERIC_USER":
            user = (wire.get("generic_user") or {}).get("id")
            value = key_of(str(user)) if user else None
        else:
            value = wire.get("text")
        if value:
            values[attr.name] = value
    return values


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
            ) -> list[tuple[str, Any, Any]]:
    """The field-level changes from ``old`` to ``new`` canonical values, as
    ``(path, old, new)`` with paths like ``Homepage.url`` (deepdiff finds them, so a change
    in one attribute, or one part of a link, shows as that one)."""
    # Imported here: deepdiff costs 50 ms of every command's start, and only a plan that
    # changes a custom attribute calls this (orgsync.bench times the plan end to end).
    from deepdiff import DeepDiff

    diff = DeepDiff(dict(old or {}), dict(new or {}), verbose_level=2)
    found: list[tuple[str, Any, Any]] = []
    for kind, items in diff.items():
        for path, change in items.items():
            where = ".".join(str(p) for p in _path(path))
            if kind == "dictionary_item_added":
                found.append((where, None, change))
            elif kind == "dictionary_item_removed":
                found.append((where, change, None))
            else:
                found.append((where, change["old_value"], change["new_value"]))
    return sorted(found, key=lambda c: c[0])


def _path(path: str) -> list[str]:
    """``root['Homepage']['url']`` → ``['Homepage', 'url']``."""
    return [p.strip("'\"") for p in path.removeprefix("root[").removesuffix("]").split("][")]


def unavailable(names: Iterable[str], attrs: Mapping[str, Attribute],
                ledger: Ledger) -> list[str]:
    """The source's attribute ``names`` the tenant does not list (not opened to the API, or
    not defined) that were not reported before: each is reported once (the ledger keeps
    which), not on every run; one that is listed again is forgotten, so a later close is
    reported anew."""
    missing = {n for n in names if n not in attrs}
    reported = set(json.loads(ledger.get_meta(_REPORTED) or "[]"))
    new = sorted(missing - reported)
    if new or reported - missing:
        ledger.set_meta(_REPORTED, json.dumps(sorted(missing), ensure_ascii=False))
    return new


class AttrAPI(Protocol):
    """The part of :class:`orgsync.feishu.FeishuClient` :func:`resolve` calls."""

    async def custom_attributes(self) -> list[dict[str, Any]]: ...


async def resolve(raw: SourceData, client: AttrAPI, ledger: Ledger) -> SourceData:
    """``raw`` with its people's custom attribute cells checked and typed by the tenant's
    definitions (one list per run, only when the source has ``custom.<name>`` columns).

    A value the definition does not take holds the person (field ``custom.<name>``, the
    reason); a GENERIC_USER value must be a person of the source. An attribute the tenant
    does not list is reported once (a warning with the remedy) and left out of the
    records, so nothing is written for it until it is opened."""
    if CUSTOM_ATTRS not in raw.profile_fields:
        return raw
    attrs = definitions(await client.custom_attributes())
    issues = list(raw.issues)
    held = set(raw.held_employees)
    everyone = raw.snapshot.employees
    people = dict(everyone)
    used: set[str] = set()
    for key, e in everyone.items():
        given = e.profile.get(CUSTOM_ATTRS)
        if not given:
            continue
        used.update(given)
        values: dict[str, Any] = {}
        for name, text in given.items():
            attr = attrs.get(name)
            if attr is None:
                continue
            try:
                value = parse(attr, text)
                if attr.type == "GENERIC_USER" and value not in everyone:
                    raise ValueError(f"'{value}' is not a person of the source")
            except ValueError as exc:
                held.add(key)
                issues.append(Issue("employee", key, f"custom.{name}", str(exc), "error",
                                    raw.where("employee", key)))
                continue
            values[attr.name] = value
        profile = {k: v for k, v in e.profile.items() if k != CUSTOM_ATTRS}
        if values:
            profile[CUSTOM_ATTRS] = values
        people[key] = replace(e, profile=profile)
    for name in unavailable(used, attrs, ledger):
        issues.append(Issue("employee", None, f"custom.{name}",
                            f"custom attribute '{name}' is not open to the API (or not "
                            f"defined): {REMEDY}; its values are not written", "warning"))
    return replace(raw, snapshot=replace(raw.snapshot, employees=people), issues=issues,
                   held_employees=held, custom_attrs=attrs)


def named(state: DirectoryState, attrs: Mapping[str, Attribute]) -> DirectoryState:
    """A live read's ``custom_attrs`` elements as canonical values by name (as the
    mirror and the source hold them)."""
    for key, u in state.users.items():
        elements = u.record.profile.get(CUSTOM_ATTRS)
        if elements is None:
            continue
        profile = {k: v for k, v in u.record.profile.items() if k != CUSTOM_ATTRS}
        values = from_wire(elements, attrs)
        if values:
            profile[CUSTOM_ATTRS] = values
        state.users[key] = replace(u, record=replace(u.record, profile=profile))
    return state
