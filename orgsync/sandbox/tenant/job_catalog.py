"""Job levels (职级) and job families (序列): the tenant's catalogs a user's
``job_level_id`` / ``job_family_id`` point into (feishu-api-more.md §5.2, §5.3); and the
custom employee types (``employee_type_enums``, §5.1, §1.13) a user's ``employee_type``
may name beyond the five built-ins.

Sources: ``/document/server-docs/contact-v3/job_level/*`` and ``…/job_family/*``. Both
list with ``page_size`` 1–50 (default 10) and a ``name`` filter, create with ``name``
(required) and ``status`` (required), and are limited to 10/s (the route's windows).
``…/employee_type_enum/*``: list with ``page_size`` ≤ 100 (default 20; the built-in five
first), create with ``content`` 1–100, ``enum_type`` 2 and ``enum_status`` (1 active,
2 inactive); the new type's ``enum_value`` is the next number as a string (``"6"`` first);
at most 255 custom types (42303); duplicate content 42301 (the same numbers mean other
things for job levels). Create is 20/s; list is 特殊频控 (unpublished: tier 4 stands in).
The tenant's custom profile attributes (``custom_attrs``, §6) are listed here too, from
the knob of that name. What the sandbox does not model: descriptions, i18n names, orders, parent families and
deletes (orgsync uses none of them).
"""

from __future__ import annotations

from dataclasses import dataclass

from orgsync.sandbox.tenant.body import opt_bool, opt_str
from orgsync.sandbox.tenant.ids import IdIndex
from orgsync.sandbox.tenant.model import JSON, ApiError
from orgsync.sandbox.tenant.paging import page_data, paginate


@dataclass(frozen=True)
class Kind:
    """What differs between the two catalogs: names, limits and codes."""

    name: str          # job_level | job_family: the response key
    path: str          # job_levels | job_families: the endpoint
    max_name: int      # 255 for levels, 100 for families
    bad_name: int      # 42303 / 42404
    duplicate: int     # 42305 / 42406
    missing: int       # 42301 / 42402 (404)
    user_invalid: int  # the user's job_level_id / job_family_id is unknown: 44044 / 44045


LEVEL = Kind("job_level", "job_levels", 255, 42303, 42305, 42301, 44044)
FAMILY = Kind("job_family", "job_families", 100, 42404, 42406, 42402, 44045)


_BUILT_IN_TYPES = ("正式", "实习", "外包", "劳务", "顾问")  # enum_value 1–5, enum_type 1


def _numbered_page(items: list[JSON], page_size: str | None, page_token: str | None) -> JSON:
    """One page of ``items`` where ``page_size`` is 1–100 (default 20; 40011) and the page
    token is the next offset (40012 when not a number)."""
    size = page_size or "20"
    if not size.isdigit() or not 1 <= int(size) <= 100:
        raise ApiError(40011, "page size invalid")
    offset = int(page_token or 0) if (page_token or "0").isdigit() else -1
    if offset < 0:
        raise ApiError(40012, "page token invalid")
    more = offset + int(size) < len(items)
    return page_data(items[offset:offset + int(size)], more,
                     str(offset + int(size)) if more else None)


class JobCatalog(IdIndex):
    """The job level, job family and employee type enum endpoints."""

    def employee_type_enums(self) -> dict[str, JSON]:
        """The custom employee types, by ``enum_id``."""
        return self.catalogs.setdefault("employee_type", {})

    def list_custom_attrs(self, page_size: str | None, page_token: str | None) -> JSON:
        """GET custom_attrs (feishu-api-more.md §6): the ``custom_attrs`` knob's attributes
        opened to the API (not ``"api_enabled": false``); ``page_size`` 1–100, default 20."""
        items = [{k: v for k, v in a.items() if k != "api_enabled"}
                 for a in self.knobs.custom_attrs or () if a.get("api_enabled", True)]
        return _numbered_page(items, page_size, page_token)

    def list_employee_types(self, page_size: str | None, page_token: str | None) -> JSON:
        """GET employee_type_enums: the five built-ins, then the custom ones."""
        built_in: list[JSON] = [
            {"enum_id": f"builtin-{n}", "enum_value": str(n), "content": c, "enum_type": 1,
             "enum_status": 1, "i18n_content": []} for n, c in enumerate(_BUILT_IN_TYPES, 1)]
        items = [*built_in, *(dict(e) for e in self.employee_type_enums().values())]
        return _numbered_page(items, page_size, page_token)

    def create_employee_type(self, body: JSON) -> JSON:
        """POST employee_type_enums: ``content`` 1–100 unique (42301), ``enum_type`` 2 (1 is
        read-only), ``enum_status`` 1 or 2; at most 255 custom types (42303)."""
        content = opt_str(body, "content")
        if not content or len(content) > 100:
            raise ApiError(40001, "param error: content must be 1-100 characters")
        if body.get("enum_type") != 2 or body.get("enum_status") not in (1, 2):
            raise ApiError(40001, "param error: enum_type must be 2, enum_status 1 or 2")
        store = self.employee_type_enums()
        if content in _BUILT_IN_TYPES or any(e["content"] == content for e in store.values()):
            raise ApiError(42301, "duplicate content")
        if len(store) >= 255:
            raise ApiError(42303, "custom employee types exceed the limit")
        entry: JSON = {"enum_id": self._hex(64), "enum_value": str(6 + len(store)),
                       "content": content, "enum_type": 2,
                       "enum_status": body["enum_status"], "i18n_content": []}
        store[entry["enum_id"]] = entry
        return {"employee_type_enum": dict(entry)}

    def active_custom_types(self) -> set[int]:
        """The ``enum_value`` of every active custom type (a user may hold only those)."""
        return {int(e["enum_value"]) for e in self.employee_type_enums().values()
                if e["enum_status"] == 1}

    def catalog(self, kind: Kind) -> dict[str, JSON]:
        """The ``kind`` catalog, entries by id (emptied by :meth:`reset`)."""
        return self.catalogs.setdefault(kind.name, {})

    def list_catalog(self, kind: Kind, *, name: str | None, page_size: str | None,
                     page_token: str | None) -> JSON:
        """GET job_levels / job_families: ``items`` in creation order, filtered by ``name``."""
        items = [e for e in self.catalog(kind).values() if name is None or e["name"] == name]
        page, more, token = paginate(items, page_size, page_token, f"{kind.name}:{name}")
        return page_data([dict(e) for e in page], more, token)

    def create_catalog(self, kind: Kind, body: JSON) -> JSON:
        """POST job_levels / job_families: ``name`` 1–max chars, unique (UNCONFIRMED whether
        Feishu compares names ignoring case: here exactly); ``status`` required."""
        name = opt_str(body, "name")
        if not name or len(name) > kind.max_name:
            raise ApiError(kind.bad_name, f"invalid {kind.name} name")
        status = opt_bool(body, "status")
        if status is None:
            raise ApiError(40001 if kind is LEVEL else 42400, "param error: status is required")
        store = self.catalog(kind)
        if any(e["name"] == name for e in store.values()):
            raise ApiError(kind.duplicate, f"duplicate {kind.name} name")
        entry: JSON = {f"{kind.name}_id": self._hex(64), "name": name,
                       "description": opt_str(body, "description") or "", "status": status}
        store[entry[f"{kind.name}_id"]] = entry
        return {kind.name: dict(entry)}

    def update_catalog(self, kind: Kind, entry_id: str, body: JSON) -> JSON:
        """PUT job_levels/:id / job_families/:id: omitted fields are unchanged; a new name
        is checked as on create."""
        store = self.catalog(kind)
        entry = store.get(entry_id)
        if entry is None:
            raise ApiError(kind.missing, f"{kind.name} not found", 404)
        name = opt_str(body, "name")
        if name is not None:
            if not name or len(name) > kind.max_name:
                raise ApiError(kind.bad_name, f"invalid {kind.name} name")
            if any(e["name"] == name for k, e in store.items() if k != entry_id):
                raise ApiError(kind.duplicate, f"duplicate {kind.name} name")
            entry["name"] = name
        status = opt_bool(body, "status")
        if status is not None:
            entry["status"] = status
        return {kind.name: dict(entry)}

    def check_catalog_ref(self, kind: Kind, ref: str) -> str:
        """A user's ``job_level_id`` / ``job_family_id``: an existing, enabled entry (else
        44044 / 44045); ``""`` clears it (UNCONFIRMED, feishu-api-more.md §1.5)."""
        if ref:
            entry = self.catalog(kind).get(ref)
            if entry is None or not entry["status"]:
                raise ApiError(kind.user_invalid, f"{kind.name}_id is invalid")
        return ref
