"""The ledger's mirror of managed user groups: what orgsync applied, read back for the diff.

A group operation changes it in the transaction that finishes the operation's journal entry
(:meth:`orgsync.ledger.Ledger.journal_finish`), so a killed run resumes from exactly the
batches that were confirmed.

Each group row keeps a digest of its member key set (:func:`member_digest`), so a plan reads
the member table only for the groups whose computed members hash differently: an unchanged
group costs one comparison. A change to a group's members empties its digest ("unknown":
the next plan reads that group's members) and :func:`seal_digests` recomputes the emptied
ones when the run ends; a run killed before that leaves them empty, which only costs the
next plan that read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    bindparam,
    delete,
    insert,
    select,
    text,
    update,
)

from orgsync.operations import MirrorChange
from orgsync.plan import Operation

_CHUNK = 500
"""Keys per ``IN (…)``: within every database's bound-parameter limit."""
_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
"""A positional placeholder in each DB-API paramstyle that has one."""


@dataclass(slots=True)
class MirrorGroup:
    """A managed group as applied: its Feishu ``group_id``, name, members' source keys and
    their :func:`member_digest` (``members`` is empty when loaded without members)."""

    feishu_id: str
    name: str
    members: set[str] = field(default_factory=set)
    digest: str = ""


def member_digest(keys: Iterable[str]) -> str:
    """The digest of a set of member keys: SHA-256 of the sorted keys, one per line."""
    return sorted_digest(sorted(keys))


def sorted_digest(keys: Iterable[str]) -> str:
    """:func:`member_digest` of distinct keys given in sorted order (not sorted again: a
    plan gets them in order from :meth:`orgsync.groups.Population.in_order`)."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def _tables() -> tuple[Table, Table]:
    """The group and member tables, for the writes. The readers (a plan's) are plain SQL:
    a plan process never loads SQLModel (see :class:`orgsync.ledger.Ledger`)."""
    from orgsync.tables import MirrorGroupMemberRow, MirrorGroupRow

    return (MirrorGroupRow.__table__, MirrorGroupMemberRow.__table__)  # type: ignore[attr-defined]


def load_groups(c: Connection, *, members: bool = True) -> dict[str, MirrorGroup]:
    """Every managed group, with its members unless ``members`` is false (then only the
    digest: :func:`load_members` reads the groups that need them)."""
    groups = {key: MirrorGroup(fid, name, digest=digest) for key, fid, name, digest in c.execute(
        text("SELECT key, feishu_id, name, digest FROM mirror_groups"))}
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
    return {row[0] for row in c.execute(_GROUP_MEMBERS, {"k": key})}


def sizes(c: Connection, keys: Sequence[str]) -> dict[str, int]:
    """Group key → its number of members as applied, of the managed groups ``keys``."""
    if not keys:
        return {}
    return {str(k): int(n) for k, n in c.execute(_SIZES, {"keys": list(keys)})}


def memberships(c: Connection, people: Iterable[str]) -> dict[str, set[str]]:
    """Group key → those of ``people`` it holds (a plan's changed people: one indexed read
    instead of every changed group's whole member list)."""
    found: dict[str, set[str]] = {}
    for group_key, user_key in _memberships_of(c, sorted(set(people))):
        found.setdefault(group_key, set()).add(user_key)
    return found


def _memberships_of(c: Connection, keys: list[str]) -> Iterator[Sequence[str]]:
    """(group key, user key) of each membership of ``keys``: straight from the driver's
    cursor where its placeholders are positional (a 1 %-changed plan at 100k reads ~18,000
    rows; SQLAlchemy's result rows were half the read)."""
    mark = _MARKS.get(c.dialect.paramstyle)
    cursor = c.connection.cursor()
    try:
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            if mark is None:  # named placeholders: SQLAlchemy binds them
                yield from c.execute(_MEMBERSHIPS, {"keys": chunk})
                continue
            cursor.execute("SELECT group_key, user_key FROM mirror_group_members "  # noqa: S608
                           f"WHERE user_key IN ({', '.join([mark] * len(chunk))})", chunk)
            yield from cursor.fetchall()
    finally:
        cursor.close()


def apply_group(c: Connection, op: Operation, change: MirrorChange, now: datetime) -> None:
    """Record a successful group operation (``op.mirror`` holds what it changed)."""
    gtab, mtab = _tables()
    mirror: dict[str, Any] = dict(op.mirror or {})
    key = str(mirror.get("group", op.key))
    members = [str(m) for m in mirror.get("members") or ()]
    if change is MirrorChange.INSERT:
        c.execute(delete(gtab).where(gtab.c.key == key))
        c.execute(delete(mtab).where(mtab.c.group_key == key))
        c.execute(insert(gtab).values(key=key, feishu_id=str(mirror.get("feishu_id",
                                                                        op.feishu_id)),
                                      name=str(mirror["name"]),
                                      digest=member_digest(set(members)), updated_at=now))
        _join(c, key, members)
    elif change is MirrorChange.MERGE:
        c.execute(update(gtab).where(gtab.c.key == key).values(name=str(mirror["name"]),
                                                                updated_at=now))
    elif change is MirrorChange.DELETE:
        c.execute(delete(gtab).where(gtab.c.key == key))
        c.execute(delete(mtab).where(mtab.c.group_key == key))
    elif change is MirrorChange.JOIN:
        c.execute(delete(mtab).where(mtab.c.group_key == key,
                                     mtab.c.user_key.in_(members)))
        _join(c, key, members)
        _unknown(c, gtab.c.key == key)
    elif change is MirrorChange.LEAVE:
        c.execute(delete(mtab).where(mtab.c.group_key == key,
                                     mtab.c.user_key.in_(members)))
        _unknown(c, gtab.c.key == key)
    else:
        raise ValueError(f"{change} is no group change")


def _join(c: Connection, key: str, members: list[str]) -> None:
    if members:
        c.execute(insert(_tables()[1]), [{"group_key": key, "user_key": m} for m in members])


def _unknown(c: Connection, where: ColumnElement[bool]) -> None:
    c.execute(update(_tables()[0]).where(where).values(digest=""))


def seal_digests(c: Connection) -> None:
    """Digest the groups whose digest a member change emptied."""
    stale = [k for (k,) in c.execute(text("SELECT key FROM mirror_groups WHERE digest = ''"))]
    for key in stale:
        c.execute(text("UPDATE mirror_groups SET digest = :d WHERE key = :k AND digest = ''"),
                  {"k": key, "d": member_digest(load_members(c, key))})


def rekey_member(c: Connection, old: str, new: str) -> None:
    """A person's key changed (``user.rekey``): their memberships follow."""
    gtab, mtab = _tables()
    _unknown(c, gtab.c.key.in_(select(mtab.c.group_key).where(mtab.c.user_key == old)))
    c.execute(update(mtab).where(mtab.c.user_key == old).values(user_key=new))


_GROUP_MEMBERS = text("SELECT user_key FROM mirror_group_members WHERE group_key = :k")
_SIZES = text("SELECT group_key, COUNT(*) FROM mirror_group_members WHERE group_key IN :keys "
              "GROUP BY group_key").bindparams(bindparam("keys", expanding=True))
_MEMBERSHIPS = text("SELECT group_key, user_key FROM mirror_group_members WHERE user_key IN :keys"
                    ).bindparams(bindparam("keys", expanding=True))
