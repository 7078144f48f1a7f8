"""Source groups, whatever the source: nested groups flattened into the people in them.

A group's members are references to people or to other groups; a nested group's people
count as the outer group's, each group visited once, so a membership cycle (A in B, B in A)
ends. Each group is found by its reference and by its name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def flatten(members: Mapping[str, Sequence[str]], names: Mapping[str, str],
            people: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Group reference and name → the keys of the people in it, nested groups included.

    ``members``: group reference → member references; ``names``: group reference → its
    name; ``people``: person reference → employee key (others are not counted).
    """
    out: dict[str, frozenset[str]] = {}
    for ref in members:
        found: set[str] = set()
        seen = {ref}
        todo = list(members[ref])
        while todo:
            item = todo.pop()
            if item in people:
                found.add(people[item])
            elif item in members and item not in seen:  # each group once: a cycle ends
                seen.add(item)
                todo.extend(members[item])
        out[ref] = frozenset(found)
    for ref, name in names.items():
        out.setdefault(name, out[ref])
    return out
