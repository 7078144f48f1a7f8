"""The ledger's mirror of managed user groups: what orgsync applied, read back for the diff.

A group operation changes it in the transaction that finishes the operation's journal entry
(:meth:`orgsync.ledger.Ledger.journal_finish`), so a killed run resumes from exactly the
batches that were confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select, update

from orgsync.operations import MirrorChange
from orgsync.plan import Operation
from orgsync.tables import MirrorGroupMemberRow, MirrorGroupRow

_GROUPS: Table = MirrorGroupRow.__table__  # type: ignore[attr-defined]
_MEMBERS: Table = MirrorGroupMemberRow.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class MirrorGroup:
    """A managed group as applied: its Feishu ``group_id``, name and members' source keys."""

    feishu_id: str
    name: str
    members: set[str] = field(default_factory=set)


def load_groups(c: Connection) -> dict[str, MirrorGroup]:
    """Every managed group with its members."""
    groups = {row.key: MirrorGroup(row.feishu_id, row.name)
              for row in c.execute(select(_GROUPS.c.key, _GROUPS.c.feishu_id, _GROUPS.c.name))}
    # Straight from the driver: 200 groups of 100k people are a million rows, and a
    # SQLAlchemy row per member costs seconds.
    rows = c.exec_driver_sql("SELECT group_key, user_key FROM mirror_group_members").fetchall()
    for group_key, user_key in rows:
        if group_key in groups:
            groups[group_key].members.add(user_key)
    return groups


def apply_group(c: Connection, op: Operation, change: MirrorChange, now: datetime) -> None:
    """Record a successful group operation (``op.mirror`` holds what it changed)."""
    mirror: dict[str, Any] = dict(op.mirror or {})
    key = str(mirror.get("group", op.key))
    members = [str(m) for m in mirror.get("members") or ()]
    if change is MirrorChange.INSERT:
        c.execute(delete(_GROUPS).where(_GROUPS.c.key == key))
        c.execute(delete(_MEMBERS).where(_MEMBERS.c.group_key == key))
        c.execute(insert(_GROUPS).values(key=key, feishu_id=str(mirror.get("feishu_id",
                                                                            op.feishu_id)),
                                         name=str(mirror["name"]), updated_at=now))
        _join(c, key, members)
    elif change is MirrorChange.MERGE:
        c.execute(update(_GROUPS).where(_GROUPS.c.key == key).values(name=str(mirror["name"]),
                                                                      updated_at=now))
    elif change is MirrorChange.DELETE:
        c.execute(delete(_GROUPS).where(_GROUPS.c.key == key))
        c.execute(delete(_MEMBERS).where(_MEMBERS.c.group_key == key))
    elif change is MirrorChange.JOIN:
        c.execute(delete(_MEMBERS).where(_MEMBERS.c.group_key == key,
                                         _MEMBERS.c.user_key.in_(members)))
        _join(c, key, members)
    elif change is MirrorChange.LEAVE:
        c.execute(delete(_MEMBERS).where(_MEMBERS.c.group_key == key,
                                         _MEMBERS.c.user_key.in_(members)))
    else:
        raise ValueError(f"{change} is no group change")


def _join(c: Connection, key: str, members: list[str]) -> None:
    if members:
        c.execute(insert(_MEMBERS), [{"group_key": key, "user_key": m} for m in members])


def rekey_member(c: Connection, old: str, new: str) -> None:
    """A person's key changed (``user.rekey``): their memberships follow."""
    c.execute(update(_MEMBERS).where(_MEMBERS.c.user_key == old).values(user_key=new))

