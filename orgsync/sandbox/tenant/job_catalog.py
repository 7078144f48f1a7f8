"""Job levels (职级) and job families (序列): the tenant's catalogs a user's
``job_level_id`` / ``job_family_id`` point into (feishu-api-more.md §5.2, §5.3).

Sources: ``/document/server-docs/contact-v3/job_level/*`` and ``…/job_family/*``. Both
list with ``page_size`` 1–50 (default 10) and a ``name`` filter, create with ``name``
(required) and ``status`` (required), and are limited to 10/s (the route's windows).
What the sandbox does not model: descriptions, i18n names, orders, parent families and
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


class JobCatalog(IdIndex):
    """The job level and job family endpoints."""

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
