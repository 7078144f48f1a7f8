"""What every plan renderer shares: the filters, the counts, the grouping, and
operations and changes said with names (:mod:`orgsync.names`) instead of ids.

Built for plans of any size: one pass counts, then operations are visited kind by
kind, sorted by department within a kind; no per-operation document is built for
the whole plan (a renderer writes each operation as it comes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from orgsync.errors import ConfigError
from orgsync.names import FIELD_LABELS, Names
from orgsync.operations import SPECS
from orgsync.plan import BY_KEY, PER_RECORD, CreatedChanges, FieldChange, Operation, OpKind, Plan


@dataclass(frozen=True, slots=True)
class Filters:
    """Which operations a rendered plan lists (the summary always counts them all).

    ``kinds``: operation kinds (``user.move``) or patterns of them (``group.*``);
    ``department``: a key or a path, with its subtree; ``keys``: department or employee
    keys; ``summary``: the summary only.
    """

    kinds: frozenset[str] = frozenset()
    department: str | None = None
    keys: frozenset[str] = frozenset()
    summary: bool = False

    @property
    def active(self) -> bool:
        """Some operations may be left out."""
        return bool(self.kinds or self.department or self.keys)

    def describe(self) -> str:
        """The filters as the flags that set them."""
        parts = [f"--kind {k}" for k in sorted(self.kinds)]
        if self.department:
            parts.append(f"--department {self.department}")
        parts += [f"--key {k}" for k in sorted(self.keys)]
        return " ".join(parts)

    def check(self) -> None:
        """Raise :class:`ConfigError` for a kind that does not exist (with the ones that do)."""
        unknown = sorted(k for k in self.kinds if not any(fnmatchcase(o.value, k) for o in OpKind))
        if unknown:
            raise ConfigError(f"unknown operation kind {', '.join(unknown)}", key="--kind",
                              remedy="one of " + ", ".join(k.value for k in OpKind))


@dataclass(slots=True)
class View:
    """A plan seen through filters, with names."""

    plan: Plan
    filters: Filters = field(default_factory=Filters)
    names: Names = field(init=False)
    subtree: set[str] | None = field(init=False, default=None)
    # A first sync's creates set the same city, title or manager on thousands of people:
    # each such change is made JSON once per view. Keyed by (field, value).
    _as_json: dict[tuple[str, str | int], dict[str, Any]] = field(init=False,
                                                                   default_factory=dict)
    # The same for the text of created values (:meth:`changes`).
    _as_text: dict[tuple[str, Any], str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.filters.check()
        self.names = self.plan.names or _no_names()
        if self.filters.department:
            key = self.names.resolve_department(self.filters.department)
            if key is None:
                raise ConfigError(f"no department {self.filters.department!r} in the source or "
                                  "among those orgsync manages", key="--department",
                                  remedy="give a department key or its full path "
                                         "(研发中心/平台部)")
            self.subtree = self.names.subtree(key)

    def counts(self) -> dict[str, int]:
        """Operation counts by kind, in kind order (all of the plan)."""
        return self.plan.summary()

    def matches(self, op: Operation) -> bool:
        """``op`` passes the filters."""
        f = self.filters
        if f.kinds and not any(fnmatchcase(op.kind.value, k) for k in f.kinds):
            return False
        if f.keys and op.key not in f.keys and not any(
                c.field == "key" and c.old in f.keys for c in op.changes):
            return False
        return self.subtree is None or bool(self.departments_of(op) & self.subtree)

    def departments_of(self, op: Operation) -> set[str]:
        """Every department ``op`` concerns: its own, its group's, those it moves between."""
        found = {d} if (d := self.department_of(op)) is not None else set()
        if op.entity == "department":
            found.add(op.key)
        for c in op.changes:
            if c.field == "department_keys":
                found.update(c.old or ())
                found.update(c.new or ())
            elif c.field == "parent_key":
                found.update(k for k in (c.old, c.new) if k)
        return found

    def department_of(self, op: Operation) -> str | None:
        """The department ``op`` is listed under: a person's primary department, a
        department's parent."""
        if op.entity == "user":
            return self.names.primary_department(op.key)
        d = self.names.department(op.key)
        return d.parent_key if d is not None else None

    def shown(self) -> Iterator[Operation]:
        """The operations that pass the filters, in the plan's (execution) order."""
        return (op for op in self.plan.operations if self.matches(op))

    def groups(self) -> Iterator[tuple[OpKind, int, Iterator[tuple[str | None, list[Operation]]]]]:
        """(kind, how many shown, (department, its operations by key)…) for each kind shown."""
        by_kind: dict[OpKind, list[Operation]] = {}
        for op in self.shown() if self.filters.active else self.plan.operations:
            by_kind.setdefault(op.kind, []).append(op)
        for kind in OpKind:
            ops = by_kind.pop(kind, None)
            if ops:
                yield kind, len(ops), self._by_department(ops)

    def _by_department(self, ops: list[Operation]) -> Iterator[tuple[str | None, list[Operation]]]:
        """``ops`` by department (by path, top level first), each department's by key."""
        # Grouped first, then 10³ paths sorted and each group by its short keys: one sort
        # of 10⁵ (path, key) pairs compares long shared path prefixes.
        by_dept: dict[str | None, list[Operation]] = {}
        department_of = self.department_of
        for op in ops:
            d = department_of(op)
            found = by_dept.get(d)
            if found is None:
                by_dept[d] = [op]
            else:
                found.append(op)
        path = self.names.path
        for _, dept in sorted((path(d) if d else "", d or "") for d in by_dept):
            group = by_dept[dept or None]
            group.sort(key=BY_KEY)
            yield dept or None, group

    def title(self, op: Operation) -> str:
        """``E001 张伟`` / ``D049 研发中心/平台部``: the key, and the name people know."""
        if op.entity == "department":
            return f"{op.key} {self.names.path(op.key)}"
        return f"{op.key} {op.label}" if op.label and op.label != op.key else op.key

    def changes(self, op: Operation) -> list[str]:
        """The field changes as people read them (none for a delete: what goes is listed
        by its title)."""
        if not SPECS[op.kind].lists_fields:
            return []
        changes = op.changes
        if changes.__class__ is CreatedChanges:  # read without making the changes
            return self._created(changes.created())
        found: list[str] = []
        for c in changes:
            found += self._created([(c.field, c.new)]) if c.old is None and c.new \
                else [self.change(c)]
        return found

    def _created(self, values: Iterable[tuple[str, Any]]) -> list[str]:
        """:meth:`change` of each (field, value) created. A first sync says 10⁶ of them:
        one of a record's own fields is its text under its own name; one that recurs (a
        city, a manager, a department) is said once."""
        kept = self._as_text
        found = []
        for name, new in values:
            cls = new.__class__
            if cls is str and name in PER_RECORD:
                found.append(f"{name}: {new}")
            elif cls is str or cls is int or name == "department_keys":
                shared = (name, tuple(new) if cls is list else new)
                found.append(kept.get(shared)
                             or _keep(kept, shared, self.change(FieldChange(name, None, new))))
            else:
                found.append(self.change(FieldChange(name, None, new)))
        return found

    def change(self, c: FieldChange) -> str:
        """``departments: 研发中心/平台部 → 研发中心/数据部``, ``employee_type: regular``."""
        label, value = self.names.label(c.field), self.names.value
        if c.old is None or c.old == "" or c.old == []:
            return f"{label}: {value(c.field, c.new)}"
        return f"{label}: {value(c.field, c.old)} → {value(c.field, c.new)}"

    def change_dict(self, c: FieldChange) -> dict[str, Any]:
        """A change as JSON: the canonical values, and as people read them where they differ."""
        d = c.to_dict()
        if self.names.label(c.field) != c.field or c.field == "employee_type":
            d["old_text"] = None if c.old in (None, "", []) else self.names.value(c.field, c.old)
            d["new_text"] = None if c.new in (None, "", []) else self.names.value(c.field, c.new)
        return d

    def op_dict(self, op: Operation) -> dict[str, Any]:
        """An operation as JSON: :meth:`Operation.to_dict`, with names. A change's JSON
        may be shared with other operations' (the same created value): not to be changed."""
        d = op.to_dict(self._changes_json(op.changes))
        d["name"] = self.names.path(op.key) if op.entity == "department" else op.label
        dept = self.department_of(op)
        d["department"] = None if dept is None else {"key": dept, "path": self.names.path(dept)}
        return d

    def _changes_json(self, changes: Iterable[FieldChange]) -> list[dict[str, Any]]:
        """:meth:`change_dict` of each; that of a value created in a field whose values
        recur (not :data:`~orgsync.plan.PER_RECORD`) made once and shared. A bool is made
        each time: ``True`` is ``1`` as a key."""
        if changes.__class__ is CreatedChanges:  # read without making the changes
            return self._created_json(changes.created())
        found: list[dict[str, Any]] = []
        for c in changes:
            found += self._created_json([(c.field, c.new)]) if c.old is None \
                else [self.change_dict(c)]
        return found

    def _created_json(self, values: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`change_dict` of each (field, value) created: a record's own value under
        its own name is a plain dict; one in a field whose values recur is made once."""
        kept = self._as_json
        found = []
        for name, new in values:
            if name in _PLAIN:
                found.append({"field": name, "old": None, "new": new})
            elif (new.__class__ is str or new.__class__ is int) and name not in PER_RECORD:
                found.append(kept.get((name, new)) or _keep(
                    kept, (name, new), self.change_dict(FieldChange(name, None, new))))
            else:
                found.append(self.change_dict(FieldChange(name, None, new)))
        return found


#: A record's own fields whose JSON change has no texts (:meth:`View.change_dict`).
_PLAIN = frozenset(f for f in PER_RECORD if f not in FIELD_LABELS and f != "employee_type")

K = TypeVar("K")
V = TypeVar("V")

#: At most this many changes' JSON (and text) is kept per view (distinct managers, titles …).
_KEPT = 100_000


def _keep(kept: dict[K, V], key: K, value: V) -> V:
    """``value``, kept under ``key`` (the cache emptied first when it holds :data:`_KEPT`)."""
    if len(kept) >= _KEPT:
        kept.clear()
    kept[key] = value
    return value


def shown_count(view: View) -> int:
    """How many operations pass the filters (one pass)."""
    if not view.filters.active:
        return len(view.plan.operations)
    return sum(1 for op in view.plan.operations if view.matches(op))




def _no_names() -> Names:
    from orgsync.model import Snapshot
    from orgsync.state import DirectoryState

    return Names(Snapshot({}, {}), DirectoryState())
