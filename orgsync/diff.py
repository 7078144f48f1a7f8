"""diff(desired, current, policy) -> Plan.

Both sides are canonical (:mod:`orgsync.model`): ``desired`` is the validated
source, ``current`` what orgsync manages in Feishu. The result is a DAG of
operations whose dependencies encode the order Feishu accepts:

* a department is created after its parent; a department moves only after every
  moving ancestor of its *new* position has moved, so no intermediate tree has a
  cycle (when D moves under P, P's ancestor chain already is its desired chain,
  which cannot contain D);
* a new person is created with their manager link when the manager exists or
  arrives earlier in the plan (the create waits for the manager's): people are
  created top-down and most links cost no write of their own. The manager's Feishu
  id is fixed (the mirror's, or derived from the key), so a create's body — and its
  ``client_token`` — is the same when a crashed run is planned again;
* other manager links, and leader links, follow the rule of moves on the desired
  manager forest, in a second pass after the users they point at exist;
* members move out, and child departments go, before a department is deleted
  (leaf-first); a department that would still hold people or departments
  orgsync must keep is not deleted at all (a note says why);
* a value that must be unique (department name or order among siblings, user
  email or mobile) is taken only after the entity holding it now lets go.

Held-back records (validation errors) are left exactly as they are: no create,
no update, no delete. Nothing is planned when nothing changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import filterfalse
from typing import Any, Literal

from orgsync.custom_attrs import changes as nested_changes
from orgsync.feishu import schema
from orgsync.feishu.schema import KEEP_WHEN_UNSET, PROFILE_VALUES, ROOT, USER_VALUE_FIELDS
from orgsync.identity import feishu_department_id, feishu_user_id
from orgsync.model import CUSTOM_ATTRS, Department, Employee, Snapshot, Status
from orgsync.names import Names
from orgsync.operations import kinds
from orgsync.plan import CreatedChanges, FieldChange, Operation, OpKind, Plan, op_id, topological
from orgsync.source import Issue, SourceData
from orgsync.state import DirectoryState, Lifecycle, MirrorUser
from orgsync.validate import normalize_mobile

_SHOW_ROWS = 5  # held rows a note names before "and N more"
_ARRIVING = kinds(lambda s: s.arrives)


@dataclass(frozen=True, slots=True)
class DiffPolicy:
    """Lifecycle rules, scope and the clock the diff plans with.

    * ``leaver_action``: ``freeze`` (then delete after ``grace_days``) or ``delete``;
      deletes hand documents, calendar and chats to ``handover_to`` when set
      (an employee key), else to the leaver's manager;
    * ``resurrect_days``: a leaver deleted at most this long ago who returns is
      resurrected (Feishu allows 30 days), not created again;
    * ``prehire_days``: someone whose ``join_date`` is further away than this is
      not created yet;
    * ``protected_users`` / ``protected_departments``: keys never touched;
    * ``adopt``: employee key → ``user_id`` of an existing Feishu account that
      matched by email/mobile and is taken over instead of created;
    * ``rekeys``: new employee key → (old key, Feishu id before) of a person whose
      source id changed (see :mod:`orgsync.reconcile`; ``current`` already holds them
      under the new key and the Feishu id they will have): ``user.rekey`` comes first;
    * ``department_rekeys``: new department key → old key of a path-keyed department
      renamed (see :mod:`orgsync.renames`; ``current`` already holds it under the new
      key): ``department.rekey`` moves the ledger's row, then what changed is patched;
    * ``leavers_department``: where frozen leavers go when the source removes their
      department (else the nearest ancestor it keeps), so the department can go;
    * ``hold_leavers``: rows held back that match nobody for sure; while there are any,
      nobody is frozen or deleted as a leaver (a note names the rows);
    * ``adopt_departments``: department key → the Feishu ``department_id`` it has now, for
      departments a takeover matched (:mod:`orgsync.takeover`); ``current`` holds them as
      Feishu does, under the id they will have: ``department.adopt`` comes first (setting
      the HR code as their id when the two differ), then the patches;
    * ``adopt_users``: employee key → the ``user_id`` a takeover found them under;
      ``current`` holds them as Feishu does, under the id they will have:
      ``user.adopt`` (recorded, nothing sent) and ``user.rekey`` come first, then what
      differs from the source, as for anyone managed;
    * ``rekey_adopted``: an adopted account's ``user_id`` becomes the HR id
      (``user.rekey`` after ``user.adopt``), so it never depends on email or mobile again;
    * ``applied``: on a full read (``current`` is what Feishu holds), the ledger's mirror
      of what orgsync applied: a field whose applied value is still the source's was
      changed in Feishu, and the operation's reason says so with the value found there;
    * ``create_only``: profile fields set when a person is created and never compared
      after (``sync.create_only``): a value changed in Feishu, or in the source, stays;
    * ``department_group_chat``: departments created by the plan ask Feishu for a
      department group chat (``create_group_chat: true`` in the create body; it is
      part of the body, so of the create's ``client_token``). Existing departments
      are never given one.
    """

    leaver_action: Literal["delete", "freeze"] = "delete"
    now: datetime | None = None
    grace_days: int = 14
    handover_to: str | None = None
    resurrect_days: int = 30
    prehire_days: int = 7
    protected_users: frozenset[str] = frozenset()
    protected_departments: frozenset[str] = frozenset()
    adopt: Mapping[str, str] = field(default_factory=dict)
    department_group_chat: bool = False
    rekeys: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    hold_leavers: tuple[str, ...] = ()
    department_rekeys: Mapping[str, str] = field(default_factory=dict)
    leavers_department: str | None = None
    adopt_departments: Mapping[str, str] = field(default_factory=dict)
    adopt_users: Mapping[str, str] = field(default_factory=dict)
    rekey_adopted: bool = False
    applied: DirectoryState | None = None
    create_only: frozenset[str] = frozenset()

    def clock(self) -> datetime:
        """The planning time (now when unset)."""
        return self.now or datetime.now(UTC)


@dataclass(slots=True)
class _Builder:
    desired: SourceData
    current: DirectoryState
    policy: DiffPolicy
    live: dict[str, MirrorUser]  # current.live_users(), computed once
    names: Names  # for reasons that name departments, people and what Feishu holds
    ops: dict[str, Operation] = field(default_factory=dict)
    soft: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    notes: list[str] = field(default_factory=list)
    taken: set[str] | None = None  # managed departments' Feishu ids, built when first needed

    # ---- ids -------------------------------------------------------------
    def dept_fid(self, key: str | None) -> str:
        if key is None:
            return ROOT
        cur = self.current.departments.get(key)
        if cur:
            return cur.feishu_id
        fid = feishu_department_id(key)
        if self.taken is None:
            self.taken = {m.feishu_id for m in self.current.departments.values()}
        n = 0
        while fid in self.taken:
            # A renamed path-keyed department kept the id its old path gave it: a new
            # department with that old path takes another (finite: ``taken`` is).
            n += 1
            fid = feishu_department_id(f"{key}#{n}")
        return fid

    def user_fid(self, key: str) -> str:
        cur = self.current.users.get(key)
        if cur:
            return cur.feishu_id
        adopted = self.policy.adopt.get(key)
        return adopted if adopted and not self.policy.rekey_adopted else feishu_user_id(key)

    def add(self, op: Operation) -> None:
        self.ops[op.op_id] = op


def diff(desired: SourceData, current: DirectoryState, policy: DiffPolicy | None = None) -> Plan:
    """Plan the operations that turn ``current`` into ``desired``.

    Deterministic: equal inputs give an equal plan (operations, order, plan id).
    """
    policy = policy or DiffPolicy()
    names = Names(desired.snapshot, current)  # pre-hires deferred below keep their names
    live = current.live_users()
    desired = _kept_links(_deferred_prehires(desired, current, policy, live), current, live)
    b = _Builder(desired, current, policy, live, names)
    b.desired = _without_protected(b.desired, b.policy, b.notes)
    _plan_departments(b)
    _plan_users(b)
    _plan_releases(b)
    _plan_department_deletes(b)
    if not any(b.soft.values()):
        # Nothing waits for a unique value (a first sync): the builder hands its operations
        # over as topological() takes them, so it never holds a second copy of 10⁵ of them.
        ordered = topological(_handed_over(b.ops))
        return Plan(operations=ordered, issues=tuple(b.desired.issues), notes=tuple(b.notes),
                    names=names)
    ops = list(b.ops.values())
    # topological() sorts and trims the dependencies: only the few operations that wait
    # for a unique value are copied here.
    soft = [_with_deps(op, (*op.depends_on, *waits)) if (waits := b.soft.get(op.op_id)) else op
            for op in ops]
    try:
        ordered = topological(soft)
    except ValueError:
        # Two entities swap a unique value (names, orders, emails): no order of
        # single PATCHes avoids a transient clash. Apply what can be applied; the
        # clashing write fails with Feishu's code and the next run completes it.
        b.notes.append("unique values are swapped between entities; a second run may be needed")
        ordered = topological(ops)
    return Plan(operations=ordered, issues=tuple(b.desired.issues), notes=tuple(b.notes),
                names=names)


def _handed_over(ops: dict[str, Operation]) -> Iterator[Operation]:
    """Every operation of ``ops``, each removed from it as it is yielded."""
    while ops:
        yield ops.popitem()[1]


def _with_deps(op: Operation, deps: Iterable[str]) -> Operation:
    uniq = tuple(sorted(set(deps) - {op.op_id}))
    if uniq == op.depends_on:
        return op
    return Operation(op.op_id, op.kind, op.key, op.feishu_id, op.payload, op.changes, op.reason,
                     uniq, op.mirror, op.label)


def _plan_releases(b: _Builder) -> None:
    """Managed people and departments the scope rules took out are released
    (``user.release``, ``department.release``): the ledger stops managing them, Feishu
    is not called. A department is released after the people in it."""
    for key, why in sorted(b.desired.out_of_scope_employees.items()):
        cur = b.current.users.get(key)
        if cur is None or cur.lifecycle is Lifecycle.DELETED:
            continue
        b.add(Operation(op_id(OpKind.USER_RELEASE, key), OpKind.USER_RELEASE, key,
                        cur.feishu_id, {}, (), f"{why}; no longer managed, left in Feishu as "
                        "it is", (), {}, cur.record.name))
    released = [op.op_id for op in b.ops.values() if op.kind is OpKind.USER_RELEASE]
    for key, why in sorted(b.desired.out_of_scope_departments.items()):
        dept = b.current.departments.get(key)
        if dept is not None:
            b.add(Operation(op_id(OpKind.DEPT_RELEASE, key), OpKind.DEPT_RELEASE, key,
                            dept.feishu_id, {}, (), f"{why}; no longer managed, left in "
                            "Feishu as it is", tuple(released), {}, dept.record.name))


# ---------------------------------------------------------------- departments


def _plan_departments(b: _Builder) -> None:
    desired = b.desired.snapshot.departments
    current = b.current.departments
    for key, old_key in sorted(b.policy.department_rekeys.items()):
        _add_department_rekey(b, key, old_key)
    for key, old in sorted(b.policy.adopt_departments.items()):
        if key in desired and key in current:
            _add_department_adopt(b, key, old)
    for key in sorted(desired):
        d = desired[key]
        fid = b.dept_fid(key)
        cur = current.get(key)
        if cur is None:
            body = schema.department_create_body(d, fid, b.dept_fid(d.parent_key))
            changes = tuple(CreatedChanges(d.fields()))
            # Feishu makes the main leader the chat's owner: with a leader, the chat
            # is asked for with the leader link (below), once the leader exists.
            chat_with_leader = b.policy.department_group_chat and d.leader_key is not None
            if b.policy.department_group_chat and not chat_with_leader:
                body["create_group_chat"] = True
                changes += (FieldChange("create_group_chat", None, True),)
            # Leaders are linked in a second pass, so a create's body (and its
            # client_token) depends on the source and the policy alone and replays
            # after a crash.
            mirror = {**d.fields(), **_NO_LEADERS}
            b.add(Operation(op_id(OpKind.DEPT_CREATE, key), OpKind.DEPT_CREATE, key, fid, body,
                            changes, "new in source", (), mirror, d.name))
            if d.leader_key or d.hrbp_keys:
                _add_set_leader(b, d, Department(key=key, name=d.name),
                                group_chat=chat_with_leader)
            continue

        c = cur.record
        changed = [f for f in ("name", "en_name", "order", "parent_key")
                   if f not in cur.unknown and _differs(f, getattr(c, f), getattr(d, f))]
        if changed:
            kind = OpKind.DEPT_MOVE if "parent_key" in changed else OpKind.DEPT_UPDATE
            changes = tuple(FieldChange(f, getattr(c, f), getattr(d, f)) for f in changed)
            reason = _because(b, "department", key, changes, d.fields(), (
                f"moved from {b.names.path(c.parent_key)} to {b.names.path(d.parent_key)}"
                if kind is OpKind.DEPT_MOVE else
                f"renamed from {c.name}" if "name" in changed else "changed in source"))
            parent = b.dept_fid(d.parent_key) if "parent_key" in changed else None
            body = schema.department_patch_body(d, changed, parent)
            b.add(Operation(op_id(kind, key), kind, key, fid, body, changes, reason, (),
                            {f: getattr(d, f) for f in changed}, d.name))
        if any(f not in cur.unknown and _differs(f, getattr(c, f), getattr(d, f))
               for f in _LEADER_FIELDS):
            _add_set_leader(b, d, c, cur.unknown)

    # Dependencies need every op to exist first.
    cur_slot: dict[tuple[str | None, str], str] = {}
    cur_order: dict[tuple[str | None, int], str] = {}
    for k, m in current.items():
        cur_slot[(m.record.parent_key, m.record.name)] = k
        if m.record.order is not None:
            cur_order[(m.record.parent_key, m.record.order)] = k
    for key in sorted(desired):
        d = desired[key]
        for kind in (OpKind.DEPT_CREATE, OpKind.DEPT_MOVE, OpKind.DEPT_UPDATE):
            oid = op_id(kind, key)
            op = b.ops.get(oid)
            if op is None:
                continue
            deps = [oid for oid in (op_id(OpKind.DEPT_REKEY, key),) if oid in b.ops]
            deps += _adopted(b, key, *((d.parent_key,) if d.parent_key else ()))
            if kind is not OpKind.DEPT_UPDATE:
                anc = _nearest_moving_ancestor(b, d.parent_key)
                if anc:
                    deps.append(anc)
            b.ops[oid] = _with_deps(op, deps)
            for occupant in {cur_slot.get((d.parent_key, d.name)),
                             cur_order.get((d.parent_key, d.order)) if d.order is not None else None}:
                if occupant and occupant != key:
                    b.soft[oid].update(_dept_release_ops(b, occupant))


def _add_department_rekey(b: _Builder, key: str, old_key: str) -> None:
    """``old_key``'s department is ``key`` now (a rename in path mode): the ledger follows;
    its Feishu id stays, so no call is made."""
    cur = b.current.departments[key]
    parent = cur.record.parent_key
    renamed_parent = parent is not None and parent in b.policy.department_rekeys
    b.add(Operation(op_id(OpKind.DEPT_REKEY, key), OpKind.DEPT_REKEY, key, cur.feishu_id, {},
                    (FieldChange("key", old_key, key),),
                    "its path changed with its parent's" if renamed_parent else
                    "the same department renamed: most of its members are the same",
                    (), {"previous_key": old_key, "parent_key": parent}, cur.record.name))


def _add_department_adopt(b: _Builder, key: str, old: str) -> None:
    """Take over ``key``'s existing Feishu department (``old``): recorded as managed with the
    fields Feishu holds; its id becomes the one ``current`` names, when that differs."""
    cur = b.current.departments[key]
    rekey = cur.feishu_id != old
    b.add(Operation(op_id(OpKind.DEPT_ADOPT, key), OpKind.DEPT_ADOPT, key, old,
                    {"new_department_id": cur.feishu_id} if rekey else {},
                    (FieldChange("department_id", old, cur.feishu_id),) if rekey else (),
                    f"existing Feishu department {old} matched" + (
                        f"; its department_id becomes {cur.feishu_id}" if rekey else ""),
                    (), {**cur.record.fields(), "feishu_id": cur.feishu_id}, cur.record.name))


def _adopted(b: _Builder, *keys: str) -> list[str]:
    """The ``department.adopt`` operations of ``keys`` in the plan (their ids change)."""
    return [oid for k in keys if (oid := op_id(OpKind.DEPT_ADOPT, k)) in b.ops]


def _nearest_moving_ancestor(b: _Builder, parent_key: str | None) -> str | None:
    desired = b.desired.snapshot.departments
    k = parent_key
    while k is not None:
        for kind in (OpKind.DEPT_CREATE, OpKind.DEPT_MOVE):
            oid = op_id(kind, k)
            if oid in b.ops:
                return oid
        d = desired.get(k)
        k = d.parent_key if d else None
    return None


def _dept_release_ops(b: _Builder, key: str) -> list[str]:
    return [oid for oid in (op_id(OpKind.DEPT_UPDATE, key), op_id(OpKind.DEPT_MOVE, key),
                            op_id(OpKind.DEPT_DELETE, key)) if oid in b.ops]


_LEADER_FIELDS = ("leader_key", "deputy_leader_keys", "hrbp_keys")
_NO_LEADERS: Mapping[str, Any] = {"leader_key": None, "deputy_leader_keys": [], "hrbp_keys": []}


def _add_set_leader(b: _Builder, d: Department, old: Department,
                    unknown: AbstractSet[str] = frozenset(), *, group_chat: bool = False) -> None:
    """Link ``d``'s leaders and HRBPs where they differ from ``old``'s (leaders: the main
    one and the deputies, one list in Feishu); ``group_chat``: also ask for the department
    chat (a new department)."""
    new = d.leader_key
    changed = [f for f in _LEADER_FIELDS
               if f not in unknown and _differs(f, getattr(old, f), getattr(d, f))]
    changes = tuple(FieldChange(f, _plain(getattr(old, f)), _plain(getattr(d, f)))
                    for f in changed)
    body: dict[str, Any] = {}
    if "leader_key" in changed or "deputy_leader_keys" in changed:
        body.update(schema.leader_body(b.user_fid(new) if new else None,
                                       [b.user_fid(k) for k in d.deputy_leader_keys]))
    if "hrbp_keys" in changed:
        body.update(schema.hrbp_body([b.user_fid(k) for k in d.hrbp_keys]))
    if group_chat:
        body["create_group_chat"] = True
        changes += (FieldChange("create_group_chat", None, True),)
    deps = [oid for oid in (op_id(OpKind.DEPT_CREATE, d.key), op_id(OpKind.DEPT_REKEY, d.key),
                            op_id(OpKind.DEPT_ADOPT, d.key))
            if oid in b.ops]
    for person in (new, *d.deputy_leader_keys, *d.hrbp_keys):
        if person:
            deps.extend(_arrival(person))  # the ones not in the plan are dropped
    b.add(Operation(op_id(OpKind.DEPT_SET_LEADER, d.key), OpKind.DEPT_SET_LEADER, d.key,
                    b.dept_fid(d.key), body, changes,
                    _because(b, "department", d.key, changes, d.fields(),
                             "leader changed in source" if "leader_key" in changed else
                             "leaders or HRBPs changed in source"),
                    tuple(deps), {f: _plain(getattr(d, f)) for f in changed}, d.name))


def _plain(value: Any) -> Any:
    """A field value as the mirror and plan hold it (a tuple of keys as a list)."""
    return list(value) if isinstance(value, tuple) else value


def _plan_department_deletes(b: _Builder) -> None:
    desired = b.desired.snapshot.departments
    held = b.desired.held_departments
    current = b.current.departments
    gone = {k for k in current if k not in desired and k not in held}
    if not gone:
        return
    _move_frozen_leavers_out(b, gone)
    children: dict[str, list[str]] = defaultdict(list)
    for k, m in current.items():
        if m.record.parent_key is not None:
            children[m.record.parent_key].append(k)
    members: dict[str, list[str]] = defaultdict(list)
    for uk, u in b.live.items():
        for dk in u.record.department_keys:
            members[dk].append(uk)

    blocked: dict[str, str] = {}

    def blocker(k: str) -> str | None:
        if k in blocked:
            return blocked[k]
        why: str | None = None
        for ck in sorted(children.get(k, ())):
            if ck in gone:
                if blocker(ck):
                    why = f"sub-department {ck} must stay"
            elif (op_id(OpKind.DEPT_MOVE, ck) not in b.ops) and (ck in desired or ck in held):
                why = f"sub-department {ck} stays in it"
            if why:
                break
        if not why:
            for uk in sorted(members.get(k, ())):
                leaving = op_id(OpKind.USER_DELETE, uk) in b.ops
                moving = op_id(OpKind.USER_MOVE, uk) in b.ops
                if not (leaving or moving):
                    why = f"member {uk} stays in it"
                    break
        blocked[k] = why or ""
        return why

    for k in sorted(gone):
        why = blocker(k)
        if why:
            b.notes.append(f"department {k} not deleted: {why}")
            continue
        deps = [op_id(OpKind.DEPT_DELETE, ck) for ck in children.get(k, ()) if ck in gone]
        deps += [op_id(OpKind.DEPT_MOVE, ck) for ck in children.get(k, ())
                 if op_id(OpKind.DEPT_MOVE, ck) in b.ops]
        for uk in members.get(k, ()):
            for kind in (OpKind.USER_MOVE, OpKind.USER_DELETE):
                if op_id(kind, uk) in b.ops:
                    deps.append(op_id(kind, uk))
        c = current[k].record
        b.add(Operation(op_id(OpKind.DEPT_DELETE, k), OpKind.DEPT_DELETE, k, current[k].feishu_id,
                        {}, _changes_to_none(c.fields()), "no longer in source", tuple(deps), None,
                        c.name))


def _move_frozen_leavers_out(b: _Builder, gone: set[str]) -> None:
    """Frozen leavers in a department the source removed move out of it (to
    ``leavers_department``, else to its nearest ancestor the source keeps), so the
    department goes in this run instead of at the end of their grace period.

    Only people frozen as leavers, with no other operation in the plan, are moved:
    anyone the source holds (active or held back) keeps their departments, and such a
    department stays (:func:`_plan_department_deletes` says why). While held rows may
    be any leaver (``hold_leavers``), nobody is moved either.
    """
    if b.policy.hold_leavers:
        return
    people = b.desired.snapshot.employees
    held = b.desired.held_employees
    current = b.current.departments
    target = b.policy.leavers_department
    if target is not None and target not in b.desired.snapshot.departments:
        target = None
        if any(u.lifecycle is Lifecycle.FROZEN for u in b.live.values()):
            b.notes.append(f"lifecycle.leavers_department {b.policy.leavers_department} is not "
                           "a department in the source; frozen leavers go to the nearest "
                           "department kept instead")

    def kept_ancestor(dk: str) -> str | None:
        seen: set[str] = set()
        k: str | None = dk
        while k is not None and k in gone and k not in seen:
            seen.add(k)
            k = current[k].record.parent_key if k in current else None
        return k if k not in gone else None

    for uk, u in sorted(b.live.items()):
        keys = u.record.department_keys
        if u.lifecycle is not Lifecycle.FROZEN or not any(dk in gone for dk in keys):
            continue
        e = people.get(uk)
        if uk in held or (e is not None and e.status is Status.ACTIVE) or any(
                op_id(kind, uk) in b.ops for kind in (OpKind.USER_DELETE, OpKind.USER_MOVE,
                                                      OpKind.USER_UNFREEZE)):
            continue
        moved: list[str] = []
        for dk in keys:
            to = dk if dk not in gone else target or kept_ancestor(dk)
            if to is None:
                break  # nowhere to go: the department stays until their grace period ends
            if to not in moved:
                moved.append(to)
        else:
            new_fields = {**u.record.fields(), "department_keys": moved}
            left = ", ".join(dk for dk in keys if dk in gone)
            b.add(Operation(
                op_id(OpKind.USER_MOVE, uk), OpKind.USER_MOVE, uk, u.feishu_id,
                schema.user_patch_body(new_fields, ["department_keys"],
                                       [b.dept_fid(dk) for dk in moved]),
                (FieldChange("department_keys", list(keys), moved),),
                f"frozen leaver moved out of {left}, which is no longer in source",
                tuple(oid for dk in moved if (oid := op_id(OpKind.DEPT_CREATE, dk)) in b.ops),
                {"department_keys": moved}, u.record.name))


# ---------------------------------------------------------------------- users


def _compared(b: _Builder) -> tuple[str, ...]:
    """The user value fields a diff compares: the base ones and the profile fields the
    source provides (the others are not orgsync's to write, see ``SourceData``)."""
    managed = b.desired.profile_fields - b.policy.create_only
    return (*USER_VALUE_FIELDS, *(f for f in PROFILE_VALUES if f in managed))


_DOTTED = "dotted_line_manager_keys"


def _dotted(e: Employee) -> list[str]:
    return list(e.profile.get(_DOTTED) or ())


def _plan_users(b: _Builder) -> None:
    snap = b.desired.snapshot
    active = snap.active_employees()
    held = b.desired.held_employees
    live = b.live

    # Most of a large org is unchanged: an active person whose record is the one
    # applied (often the very object, see Ledger.load_state) needs nothing.
    active_state = Lifecycle.ACTIVE  # a local for the 100k-row filter
    touched = sorted(k for k, e in active.items()
                     if (cur := live.get(k)) is None or cur.lifecycle is not active_state
                     or (cur.record is not e and cur.record != e))
    compared = _compared(b)
    for key, (old_key, old_fid) in sorted(b.policy.rekeys.items()):
        _add_rekey(b, key, old_key, old_fid)
    for key, old in sorted(b.policy.adopt_users.items()):
        if key in active and (cur_user := live.get(key)) is not None:
            _add_user_adopt(b, key, old, cur_user)
    inlined = _inlined_managers(b, active, touched)
    arriving_in: dict[tuple[str, ...], tuple[str, ...]] = {}
    # Those and a manager's arrival: one tuple per team (topological() trims each once).
    waits_for: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = {}
    for key in touched:
        e = active[key]
        cur = live.get(key)
        fid = b.user_fid(key)
        new_fields = e.fields()
        # One tuple per set of departments: a first sync's 10⁵ people share 10³ of them.
        dept_deps = arriving_in.get(e.department_keys)
        if dept_deps is None:
            dept_deps = arriving_in[e.department_keys] = tuple(
                [op_id(kind, dk) for dk in e.department_keys
                 for kind in (OpKind.DEPT_CREATE, OpKind.DEPT_ADOPT)])
        if key in b.policy.rekeys or key in b.policy.adopt_users:
            dept_deps = (*dept_deps, op_id(OpKind.USER_REKEY, key), op_id(OpKind.USER_ADOPT, key))
        gone = b.current.users.get(key)
        if cur is None and gone is not None and _resurrectable(gone, b.policy):
            _plan_rehire(b, e, gone)
            continue
        if cur is None:
            # A new person: created, or an existing account matched by email/mobile
            # taken over (patched; its user_id stays); either way with the manager link
            # when it can be inlined.
            adopt = key in b.policy.adopt
            manager = e.manager_key if key in inlined else None
            body = schema.user_create_body(new_fields,
                                           [b.dept_fid(dk) for dk in e.department_keys],
                                           user_id=None if adopt else fid,
                                           catalogs=b.desired.catalogs,
                                           manager_id=b.user_fid(manager) if manager else None,
                                           attrs=b.desired.custom_attrs)
            kind = OpKind.USER_ADOPT if adopt else OpKind.USER_CREATE
            had = b.policy.adopt[key] if adopt else fid
            # The mirror is the record but the links made later (the fields, changed in
            # place: they are this person's own copy); the changes are made from it when
            # read, with those links shown.
            also = {k: v for k in ("manager_key", _DOTTED)
                    if (v := new_fields.get(k)) is not None and (k == _DOTTED or not manager)}
            mirror = new_fields
            mirror[_DOTTED] = None
            if not manager:
                mirror["manager_key"] = None
            b.add(Operation(op_id(kind, key), kind, key, had, body,
                            CreatedChanges(mirror, "status", also or None),
                            ("back in scope: the account released earlier is managed again"
                             if key in b.current.released else
                             f"existing Feishu user {had} matched") if adopt
                            else "new in source",
                            _waits(waits_for, dept_deps, manager) if manager else dept_deps,
                            mirror, e.name))
            if adopt and had != fid:
                _add_rekey(b, key, key, had, f"adopted; its user_id becomes {fid}",
                           (op_id(kind, key),))
            if e.manager_key and not manager:
                _add_set_manager(b, e, None, "new hire")
            elif _dotted(e):
                # the manager is linked in the create; the dotted lines follow in the
                # second pass (they may point at people created later)
                _add_set_manager(b, e, None, "new hire", unknown=frozenset({"manager_key"}))
        else:
            old_fields = cur.record.fields()
            # A field Feishu did not return (no read permission) is unknown: no change.
            changed = [f for f in (*compared, "department_keys")
                       if f not in cur.unknown
                       and _differs(f, old_fields.get(f), new_fields.get(f))]
            if changed:
                # orders (the user's place) go with department_ids, at the same 1 QPS
                kind = OpKind.USER_MOVE if {"department_keys", "user_order"} & set(changed) \
                    else OpKind.USER_UPDATE
                body = schema.user_patch_body(new_fields, changed, [
                    b.dept_fid(dk) for dk in e.department_keys] if kind is OpKind.USER_MOVE else None,
                    b.desired.catalogs, b.desired.custom_attrs)
                changes = _field_changes(changed, old_fields, new_fields)
                reason = _because(b, "user", key, changes, new_fields,
                                  "moved departments" if "department_keys" in changed
                                  else "changed in source")
                b.add(Operation(op_id(kind, key), kind, key, fid, body, changes, reason,
                                dept_deps, {f: new_fields.get(f) for f in changed}, e.name))
            links = _manager_links(b, e, cur.record, cur.unknown)
            if links:
                was = cur.record.manager_key
                left = was is not None and was not in active and was not in held
                _add_set_manager(b, e, cur.record, _because(
                    b, "user", key, links, new_fields,
                    f"manager {b.names.person(was)} left" if left
                    else "manager changed in source" if links[0].field == "manager_key"
                    else "dotted-line managers changed in source"), cur.unknown)
            if cur.lifecycle is Lifecycle.FROZEN:
                b.add(Operation(op_id(OpKind.USER_UNFREEZE, key), OpKind.USER_UNFREEZE, key, fid,
                                schema.frozen_body(False), (FieldChange("status", "frozen", "active"),),
                                "active in source", _arrival(key), {}, e.name))

    _order_manager_links(b, active)

    # Who reports to whom and who leads what, indexed once: a leaver's links are
    # then found in O(1) instead of by a scan of the whole org per leaver. Only the
    # reports with an operation matter (a leaver waits for their new manager link),
    # and only touched people have one.
    leavers = sorted(k for k in live if k not in active and k not in held)
    if leavers and b.policy.hold_leavers:
        rows = b.policy.hold_leavers
        b.notes.append(
            f"{len(leavers)} leaver(s) left as they are: {len(rows)} row(s) held back match "
            "nobody orgsync manages and have no usable id, so any leaver may be one of them ("
            + "; ".join(rows[:_SHOW_ROWS]) + (f"; and {len(rows) - _SHOW_ROWS} more"
                                              if len(rows) > _SHOW_ROWS else "")
            + "). Fix those rows and run again.")
        leavers = []
    reports: dict[str, list[str]] = defaultdict(list)
    led: dict[str, list[str]] = defaultdict(list)
    if leavers:
        leaving = set(leavers)
        for uk in touched:
            u = live.get(uk)
            if u is None:
                continue
            for boss in leaving.intersection((u.record.manager_key or "", *_dotted(u.record))):
                reports[boss].append(uk)
        for dk, d in b.current.departments.items():
            r = d.record
            for person in leaving.intersection((r.leader_key or "", *r.deputy_leader_keys,
                                                *r.hrbp_keys)):
                led[person].append(dk)
    for key in leavers:
        _plan_leaver(b, key, live[key], active, "terminated in source"
                     if key in snap.employees else "absent from source",
                     reports.get(key, ()), led.get(key, ()))

    # Unique values held by someone else right now: wait for them to let go. Only a
    # holder with an operation can let go, and only touched people and leavers have
    # one (an unchanged holder would be a duplicate in the source, held by validation).
    cur_email: dict[str, str] = {}
    cur_mobile: dict[str, str] = {}
    if touched:
        for k in (*touched, *leavers):
            u = live.get(k)
            if u is None:
                continue
            if u.record.email:
                cur_email[u.record.email.lower()] = k
            if u.record.mobile:
                cur_mobile[u.record.mobile] = k
    for key in touched if cur_email or cur_mobile else ():  # none held on a first sync
        e = active[key]
        for value, index in ((e.email.lower() if e.email else None, cur_email),
                             (e.mobile, cur_mobile)):
            occupant = index.get(value) if value else None
            if not occupant or occupant == key:
                continue
            release = [oid for oid in (op_id(OpKind.USER_UPDATE, occupant),
                                       op_id(OpKind.USER_MOVE, occupant),
                                       op_id(OpKind.USER_DELETE, occupant)) if oid in b.ops]
            for kind in (OpKind.USER_CREATE, OpKind.USER_MOVE, OpKind.USER_UPDATE):
                if op_id(kind, key) in b.ops:
                    b.soft[op_id(kind, key)].update(release)


def _inlined_managers(b: _Builder, active: Mapping[str, Employee],
                      touched: Iterable[str]) -> set[str]:
    """The new people whose ``user.create`` (or adoption by email/mobile: the PATCH of an
    account found, e.g. one an interrupted run created) carries their manager link.

    A link is inlined when the manager exists (live) or arrives in this plan (the
    write then waits for the manager's arrival). People rehired are linked in the
    second pass. One link of each cycle among the inlined ones — the member with the
    smallest key — goes to the second pass too (validation holds manager cycles back,
    so this is a defence: the DAG stays acyclic).
    """
    live = b.live
    inline = {k for k in touched
              if k not in live
              and (m := active[k].manager_key) is not None and (m in live or m in active)
              and not ((gone := b.current.users.get(k)) is not None
                       and _resurrectable(gone, b.policy))}
    # A walk up each chain of inlined links: state 0 on the current path, 1 finished.
    state: dict[str, int] = {}
    for start in sorted(inline):
        path: list[str] = []
        k: str | None = start
        while k is not None and k in inline and k not in state:
            state[k] = 0
            path.append(k)
            k = active[k].manager_key
        if k is not None and state.get(k) == 0:
            inline.discard(min(path[path.index(k):]))
        for p in path:
            state[p] = 1
    return inline


def _add_user_adopt(b: _Builder, key: str, old: str, cur: MirrorUser) -> None:
    """Take over ``key``'s account (``old``): recorded as managed with the fields Feishu
    holds (nothing is sent); its user_id becomes the one ``current`` names, when it differs."""
    adopt = op_id(OpKind.USER_ADOPT, key)
    b.add(Operation(adopt, OpKind.USER_ADOPT, key, old, {}, (),
                    f"existing Feishu user {old} matched", (), cur.record.fields(),
                    cur.record.name))
    if cur.feishu_id != old:
        _add_rekey(b, key, key, old, f"adopted; its user_id becomes {cur.feishu_id}", (adopt,))


def _manager_links(b: _Builder, e: Employee, old: Employee | None,
                   unknown: AbstractSet[str] = frozenset()) -> list[FieldChange]:
    """How ``e``'s manager and dotted-line managers (when the source provides them) differ
    from ``old``'s (``None``: a person not linked yet)."""
    out = []
    old_manager = old.manager_key if old is not None else None
    if old_manager != e.manager_key and "manager_key" not in unknown:
        out.append(FieldChange("manager_key", old_manager, e.manager_key))
    if _DOTTED in b.desired.profile_fields and _DOTTED not in unknown and (
            old is None or _DOTTED not in b.policy.create_only):
        was, now = (_dotted(old) if old is not None else []), _dotted(e)
        if was != now:
            out.append(FieldChange(_DOTTED, was or None, now or None))
    return out


def _add_set_manager(b: _Builder, e: Employee, old: Employee | None, reason: str,
                     unknown: AbstractSet[str] = frozenset()) -> None:
    """Link ``e`` to its manager and dotted-line managers where they differ from ``old``'s
    (one PATCH, in the second pass: every person linked to must exist first)."""
    changes = tuple(_manager_links(b, e, old, unknown))
    body: dict[str, Any] = {}
    deps = list(_arrival(e.key))
    for c in changes:
        if c.field == "manager_key":
            body.update(schema.manager_body(b.user_fid(c.new) if c.new else None))
        else:
            body.update(schema.dotted_line_body([b.user_fid(k) for k in c.new or ()]))
        for k in (c.new if isinstance(c.new, list) else [c.new] if c.new else []):
            deps.extend(_arrival(k))
    b.add(Operation(op_id(OpKind.USER_SET_MANAGER, e.key), OpKind.USER_SET_MANAGER, e.key,
                    b.user_fid(e.key), body, changes, reason, tuple(deps),
                    {c.field: c.new for c in changes}, e.name))


def _waits(known: dict[tuple[tuple[str, ...], str], tuple[str, ...]],
           deps: tuple[str, ...], manager: str) -> tuple[str, ...]:
    """``deps`` and ``manager``'s arrival, the same tuple for everyone with both."""
    found = known.get((deps, manager))
    if found is None:
        found = known[(deps, manager)] = (*deps, *_arrival(manager))
    return found


def _arrival(key: str) -> tuple[str, ...]:
    """The operations that may bring user ``key`` into existence (or to its Feishu id)
    in this plan."""
    return tuple([op_id(k, key) for k in _ARRIVING])


def _add_rekey(b: _Builder, key: str, old_key: str, old_fid: str, reason: str | None = None,
               deps: tuple[str, ...] = ()) -> None:
    """``old_key``'s person is ``key`` now: Feishu's user id follows (when orgsync set it).
    An adopted account is rekeyed under its own key (``old_key == key``) after ``deps``."""
    fid = b.user_fid(key)
    e = b.desired.snapshot.employees.get(key)
    b.add(Operation(op_id(OpKind.USER_REKEY, key), OpKind.USER_REKEY, key, old_fid,
                    {"new_user_id": fid} if fid != old_fid else {},
                    (FieldChange("key", old_key, key),) if old_key != key else
                    (FieldChange("user_id", old_fid, fid),),
                    reason or (f"employee id changed in source ({old_key} → {key}); the same "
                               "person" if old_key != key else f"its user_id becomes {fid}"),
                    deps, {"previous_key": old_key, "feishu_id": fid},
                    e.name if e is not None else key))


def _order_manager_links(b: _Builder, active: Mapping[str, Employee]) -> None:
    """A manager link waits for the nearest link above it in the desired chain."""
    for oid, op in list(b.ops.items()):
        if op.kind is not OpKind.USER_SET_MANAGER:
            continue
        k = active[op.key].manager_key
        seen = {op.key}
        while k is not None and k not in seen:
            seen.add(k)
            above = op_id(OpKind.USER_SET_MANAGER, k)
            if above in b.ops:
                b.ops[oid] = _with_deps(op, (*op.depends_on, above))
                break
            m = active.get(k)
            k = m.manager_key if m else None


def _plan_leaver(b: _Builder, key: str, cur: MirrorUser, active: Mapping[str, Employee],
                 reason: str, reports: Iterable[str], led: Iterable[str]) -> None:
    """``reports``: live users whose current manager is ``key``; ``led``: departments it leads."""
    deps = [oid for uk in reports
            for oid in (op_id(OpKind.USER_SET_MANAGER, uk),) if oid in b.ops]
    deps += [oid for dk in led
             for oid in (op_id(OpKind.DEPT_SET_LEADER, dk),) if oid in b.ops]
    rec = cur.record
    if b.policy.leaver_action == "freeze":
        if cur.lifecycle is not Lifecycle.FROZEN:
            b.add(Operation(op_id(OpKind.USER_FREEZE, key), OpKind.USER_FREEZE, key,
                            cur.feishu_id, schema.frozen_body(True),
                            (FieldChange("status", "active", "frozen"),), reason, tuple(deps), {},
                            rec.name))
            return
        frozen_at = cur.frozen_at
        if frozen_at is None:
            return
        due = frozen_at + timedelta(days=b.policy.grace_days)
        if b.policy.clock() < due:
            return
        reason = f"grace period over (frozen since {frozen_at:%Y-%m-%d})"
    handover: dict[str, Any] = {}
    configured = b.policy.handover_to
    acceptor = (configured if configured in active and configured != key
                else rec.manager_key if rec.manager_key in active else None)
    if acceptor:
        a = b.user_fid(acceptor)
        deps += _arrival(acceptor)
        handover = {"docs_acceptor_user_id": a, "calendar_acceptor_user_id": a,
                    "department_chat_acceptor_user_id": a, "external_chat_acceptor_user_id": a}
    b.add(Operation(op_id(OpKind.USER_DELETE, key), OpKind.USER_DELETE, key, cur.feishu_id,
                    handover, _changes_to_none(_visible(rec.fields())), reason, tuple(deps), None,
                    rec.name))


def _resurrectable(gone: MirrorUser, policy: DiffPolicy) -> bool:
    if gone.lifecycle is not Lifecycle.DELETED or gone.deleted_at is None:
        return False
    return policy.clock() - gone.deleted_at <= timedelta(days=policy.resurrect_days)


def _plan_rehire(b: _Builder, e: Employee, gone: MirrorUser) -> None:
    """Resurrect a recent leaver, then patch what changed since they left."""
    key = e.key
    fid = gone.feishu_id
    depts = [b.dept_fid(dk) for dk in e.department_keys]
    dept_deps = [op_id(OpKind.DEPT_CREATE, dk) for dk in e.department_keys]
    res = op_id(OpKind.USER_RESURRECT, key)
    # "create_instead": the account made when Feishu will not resurrect (44029, 44028)
    b.add(Operation(res, OpKind.USER_RESURRECT, key, fid,
                    {**schema.resurrect_body(depts),
                     "create_instead": schema.user_create_body(e.fields(), depts, user_id=fid,
                                                               catalogs=b.desired.catalogs,
                                           attrs=b.desired.custom_attrs)},
                    (FieldChange("status", "deleted", "active"),),
                    f"rehired (left {gone.deleted_at:%Y-%m-%d})" if gone.deleted_at else "rehired",
                    tuple(dept_deps), {"department_keys": list(e.department_keys),
                                       "manager_key": None}, e.name))
    old_fields = {**gone.record.fields(), "department_keys": list(e.department_keys)}
    new_fields = e.fields()
    changed = [f for f in _compared(b) if _differs(f, old_fields.get(f), new_fields.get(f))]
    if changed:
        body = schema.user_patch_body(new_fields, changed, catalogs=b.desired.catalogs,
                                           attrs=b.desired.custom_attrs)
        b.add(Operation(op_id(OpKind.USER_UPDATE, key), OpKind.USER_UPDATE, key, fid, body,
                        _field_changes(changed, old_fields, new_fields),
                        "changed since they left", (res,), {f: new_fields.get(f) for f in changed},
                        e.name))
    if e.manager_key:
        op = Operation(op_id(OpKind.USER_SET_MANAGER, key), OpKind.USER_SET_MANAGER, key, fid,
                       schema.manager_body(b.user_fid(e.manager_key)),
                       (FieldChange("manager_key", None, e.manager_key),), "manager after rehire",
                       (res, *_arrival(e.manager_key)),
                       {"manager_key": e.manager_key}, e.name)
        b.add(op)


def _kept_links(desired: SourceData, current: DirectoryState,
                live: Mapping[str, MirrorUser]) -> SourceData:
    """Put back the links validation took out because they point at someone held back.

    A held person who exists in Feishu is only not updated: links to them stay
    (a new hire still gets that manager). One who does not exist yet cannot be
    linked to: the link is then left as it is in Feishu, never cleared.
    """
    if not desired.held_managers and not desired.held_leaders:
        return desired
    snap = desired.snapshot
    employees = dict(snap.employees)
    for key, manager in desired.held_managers.items():
        e = employees.get(key)
        if e is None:
            continue
        cur = live.get(key)
        target = manager if manager in live else (cur.record.manager_key if cur else None)
        employees[key] = replace(e, manager_key=target)
    departments = dict(snap.departments)
    for key, leader in desired.held_leaders.items():
        d = departments.get(key)
        if d is None:
            continue
        cur_d = current.departments.get(key)
        target = leader if leader in live else (cur_d.record.leader_key if cur_d else None)
        departments[key] = replace(d, leader_key=target)
    return replace(desired, snapshot=Snapshot(departments, employees))


def not_created_yet(employees: Mapping[str, Employee], live: Collection[str],
                    policy: DiffPolicy) -> set[str]:
    """Keys of people who start further than ``prehire_days`` ahead and do not exist yet:
    the plan leaves them out, and nothing is asked of Feishu about them."""
    horizon = policy.clock().date() + timedelta(days=policy.prehire_days)
    # the people not in Feishu first, in one C pass: only those few are looked at
    return {k for k in filterfalse(live.__contains__, employees)
            if (e := employees[k]).status is Status.ACTIVE and e.join_date is not None
            and e.join_date > horizon}


def _deferred_prehires(desired: SourceData, current: DirectoryState,
                       policy: DiffPolicy, live: Mapping[str, MirrorUser]) -> SourceData:
    """Leave out people who start too far ahead to be created yet.

    They are not leavers either (they were never created); links that point at
    them keep their current value until they exist.
    """
    snap = desired.snapshot
    later = not_created_yet(snap.employees, live, policy)
    if not later:
        return desired
    employees: dict[str, Employee] = {}
    for k, e in snap.employees.items():
        if k in later:
            continue
        if e.manager_key in later:
            cur = live.get(k)
            e = replace(e, manager_key=cur.record.manager_key if cur else None)
        employees[k] = e
    departments = {}
    for k, d in snap.departments.items():
        if d.leader_key in later:
            cur_d = current.departments.get(k)
            d = replace(d, leader_key=cur_d.record.leader_key if cur_d else None)
        departments[k] = d
    issues = list(desired.issues)
    for k in sorted(later):
        start = snap.employees[k].join_date
        assert start is not None
        issues.append(Issue("employee", k, "join_date",
                            f"starts {start.isoformat()}, account created "
                            f"{(start - timedelta(days=policy.prehire_days)).isoformat()}",
                            "warning", desired.where("employee", k), later=True))
    return replace(desired, snapshot=Snapshot(departments, employees), issues=issues,
                   held_employees=set(desired.held_employees) | later)


def _without_protected(desired: SourceData, policy: DiffPolicy, notes: list[str]) -> SourceData:
    """Protected keys are treated as held: never created, changed or deleted."""
    if not policy.protected_users and not policy.protected_departments:
        return desired
    for k in sorted(policy.protected_users):
        notes.append(f"user {k} is protected; left as it is")
    for k in sorted(policy.protected_departments):
        notes.append(f"department {k} is protected; left as it is")
    snap = desired.snapshot
    return replace(
        desired,
        snapshot=Snapshot(
            {k: d for k, d in snap.departments.items() if k not in policy.protected_departments},
            {k: e for k, e in snap.employees.items() if k not in policy.protected_users}),
        held_departments=set(desired.held_departments) | policy.protected_departments,
        held_employees=set(desired.held_employees) | policy.protected_users)


# -------------------------------------------------------------------- helpers


def _field_changes(changed: Iterable[str], old: Mapping[str, Any],
                   new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """The changes of ``changed`` fields; a nested value (the custom attributes) as one
    change per attribute (or part of one) that differs, ``custom_attrs.<name>``."""
    found: list[FieldChange] = []
    for f in changed:
        if f == CUSTOM_ATTRS:
            found.extend(FieldChange(f"{f}.{path}", was, now)
                         for path, was, now in nested_changes(old.get(f), new.get(f)))
        else:
            found.append(FieldChange(f, old.get(f), new.get(f)))
    return tuple(found)


def _because(b: _Builder, entity: Literal["department", "user"], key: str,
             changes: Iterable[FieldChange], new: Mapping[str, Any], reason: str) -> str:
    """``reason``, or what is true on a full read: a field whose applied value (the
    ledger's mirror) is still the source's was changed in Feishu, and the value found
    there is named."""
    applied = b.policy.applied
    m = None if applied is None else (
        applied.departments if entity == "department" else applied.users).get(key)
    if m is None:
        return reason
    was = m.record.fields()
    changes = tuple(changes)
    drift = [c for c in changes if c.field in was and not _differs(c.field, was[c.field],
                                                                      new.get(c.field))]
    if not drift:
        return reason
    found = "changed in Feishu (found there: " + ", ".join(
        # An email or mobile is only named: the change lists it (reasons go to the journal).
        b.names.label(c.field) if c.field in _MASKED else
        f"{b.names.label(c.field)} {b.names.value(c.field, c.old)}" for c in drift) + ")"
    return found if len(drift) == len(changes) else f"{reason}; {found}"



def _differs(field_name: str, old: Any, new: Any) -> bool:
    if new is None and field_name in KEEP_WHEN_UNSET:
        return False
    if isinstance(old, str) and isinstance(new, str) and field_name in _CANONICAL:
        # A mirror written before the connectors normalised (Zhang.Wei@X.com,
        # 13800138000) is the same value: no update for everyone once.
        canonical = _CANONICAL[field_name]
        return canonical(old) != canonical(new)
    if isinstance(old, tuple):
        old = list(old)
    if isinstance(new, tuple):
        new = list(new)
    return bool(old != new)


_MASKED = frozenset({"email", "mobile"})

_CANONICAL: Mapping[str, Callable[[str], str]] = {
    "email": str.lower, "mobile": normalize_mobile,
}


def _visible(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != "status"}


def _changes_to_none(fields: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(k, v, None) for k, v in sorted(fields.items()) if v not in (None, [], ""))
