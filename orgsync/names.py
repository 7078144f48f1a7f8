"""Keys → what people call them: department paths, people's names, for rendered plans.

A plan names departments and people by their HR keys (``D049``, ``100092``); an admin
reads ``研发中心/平台部`` and ``张伟 (100092)``. :class:`Names` answers from the source a
plan was made from and, for what the source no longer holds (leavers, departments
removed), from what orgsync manages. It only refers to those two (nothing is copied);
paths are built on demand and remembered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orgsync.feishu.schema import employee_type_name
from orgsync.model import Department, Employee, Snapshot
from orgsync.state import DirectoryState

#: Separator of a department path as shown (the one ``department_path`` sources use).
PATH_SEPARATOR = "/"


@dataclass(slots=True)
class Names:
    """Names of a plan's departments and people: the source first, then the managed state."""

    desired: Snapshot
    current: DirectoryState
    _paths: dict[str, str] = field(default_factory=dict)
    _children: dict[str, set[str]] | None = None

    def department(self, key: str) -> Department | None:
        """The department record under ``key`` (the source's, else the managed one)."""
        d = self.desired.departments.get(key)
        if d is None and (m := self.current.departments.get(key)) is not None:
            d = m.record
        return d

    def employee(self, key: str) -> Employee | None:
        """The person under ``key`` (the source's record, else the managed one)."""
        e = self.desired.employees.get(key)
        if e is None and (m := self.current.users.get(key)) is not None:
            e = m.record
        return e

    def path(self, key: str | None) -> str:
        """``研发中心/平台部`` for ``key``; ``top level`` for ``None``; the key when unknown."""
        if key is None:
            return "top level"
        found = self._paths.get(key)
        if found is not None:
            return found
        parts: list[str] = []
        seen: set[str] = set()
        k: str | None = key
        while k is not None and k not in seen:
            seen.add(k)
            d = self.department(k)
            if d is None:
                parts.append(k)
                break
            parts.append(d.name)
            k = d.parent_key
        found = PATH_SEPARATOR.join(reversed(parts))
        self._paths[key] = found
        return found

    def person(self, key: str | None) -> str:
        """``张伟 (100092)``; ``—`` for ``None``; the key alone when the name is unknown."""
        if key is None:
            return "—"
        e = self.employee(key)
        return f"{e.name} ({key})" if e is not None and e.name else key

    def primary_department(self, key: str) -> str | None:
        """A person's primary department key (the source's, else the managed one's)."""
        e = self.employee(key)
        return e.department_keys[0] if e is not None and e.department_keys else None

    def resolve_department(self, key_or_path: str) -> str | None:
        """The department a ``--department`` value names: a key, else a full path."""
        wanted = key_or_path.strip().strip(PATH_SEPARATOR)
        if self.department(wanted) is not None:
            return wanted
        for k in (*self.desired.departments, *self.current.departments):
            if self.path(k) == wanted:
                return k
        return None

    def subtree(self, key: str) -> set[str]:
        """``key`` and every department under it (in the source or managed)."""
        if self._children is None:
            self._children = {}
            for k in (*self.desired.departments, *self.current.departments):
                d = self.department(k)
                if d is not None and d.parent_key is not None:
                    self._children.setdefault(d.parent_key, set()).add(k)
        found = {key}
        todo = [key]
        while todo:
            for c in self._children.get(todo.pop(), ()):
                if c not in found:
                    found.add(c)
                    todo.append(c)
        return found

    def paths(self, keys: Iterable[str]) -> str:
        """Several departments' paths, ``; ``-separated (``—`` for none)."""
        shown = [self.path(k) for k in keys]
        return "; ".join(shown) if shown else "—"

    def label(self, name: str) -> str:
        """How a field is called in a rendered plan (``department_keys`` → ``departments``)."""
        return FIELD_LABELS.get(name, name)

    def value(self, name: str, value: Any) -> str:
        """A field's value as people read it: paths, ``张伟 (100092)``, ``regular``; ``—``
        for none."""
        if value is None or value == "" or value == [] or value == ():
            return "—"
        if value.__class__ is str and name not in _NAMED:  # most values of a plan
            return value
        if name == "department_keys":
            return self.paths(value)
        if name == "parent_key":
            return self.path(value)
        if name in ("manager_key", "leader_key"):
            return self.person(value)
        if name in _PEOPLE:
            return ", ".join(self.person(k) for k in value)
        if name == "employee_type":
            return employee_type_name(value)
        if isinstance(value, list | tuple):
            return "[" + ", ".join(str(x) for x in value) + "]"
        return str(value)


#: Fields named for people in a rendered plan (the JSON keeps the canonical names).
FIELD_LABELS = {"department_keys": "departments", "parent_key": "parent",
                "manager_key": "manager", "leader_key": "leader",
                "deputy_leader_keys": "deputy leaders", "hrbp_keys": "HRBPs",
                "dotted_line_manager_keys": "dotted-line managers"}
_PEOPLE = frozenset(("deputy_leader_keys", "hrbp_keys", "dotted_line_manager_keys"))
#: Fields whose values :meth:`Names.value` says with names (the others as they are).
_NAMED = _PEOPLE | {"department_keys", "parent_key", "manager_key", "leader_key",
                    "employee_type"}
