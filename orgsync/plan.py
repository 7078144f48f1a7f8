"""A Plan: the typed, ordered, serialisable set of operations that makes Feishu match the source.

Operations form a DAG (``depends_on`` names other operations' ids). The tuple
``Plan.operations`` is a deterministic topological order of that DAG: the same
inputs always give the same operations, order, plan id and checksum.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import json
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING, Any, overload

import orjson

from orgsync.source import Issue

if TYPE_CHECKING:
    from orgsync.names import Names
    from orgsync.safety import Gauge


class OpKind(enum.StrEnum):
    """Every kind of operation a plan can hold (each one's spec: :data:`orgsync.operations.SPECS`)."""

    DEPT_ADOPT = "department.adopt"
    DEPT_CREATE = "department.create"
    DEPT_UPDATE = "department.update"
    DEPT_MOVE = "department.move"
    DEPT_SET_LEADER = "department.set_leader"
    DEPT_DELETE = "department.delete"
    DEPT_REKEY = "department.rekey"
    DEPT_RELEASE = "department.release"
    USER_CREATE = "user.create"
    USER_ADOPT = "user.adopt"
    USER_REKEY = "user.rekey"
    USER_RESURRECT = "user.resurrect"
    USER_UPDATE = "user.update"
    USER_MOVE = "user.move"
    USER_SET_MANAGER = "user.set_manager"
    USER_FREEZE = "user.freeze"
    USER_UNFREEZE = "user.unfreeze"
    USER_DELETE = "user.delete"
    USER_RELEASE = "user.release"
    GROUP_ADOPT = "group.adopt"
    GROUP_CREATE = "group.create"
    GROUP_UPDATE = "group.update"
    GROUP_ADD_MEMBERS = "group.add_members"
    GROUP_REMOVE_MEMBERS = "group.remove_members"
    GROUP_DELETE = "group.delete"
    LEAVE_CREATE = "leave.create"
    LEAVE_DELETE = "leave.delete"


#: Display and tie-break order of kinds (the DAG decides what must precede what).
KIND_ORDER: dict[OpKind, int] = {k: i for i, k in enumerate(OpKind)}

#: Fields whose values belong to one record (a name, an email): a change to one of them
#: is never shared between operations, so a renderer never keeps one for reuse. The
#: other fields' created values (a city, a title, a manager) recur.
PER_RECORD = frozenset({"name", "en_name", "email", "mobile", "employee_no", "key"})


# Operations and their changes are treated as immutable, but not frozen dataclasses: a
# frozen ``__init__`` costs four times as much, and a first sync builds 10⁵ operations
# and 10⁶ changes. ``unsafe_hash`` keeps the hash a frozen one would have.
@dataclass(slots=True, unsafe_hash=True)
class FieldChange:
    """One field's old → new value, in canonical terms (treat as immutable)."""

    field: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"field": self.field, "old": self.old, "new": self.new}


class CreatedChanges(Sequence[FieldChange]):
    """The changes of a create: one ``FieldChange(name, None, value)`` per field with a
    value, by name — made only when first read (treat as immutable, like a tuple).

    A first sync's 10⁵ creates would otherwise hold 10⁶ changes that only a renderer
    reads, and it reads :meth:`created` instead. ``fields`` are the record's (the
    create's mirror: it is kept anyway); ``hidden`` is not a change (a status), and
    ``also`` are values shown though the create does not set them (a manager linked
    later). Equal to, and hashed as, the tuple of the same changes.
    """

    __slots__ = ("_also", "_fields", "_hidden", "_made")

    def __init__(self, fields: Mapping[str, Any], hidden: str = "",
                 also: Mapping[str, Any] | None = None) -> None:
        self._fields = fields
        self._hidden = hidden
        self._also = also
        self._made: tuple[FieldChange, ...] | None = None

    def created(self) -> list[tuple[str, Any]]:
        """(field, value) of each change, by field: what the changes say, none made."""
        fields = self._fields if self._also is None else {**self._fields, **self._also}
        hidden = self._hidden
        return [(k, v) for k in sorted(fields)  # a value, or one that is not None, "", []
                if ((v := fields[k]) or (v is not None and v != "" and v != [])) and k != hidden]

    def _changes(self) -> tuple[FieldChange, ...]:
        made = self._made
        if made is None:
            made = self._made = tuple(FieldChange(k, None, v) for k, v in self.created())
        return made

    def __len__(self) -> int:
        return len(self._changes())

    @overload
    def __getitem__(self, i: int) -> FieldChange: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[FieldChange]: ...
    def __getitem__(self, i: int | slice) -> FieldChange | Sequence[FieldChange]:
        return self._changes()[i]

    def __iter__(self) -> Iterator[FieldChange]:
        return iter(self._changes())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CreatedChanges | tuple):
            return self._changes() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._changes())

    def __repr__(self) -> str:
        return repr(self._changes())


@dataclass(slots=True, unsafe_hash=True)
class Operation:
    """One Feishu write (treat as immutable: derive changed copies with ``replace``).

    ``payload`` is the request body (for deletes: the handover body, if any).
    ``mirror`` holds the canonical fields the ledger's mirror takes on success
    (merged into the record; ``None`` for deletes).
    """

    op_id: str
    kind: OpKind
    key: str
    feishu_id: str
    payload: Mapping[str, Any]
    changes: Sequence[FieldChange] = ()
    reason: str = ""
    depends_on: tuple[str, ...] = ()
    mirror: Mapping[str, Any] | None = None
    label: str = ""

    @property
    def entity(self) -> str:
        """``department``, ``user`` or ``group``."""
        return _ENTITY[self.kind]

    @property
    def client_token(self) -> str:
        """Idempotency token of the first create of this target with this payload."""
        return self.token_for(0)

    def token_for(self, generation: int) -> str:
        """Idempotency token for creates: stable for the same target, payload and generation.

        A re-run after a crash plans the same create with the same payload and,
        since the interrupted create never succeeded, the same generation — so
        the same token, and Feishu replays the first result instead of creating
        twice. Re-creating something created (then deleted) before is a new
        generation with a new token, so Feishu does not replay the old account.
        """
        digest = hashlib.sha256(canonical_bytes(
            {"k": self.kind.value, "key": self.key, "p": self.payload, "g": generation}
        )).hexdigest()
        return str(uuid.UUID(hex=digest[:32]))

    def to_dict(self, changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """JSON-able form (used for plan files and the JSON output); ``changes``: the
        changes' JSON when the caller made its own (each :meth:`FieldChange.to_dict`
        by default)."""
        return {
            "op_id": self.op_id,
            "kind": self.kind.value,
            "key": self.key,
            "feishu_id": self.feishu_id,
            "label": self.label,
            "payload": dict(self.payload),
            "changes": [c.to_dict() for c in self.changes] if changes is None else changes,
            "reason": self.reason,
            "depends_on": list(self.depends_on),
            "mirror": dict(self.mirror) if self.mirror is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Operation:
        """Inverse of :meth:`to_dict`."""
        return cls(
            op_id=d["op_id"],
            kind=OpKind(d["kind"]),
            key=d["key"],
            feishu_id=d["feishu_id"],
            label=d.get("label", ""),
            payload=d["payload"],
            changes=tuple(FieldChange(c["field"], c["old"], c["new"]) for c in d["changes"]),
            reason=d["reason"],
            depends_on=tuple(d["depends_on"]),
            mirror=d["mirror"],
        )


def op_id(kind: OpKind, key: str) -> str:
    """The id of the operation of ``kind`` on ``key`` (one per kind and key in a plan)."""
    return _ID_PREFIX[kind] + key


#: ``kind.value`` is a property call: a first sync makes 10⁶ ids, and renders ask each
#: operation's entity several times.
_ID_PREFIX = {k: f"{k.value}:" for k in OpKind}
_ENTITY = {k: k.value.split(".", 1)[0] for k in OpKind}


@dataclass(frozen=True)  # no slots: the checksum is a cached_property
class Plan:
    """Operations in a deterministic topological order, plus what was held back."""

    operations: tuple[Operation, ...]
    issues: tuple[Issue, ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: A takeover's matching summary (:meth:`orgsync.takeover.Takeover.summary`), shown
    #: before the operations; part of neither the id nor the checksum.
    takeover: Mapping[str, Any] | None = field(default=None, compare=False)
    #: Operations outside ``sync.stage`` (:mod:`orgsync.stage`): shown, never applied;
    #: part of neither the id nor the checksum.
    deferred: tuple[Operation, ...] = field(default=(), compare=False)
    #: Department paths and people's names for the renderers (:mod:`orgsync.names`).
    names: Names | None = field(default=None, compare=False, repr=False)
    #: The safety guards measured on this plan (:func:`orgsync.safety.gauges`), for the
    #: renderers' summary; set by the run before the plan is shown.
    guards: tuple[Gauge, ...] = field(default=(), compare=False, repr=False)

    @cached_property
    def checksum(self) -> str:
        """sha256 over the canonical JSON of the operations (computed once, when first asked).

        The canonical form is a JSON array with one array per operation, in plan order:
        ``[op_id, kind, key, feishu_id, label, payload, [[field, old, new], …], reason,
        depends_on, mirror]``, each in :func:`canonical_bytes`' form, with ``[]`` for the
        changes of a ``user.create`` or ``user.adopt``: those only restate its payload and
        mirror (and a manager the plan links in its own ``user.set_manager``), and a first
        sync would make 10⁶ of them to hash. It covers what :meth:`Operation.to_dict`
        holds, so a plan rebuilt by :meth:`Operation.from_dict`
        (or from its JSON file) has the same checksum; arrays, not objects, because
        sorting and writing the same ten keys for every operation cost as much as the
        rest of the hash. The executor asks for the id per operation, so it is never
        recomputed (a copy made with ``replace`` computes its own). Each operation's
        JSON is hashed as it is made: the whole document in memory would cost
        gigabytes on a first sync.
        """
        digest = hashlib.sha256(b"[")
        update = digest.update
        sep = b""
        restated = _RESTATED
        for op in self.operations:
            update(sep)
            update(canonical_bytes((
                op.op_id, op.kind._value_, op.key, op.feishu_id, op.label, op.payload,
                () if op.kind in restated else [(c.field, c.old, c.new) for c in op.changes],
                op.reason, op.depends_on, op.mirror)))
            sep = b","
        update(b"]")
        return digest.hexdigest()

    def __repr__(self) -> str:
        # Short on purpose: asyncio formats the repr of a task's result when it compares
        # SIGINT handlers, and the full repr of a plan costs about 10 µs per operation.
        return (f"Plan({self.plan_id}, {len(self.operations)} operations, "
                f"{len(self.issues)} issues)")

    def annotated(self, **display: Any) -> Plan:
        """A copy with fields that are part of neither the id nor the checksum changed
        (``takeover``, ``names``, ``guards``); the checksum, if computed, goes along."""
        if not display.keys() <= _DISPLAY:
            raise ValueError(f"not display fields: {sorted(display.keys() - _DISPLAY)}")
        copy = replace(self, **display)
        if "checksum" in self.__dict__:
            copy.__dict__["checksum"] = self.__dict__["checksum"]
        return copy

    @property
    def plan_id(self) -> str:
        """Short, stable id of this plan (what ``orgsync approve`` takes)."""
        return self.checksum[:12]

    @property
    def empty(self) -> bool:
        """True when nothing would change."""
        return not self.operations

    def summary(self) -> dict[str, int]:
        """Operation counts by kind, in kind order."""
        counts = Counter(op.kind for op in self.operations)
        return {k.value: counts[k] for k in OpKind if counts[k]}

    def held(self) -> list[Issue]:
        """The issues that held a record back (left as it is in Feishu)."""
        return [i for i in self.issues if i.held]

    def warnings(self) -> list[Issue]:
        """The issues that did not hold a record back (a field cleared, a pre-hire waiting)."""
        return [i for i in self.issues if not i.held]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``plan_id``, ``checksum``, ``summary``, ``operations``, ``held``
        (records held back), ``warnings`` (the other issues), ``notes``."""
        return {
            "plan_id": self.plan_id,
            "checksum": self.checksum,
            "summary": self.summary(),
            "operations": [op.to_dict() for op in self.operations],
            "held": [issue_dict(i) for i in self.held()],
            "warnings": [issue_dict(i) for i in self.warnings()],
            "notes": list(self.notes),
            **({"deferred": [op.to_dict() for op in self.deferred]} if self.deferred else {}),
            **({"takeover": dict(self.takeover)} if self.takeover is not None else {}),
        }


_DISPLAY = frozenset({"takeover", "names", "guards"})

#: Kinds whose changes the checksum leaves out (see :attr:`Plan.checksum`).
_RESTATED = frozenset({OpKind.USER_CREATE, OpKind.USER_ADOPT})


def issue_dict(i: Issue) -> dict[str, Any]:
    """An issue's JSON-able form."""
    return {"entity": i.entity, "key": i.key, "field": i.field, "reason": i.reason,
            "severity": i.severity, "where": i.where}


def topological(ops: Iterable[Operation]) -> tuple[Operation, ...]:
    """Order ``ops`` so every dependency precedes its dependants; ties by (kind, key).

    Of the operations whose dependencies are all placed, the next is always the first in
    (kind, key) order. The returned operations' dependencies are sorted, without
    duplicates, and only on other operations in ``ops`` (of two with one id, the later is
    kept). A dependency cycle (which the diff must never produce) raises ``ValueError``.
    """
    # (kind, key) order: by kind, then each kind's operations by key (a key is unique
    # within a kind); each operation's rank in it is its tie-break, so the heap holds ints.
    by_kind: dict[OpKind, list[Operation]] = {}
    for op in {op.op_id: op for op in ops}.values():
        by_kind.setdefault(op.kind, []).append(op)
    order: list[Operation] = []
    for kind in sorted(by_kind, key=KIND_ORDER.__getitem__):
        order += sorted(by_kind[kind], key=BY_KEY)
    rank = {op.op_id: r for r, op in enumerate(order)}
    # Each id once in memory: a dependency names the depended-on operation's own id
    # string (a 10⁵-operation plan otherwise holds a copy per reference).
    ids = {op.op_id: op.op_id for op in order}
    # Operations with the same dependencies wait as one group: a first sync's 10⁵ creates
    # name a few thousand distinct tuples (the same departments, the same manager), each
    # trimmed once and counted down once per dependency placed.
    trimmed: dict[tuple[str, ...], tuple[str, ...]] = {}
    group_of: dict[tuple[str, ...], int] = {}
    members: list[list[int]] = []
    unplaced: list[int] = []
    waiting_on: dict[int, list[int]] = {}  # an operation's rank → the groups that need it
    heap: list[int] = []
    for r, op in enumerate(order):
        given = op.depends_on
        if not given:
            heap.append(r)
            continue
        own = op.op_id
        deps = trimmed.get(given)
        if deps is None:
            deps = tuple(sorted({ids[d] for d in given if d in ids}))
            if deps == given and all(a is b for a, b in zip(deps, given, strict=True)):
                deps = given  # already trimmed, and naming the operations' own ids
            trimmed[given] = deps
        if own in deps:
            deps = tuple(d for d in deps if d != own)
        if deps is not given:
            order[r] = Operation(own, op.kind, op.key, op.feishu_id, op.payload, op.changes,
                                 op.reason, deps, op.mirror, op.label)
        if not deps:
            heap.append(r)
            continue
        g = group_of.get(deps)
        if g is None:
            g = group_of[deps] = len(members)
            members.append([r])
            unplaced.append(len(deps))
            for d in deps:
                waiting_on.setdefault(rank[d], []).append(g)
        else:
            members[g].append(r)

    out: list[Operation] = []  # the heap starts ascending, so it already is one
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        r = pop(heap)
        out.append(order[r])
        for g in waiting_on.get(r, ()):
            unplaced[g] -= 1
            if not unplaced[g]:
                for c in members[g]:
                    push(heap, c)
    if len(out) != len(order):
        stuck = sorted(order[r].op_id for g, n in enumerate(unplaced) if n
                       for r in members[g])[:5]
        raise ValueError(f"dependency cycle among operations: {stuck}")
    return tuple(out)


BY_KEY = attrgetter("key")
"""An operation's key, to sort by."""


def _canonical_default(v: Any) -> Any:
    if isinstance(v, Mapping):
        return dict(v)
    return v.value if isinstance(v, enum.Enum) else str(v)


#: One encoder for every call: ``json.dumps`` with options builds a new one each time.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                              default=_canonical_default)


def _canonical_json(obj: Any) -> str:
    return _CANONICAL.encode(obj)


#: orjson's options for the canonical form: sorted keys; dataclasses and dates go to
#: ``_canonical_default`` as the standard encoder sends them to its ``default``.
_ORJSON_CANONICAL = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
                     | orjson.OPT_PASSTHROUGH_DATETIME)


def canonical_bytes(obj: Any) -> bytes:
    """``obj`` in the canonical JSON form, UTF-8: sorted object keys, no whitespace,
    non-ASCII as is, other mappings as objects, an enum member as its value, other
    values as ``str``, a float as the shortest text that reads back as it (NaN as
    ``null``) — for strings, ints and floats in ordinary notation what ``json.dumps``
    writes with those options. orjson writes it three times as fast (a first sync
    hashes 10⁵ operations); what it refuses (an int beyond 64 bits, a key that is not
    a string, a lone surrogate) takes the standard encoder."""
    try:
        return orjson.dumps(obj, default=_canonical_default, option=_ORJSON_CANONICAL)
    except orjson.JSONEncodeError:
        return _canonical_json(obj).encode("utf-8", "surrogatepass")
