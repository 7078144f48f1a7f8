"""The ledger's mirror of managed user groups: what orgsync applied, read back for the diff.

A group operation changes it in the transaction that finishes the operation's journal entry
(:meth:`orgsync.ledger.Ledger.journal_finish`), so a killed run resumes from exactly the
batches that were confirmed.

Each group row keeps a digest of its member key set (:func:`member_digest`), kept in step
with every change to its members, so a plan reads the member table only for the groups whose
computed members hash differently: an unchanged group costs one comparison.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from hashlib import blake2b
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select, update

from orgsync.operations import MirrorChange
from orgsync.plan import Operation
from orgsync.tables import MirrorGroupMemberRow, MirrorGroupRow

_GROUPS: Table = MirrorGroupRow.__table__  # type: ignore[attr-defined]
_MEMBERS: Table = MirrorGroupMemberRow.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class MirrorGroup:
    """A managed group as applied: its Feishu ``group_id``, name, members' source keys and
    their :func:`member_digest` (``members`` is empty when loaded without members)."""

    feishu_id: str
    name: str
    members: set[str] = field(default_factory=set)
    digest: str = ""


_MODULUS = 1 << 256


@lru_cache(maxsize=1 << 18)
def _key_hash(key: str) -> int:
    return int.from_bytes(blake2b(key.encode(), digest_size=32).digest(), "big")


def _digest_sum(digest: str) -> int:
    return int(digest, 16) if digest else 0


def _digest_text(total: int) -> str:
    return f"{total % _MODULUS:064x}"


def member_digest(keys: Iterable[str]) -> str:
    """The digest of a set of member keys: the sum of their 256-bit BLAKE2b hashes modulo
    2**256, so it is independent of order and updated per added or removed member without
    reading the others (the empty set's digest is all zeros)."""
    return _digest_text(sum(_key_hash(k) for k in keys))


def load_groups(c: Connection, *, members: bool = True) -> dict[str, MirrorGroup]:
    """Every managed group, with its members unless ``members`` is false (then only the
    digest: :func:`load_members` reads the groups that need them)."""
    groups = {row.key: MirrorGroup(row.feishu_id, row.name, digest=row.digest)
              for row in c.execute(select(_GROUPS.c.key, _GROUPS.c.feishu_id, _GROUPS.c.name,
                                          _GROUPS.c.digest))}
    if not members:
        return groups
    # Straight from the driver: 200 groups of 100k people are a million rows, and a
    # SQLAlchemy row per member costs seconds.
    rows = c.exec_driver_sql("SELECT group_key, user_key FROM mirror_group_members").fetchall()
    for group_key, user_key in rows:
        if group_key in groups:
            groups[group_key].members.add(user_key)
    return groups


def load_members(c: Connection, key: str) -> set[str]:
    """The members of managed group ``key``."""
    return {row[0] for row in c.execute(select(_MEMBERS.c.user_key)
                                        .where(_MEMBERS.c.group_key == key))}


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
                                         name=str(mirror["name"]),
                                         digest=member_digest(set(members)), updated_at=now))
        _join(c, key, members)
    elif change is MirrorChange.MERGE:
        c.execute(update(_GROUPS).where(_GROUPS.c.key == key).values(name=str(mirror["name"]),
                                                                      updated_at=now))
    elif change is MirrorChange.DELETE:
        c.execute(delete(_GROUPS).where(_GROUPS.c.key == key))
        c.execute(delete(_MEMBERS).where(_MEMBERS.c.group_key == key))
    elif change is MirrorChange.JOIN:
        present = _leave(c, key, members)
        _join(c, key, members)
        _shift(c, key, set(members), present)
    elif change is MirrorChange.LEAVE:
        _shift(c, key, set(), _leave(c, key, members))
    else:
        raise ValueError(f"{change} is no group change")


def _join(c: Connection, key: str, members: list[str]) -> None:
    if members:
        c.execute(insert(_MEMBERS), [{"group_key": key, "user_key": m} for m in members])


def _leave(c: Connection, key: str, members: list[str]) -> set[str]:
    """Remove ``members`` from group ``key``; those that were in it."""
    where = (_MEMBERS.c.group_key == key, _MEMBERS.c.user_key.in_(members))
    present = {row[0] for row in c.execute(select(_MEMBERS.c.user_key).where(*where))}
    if present:
        c.execute(delete(_MEMBERS).where(*where))
    return present


def _shift(c: Connection, key: str, added: set[str], removed: set[str]) -> None:
    """Move group ``key``'s digest by the members ``added`` and ``removed``."""
    if added == removed:
        return
    digest = c.execute(select(_GROUPS.c.digest).where(_GROUPS.c.key == key)).scalar()
    if digest is None:
        return  # no such group (a replayed batch of a deleted group)
    total = _digest_sum(digest) + sum(map(_key_hash, added - removed)) \
        - sum(map(_key_hash, removed - added))
    c.execute(update(_GROUPS).where(_GROUPS.c.key == key).values(digest=_digest_text(total)))


def rekey_member(c: Connection, old: str, new: str) -> None:
    """A person's key changed (``user.rekey``): their memberships (and the digests) follow."""
    for (key,) in c.execute(select(_MEMBERS.c.group_key)
                            .where(_MEMBERS.c.user_key == old)).fetchall():
        _shift(c, key, {new}, {old})
    c.execute(update(_MEMBERS).where(_MEMBERS.c.user_key == old).values(user_key=new))

