"""Department renames inferred where departments are keyed by their path.

A source without department codes (``department_path:``, see
:func:`connectors.mapping.departments_from_paths`) keys each department by its
path, so renaming ``研发中心`` changes its key and every key below it: diffed as
is, that is a create and a delete per department and a move per member. Before
the diff, :func:`infer_renames` matches, top-down, each managed path-keyed
department the source no longer holds with a new one under the same (possibly
renamed) parent:

* a department whose parent was matched and whose name is unchanged is the same
  department (its path changed with its parent's);
* otherwise the one new sibling whose members are mostly the old one's is:
  ``|both| / max(|old|, |new|) >= min_overlap``, over direct members (the mirror's
  live people against the source's active ones), or over the whole subtree's when
  neither has direct members (a department that only holds departments). Exactly
  one candidate, claimed by no other vanished sibling, or no match at all.

The result is a copy of the state with each matched department under its new key
(its Feishu id unchanged) and every reference (parents, people's departments)
following, so the diff plans ``department.rekey`` (ledger only) and a PATCH of
what really changed. An inference can be wrong: what it does not match is a
create and a delete, exactly as without it; stable codes are the robust way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from orgsync.model import Department, Status
from orgsync.source import SourceData
from orgsync.state import DirectoryState, Lifecycle


@dataclass(slots=True)
class Renames:
    """``state`` with the inferred renames applied; ``rekeys``: new key → old key."""

    state: DirectoryState
    rekeys: dict[str, str] = field(default_factory=dict)


def path_keyed(d: Department) -> bool:
    """True when ``d``'s key is its path (its parent's key, a separator, its name)."""
    if d.parent_key is None:
        return d.key == d.name
    gap = len(d.key) - len(d.parent_key) - len(d.name)
    return 0 < gap <= 3 and d.key.startswith(d.parent_key) and d.key.endswith(d.name)


def overlap(old: set[str], new: set[str]) -> float:
    """``|old & new| / max(|old|, |new|)``; 0 when both are empty."""
    most = max(len(old), len(new))
    return len(old & new) / most if most else 0.0


def infer_renames(data: SourceData, state: DirectoryState, min_overlap: float) -> Renames:
    """Match vanished path-keyed departments with new ones (see the module docstring).

    ``state`` is not modified. Deterministic in the inputs.
    """
    desired = data.snapshot.departments
    vanished = {k: m.record for k, m in state.departments.items()
                if k not in desired and k not in data.held_departments and path_keyed(m.record)}
    fresh = {k: d for k, d in desired.items() if k not in state.departments and path_keyed(d)}
    if not vanished or not fresh:
        return Renames(state)
    # Below a vanished (new) path-keyed department, every department vanished (is new) too.
    deleted = Lifecycle.DELETED
    old_members = _subtree_members(
        {k: d.parent_key for k, d in vanished.items()},
        ((uk, u.record.department_keys) for uk, u in state.users.items()
         if u.lifecycle is not deleted))
    new_members = _subtree_members(
        {k: d.parent_key for k, d in fresh.items()},
        ((e.key, e.department_keys) for e in data.snapshot.employees.values()
         if e.status is Status.ACTIVE))
    by_parent: dict[str | None, list[str]] = defaultdict(list)
    for k in sorted(fresh):
        by_parent[fresh[k].parent_key].append(k)

    renamed: dict[str, str] = {}  # old key -> new key
    for level in _levels(vanished):
        passing: dict[str, list[str]] = {}
        for old in level:
            rec = vanished[old]
            parent = renamed.get(rec.parent_key, rec.parent_key) if rec.parent_key else None
            siblings = [n for n in by_parent.get(parent, ()) if n not in renamed.values()]
            if rec.parent_key in renamed:
                same = [n for n in siblings if fresh[n].name == rec.name]
                if same:
                    passing[old] = same
                    continue
            passing[old] = [n for n in siblings
                            if overlap(*_members(old_members, old, new_members, n)) >= min_overlap]
        claims: dict[str, int] = defaultdict(int)
        for found in passing.values():
            for n in found:
                claims[n] += 1
        for old in level:
            found = passing[old]
            if len(found) == 1 and claims[found[0]] == 1:
                renamed[old] = found[0]
    if not renamed:
        return Renames(state)
    return Renames(_renamed(state, renamed), {new: old for old, new in renamed.items()})


def _members(old_members: Mapping[str, tuple[set[str], set[str]]], old: str,
             new_members: Mapping[str, tuple[set[str], set[str]]], new: str
             ) -> tuple[set[str], set[str]]:
    """Direct members of both, or the subtrees' when neither has direct members."""
    (od, osub), (nd, nsub) = old_members.get(old, (set(), set())), \
        new_members.get(new, (set(), set()))
    return (od, nd) if od or nd else (osub, nsub)


def _subtree_members(parents: Mapping[str, str | None],
                     people: Iterable[tuple[str, Iterable[str]]]
                     ) -> dict[str, tuple[set[str], set[str]]]:
    """Department key → (direct members, members of it and every department below)."""
    out: dict[str, tuple[set[str], set[str]]] = {k: (set(), set()) for k in parents}
    for person, keys in people:
        for dk in keys:
            if dk not in out:
                continue
            out[dk][0].add(person)
            seen: set[str] = set()
            k: str | None = dk
            while k is not None and k in out and k not in seen:  # bounded: a cycle stops it
                seen.add(k)
                out[k][1].add(person)
                k = parents.get(k)
    return out


def _levels(vanished: Mapping[str, Department]) -> list[list[str]]:
    """Vanished keys grouped by depth in the old tree, shallowest first (parents first)."""
    def depth(k: str) -> int:
        n, seen = 0, {k}
        p = vanished[k].parent_key
        while p is not None and p in vanished and p not in seen:
            seen.add(p)
            n += 1
            p = vanished[p].parent_key
        return n
    grouped: dict[int, list[str]] = defaultdict(list)
    for k in sorted(vanished):
        grouped[depth(k)].append(k)
    return [grouped[d] for d in sorted(grouped)]


def _renamed(state: DirectoryState, renamed: Mapping[str, str]) -> DirectoryState:
    """A copy of ``state`` with departments under their new keys and references following."""
    departments = {}
    for k, m in state.departments.items():
        rec = m.record
        parent = renamed.get(rec.parent_key, rec.parent_key) if rec.parent_key else None
        if k in renamed or parent != rec.parent_key:
            m = replace(m, record=replace(rec, key=renamed.get(k, k), parent_key=parent))
        departments[renamed.get(k, k)] = m
    users = {}
    moved: set[str] = set()
    for k, u in state.users.items():
        if any(dk in renamed for dk in u.record.department_keys):
            u = replace(u, record=replace(u.record, department_keys=tuple(
                renamed.get(dk, dk) for dk in u.record.department_keys)))
            moved.add(k)
        users[k] = u
    return DirectoryState(departments, users, set(state.tenant_admins), state.unchanged - moved,
                          released=state.released)
