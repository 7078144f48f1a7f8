"""Records Feishu People (人事企业版) owns: the contact API refuses to change them.

Once Feishu People is a tenant's data source, the users and departments it sources cannot
be updated through the contact API
(/document/platform-notices/breaking-change/data-from-feishu-corehr-cannot-be-updated-via-contact-api,
feishu-api-more.md §1.15). The notice names no code; the candidates are 44053 on a user
PATCH and 43031 on a department PATCH/PUT — that mapping is UNCONFIRMED, and both are read
as "locked".

The first refusal fails its operation (reported with the remedy, see
:mod:`orgsync.feishu.codes`) and records the key here, in one ledger meta row; later plans
treat the key as protected (left as it is, with a note), so it is never retried run after
run. :func:`locked_records` is what ``doctor`` lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from orgsync.errors import FeishuError
from orgsync.feishu.codes import CODES, Kind
from orgsync.ledger import Ledger
from orgsync.plan import Operation

META_KEY = "feishu_people_locked"


@dataclass(frozen=True, slots=True)
class Locked:
    """Keys of the records Feishu People owns, as orgsync learned them."""

    users: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()


def is_lock(error: FeishuError) -> bool:
    """True when ``error`` is Feishu refusing to change a record Feishu People owns."""
    known = CODES.get(error.code)
    return known is not None and known.kind is Kind.LOCKED


def locked_records(ledger: Ledger) -> Locked:
    """The records refused as Feishu People's so far (empty when none)."""
    raw = ledger.get_meta(META_KEY)
    if not raw:
        return Locked()
    stored = json.loads(raw)
    return Locked(frozenset(stored.get("users", ())), frozenset(stored.get("departments", ())))


def remember_locked(ledger: Ledger, op: Operation) -> None:
    """Record that Feishu refused ``op``'s target as Feishu People's (idempotent)."""
    now = locked_records(ledger)
    users, depts = set(now.users), set(now.departments)
    (users if op.entity == "user" else depts).add(op.key)
    ledger.set_meta(META_KEY, json.dumps({"users": sorted(users), "departments": sorted(depts)}))
