"""Fill the ledger's mirror directly, as if a snapshot had been applied through Feishu.

Applying 100k users through the sandbox would take hours at the documented
limits; the plan-at-scale benchmark only needs the *result* of that apply. The
rows written here are exactly what the executor leaves behind after creating
every department and user and linking every leader and manager: the Feishu ids
of :mod:`orgsync.identity`, the records' full canonical fields, lifecycle
``active``. A plan against the same snapshot is therefore empty.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from orgsync.feishu.schema import CATALOG_FIELDS
from orgsync.group_mirror import member_digest
from orgsync.group_plan import IN_STEP, in_step_record
from orgsync.groups import GroupSpec, Population, evaluate
from orgsync.identity import feishu_department_id, feishu_user_id
from orgsync.ledger import Ledger
from orgsync.model import Snapshot
from orgsync.tables import MirrorDepartmentRow, MirrorGroupMemberRow, MirrorGroupRow, MirrorUserRow

_CHUNK = 5_000


def _dumps(fields: Mapping[str, Any]) -> str:
    # The ledger's own encoding of mirror fields (orgsync.ledger._dumps).
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, default=str)


def _open_id(prefix: str, key: str) -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:32]


def fill_mirror(ledger: Ledger, snapshot: Snapshot) -> tuple[int, int]:
    """Replace the mirror with ``snapshot`` as applied; returns (departments, users) written.

    Only active employees are mirrored (terminated ones were never created). The job
    levels and families they name are cached as the tenant's catalogs (made-up ids), as
    the run that applied them would have left them (:mod:`orgsync.catalogs`).
    One transaction, bulk ``executemany`` inserts: 100k users take about a second.
    """
    now = datetime.now(UTC)
    depts = [{"key": k, "feishu_id": feishu_department_id(k), "open_id": _open_id("od-", k),
              "fields": _dumps(d.fields()), "updated_at": now}
             for k, d in sorted(snapshot.departments.items())]
    users = [{"key": k, "feishu_id": feishu_user_id(k), "open_id": _open_id("ou_", k),
              "fields": _dumps(e.fields()), "fingerprint": e.fingerprint(),
              "lifecycle": "active", "frozen_at": None,
              "deleted_at": None, "updated_at": now}
             for k, e in sorted(snapshot.active_employees().items())]
    dept_table = MirrorDepartmentRow.__table__  # type: ignore[attr-defined]
    user_table = MirrorUserRow.__table__  # type: ignore[attr-defined]
    with ledger.engine.begin() as conn:
        conn.execute(dept_table.delete())
        conn.execute(user_table.delete())
        for rows, table in ((depts, dept_table), (users, user_table)):
            for start in range(0, len(rows), _CHUNK):
                conn.execute(table.insert(), rows[start:start + _CHUNK])
    for field_name, catalog in CATALOG_FIELDS.items():
        names = sorted({str(v) for e in snapshot.employees.values()
                        if (v := e.profile.get(field_name))})
        if names:
            ledger.set_meta(f"catalog.{catalog}",
                            json.dumps({n: f"{catalog}-{i}" for i, n in enumerate(names)},
                                       ensure_ascii=False))
    return len(depts), len(users)


def fill_groups(ledger: Ledger, snapshot: Snapshot, specs: Iterable[GroupSpec]) -> int:
    """Replace the group mirror with ``specs`` as a first group sync of ``snapshot`` (already
    applied: :func:`fill_mirror`) leaves it: each group created under its custom id, holding
    the active employees its rule picks, with their digest. Returns the memberships written.
    """
    specs = list(specs)
    population = Population(snapshot.active_employees(), snapshot.departments)
    now = datetime.now(UTC)
    groups: list[dict[str, Any]] = []
    members: list[dict[str, str]] = []
    sizes: dict[str, int] = {}
    for spec in specs:
        keys = evaluate(spec, population)
        sizes[spec.key] = len(keys)
        groups.append({"key": spec.key, "feishu_id": spec.group_id, "name": spec.name,
                       "digest": member_digest(keys), "updated_at": now})
        members.extend({"group_key": spec.key, "user_key": k} for k in keys)
    group_table = MirrorGroupRow.__table__  # type: ignore[attr-defined]
    member_table = MirrorGroupMemberRow.__table__  # type: ignore[attr-defined]
    with ledger.engine.begin() as conn:
        conn.execute(member_table.delete())
        conn.execute(group_table.delete())
        if groups:
            conn.execute(group_table.insert(), groups)
        for start in range(0, len(members), _CHUNK * 10):
            conn.execute(member_table.insert(), members[start:start + _CHUNK * 10])
    ledger.set_meta(IN_STEP, in_step_record(snapshot.departments, specs, sizes))  # as applied
    return len(members)
