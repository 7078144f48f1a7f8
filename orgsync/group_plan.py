"""The group part of a plan: managed groups and their members made to match the config.

Members are evaluated on the validated snapshot (:mod:`orgsync.groups`) and diffed against
the ledger's group mirror (:mod:`orgsync.group_mirror`): a group's creation (or adoption),
its rename, batches of at most 100 members added and removed, and a dropped group's members
removed before it is deleted. Never-harm rules:

* only people who exist in Feishu, or whom this plan creates or brings back, are added;
  people held back by validation and people frozen (or freezing in this plan) never are;
* a person held back keeps the memberships they have, and so does someone gone from the
  source whose freeze the plan holds back too;
* only managed groups are touched: created by orgsync, or adopted because a Feishu group
  already has the configured custom id or name (its managed members are read then, once).

Feishu is read only when a group is about to be created (one paged list of groups, and the
members of a group adopted), like departments. The mirror's member table is read only for a
group whose computed members' digest differs from the one applied, or that is dropped: an
unchanged group costs a digest.

A group the last apply left in step (:data:`IN_STEP`: every operation of that apply done,
nothing deferred, the same rule and department tree now) whose rule is
:attr:`~orgsync.groups.GroupSpec.local` is evaluated on the people whose verdict can have
changed since (:meth:`_Changed.of`) alone: its other members are as that apply left them.
An apply forgets the record before its first write, so a crash, a failed write or a
staged rollout leaves every group to the whole evaluation above.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from itertools import compress, filterfalse, repeat
from operator import attrgetter, is_not
from typing import TYPE_CHECKING, Any

from orgsync.config import Config, SafetyConfig
from orgsync.feishu import FeishuClient
from orgsync.feishu.endpoints import GROUP_MEMBER_BATCH
from orgsync.group_mirror import MirrorGroup, sorted_digest
from orgsync.groups import MAX_GROUP_MEMBERS, MAX_GROUPS, GroupsConfig, GroupSpec, Population, evaluate
from orgsync.ledger import Ledger
from orgsync.model import Department, Snapshot, Status
from orgsync.plan import FieldChange, Operation, OpKind, Plan, op_id, topological
from orgsync.safety import Gauge
from orgsync.source import Issue, SourceData
from orgsync.state import DirectoryState, Lifecycle

if TYPE_CHECKING:
    from orgsync.executor import ApplyResult

#: Operations that make a person exist (again) in Feishu: members wait for them.
_ARRIVING = (OpKind.USER_CREATE, OpKind.USER_ADOPT, OpKind.USER_RESURRECT, OpKind.USER_UNFREEZE,
             OpKind.USER_REKEY)
_LEAVING = (OpKind.USER_FREEZE, OpKind.USER_DELETE)
_NAMES_SHOWN = 20
IN_STEP = "groups.in_step"
"""The ledger's meta key for the groups the last apply left in step with their rules
(:func:`settled`)."""
_STATUS = attrgetter("status")
_LIFECYCLE = attrgetter("lifecycle")


@dataclass(slots=True)
class _People:
    """Who can be a member now (their Feishu user id) and the operation to wait for: the
    mirror's active users as this plan changes them, looked up per person (a plan that
    changes no group reads a handful of them, not 100k)."""

    state: DirectoryState
    snapshot: Snapshot
    now: dict[str, str | None]
    """The user ids this plan's operations give (arriving people) or take (None: leaving)."""
    arrived: dict[str, str]
    waits: dict[str, str]
    rekeyed: dict[str, str]
    """Old key → new key of the people whose key changes in this plan (their memberships
    follow in the ledger: no removal and re-adding)."""

    def user_id(self, key: str) -> str | None:
        """``key``'s Feishu user id if they can be a member now."""
        if key in self.now:
            return self.now[key]
        u = self.state.users.get(key)
        return u.feishu_id if u is not None and u.lifecycle is Lifecycle.ACTIVE else None

    def can_join(self, key: str, held: AbstractSet[str]) -> bool:
        """Whether ``key`` is among :meth:`eligible`'s people (one person's test)."""
        e = self.snapshot.employees.get(key)
        return e is not None and e.status is Status.ACTIVE and key not in held \
            and bool(self.user_id(key))

    def keeps(self, key: str, held: AbstractSet[str]) -> bool:
        """Whether ``key`` keeps the memberships they have: held back, or gone from the source
        while this plan leaves them be in Feishu (their freeze held back too, as when a row
        without a usable id may be them)."""
        if key in held:
            return True
        if key in self.snapshot.employees or key in self.now:
            return False
        u = self.state.users.get(key)
        return u is not None and u.lifecycle is Lifecycle.ACTIVE

    def known_id(self, key: str) -> str | None:
        """Any managed person's Feishu user id (for removals: frozen and leaving ones too)."""
        if key in self.arrived:
            return self.arrived[key]
        u = self.state.users.get(key)
        return u.feishu_id if u is not None else None

    def name(self, key: str) -> str:
        """``key``'s name, as the source has it now, else as applied."""
        if (e := self.snapshot.employees.get(key)) is not None:
            return e.name
        u = self.state.users.get(key)
        return u.record.name if u is not None else key

    def eligible(self, held: set[str]) -> list[str]:
        """The keys of the source's active employees who can be members now, but ``held``,
        in the source's order (usually sorted already: then cheap to sort); set operations
        and C passes, no step per person in Python."""
        users, employees, now = self.state.users, self.snapshot.employees, self.now
        inactive = compress(employees, map(is_not, map(_STATUS, employees.values()),
                                           repeat(Status.ACTIVE)))
        gone = compress(users, map(is_not, map(_LIFECYCLE, users.values()),
                                   repeat(Lifecycle.ACTIVE)))
        # the few who cannot be members, then everyone else: no 100k-key set is built
        out = held.union(inactive, (k for k, i in now.items() if not i),
                         (k for k in gone if not now.get(k)),
                         (employees.keys() - users.keys()) - now.keys())
        return list(filterfalse(out.__contains__, employees))

    def by_user_id(self) -> dict[str, str]:
        """User id → key of everyone who can be a member now."""
        found = {u.feishu_id: k for k, u in self.state.users.items()
                 if k not in self.now and u.lifecycle is Lifecycle.ACTIVE}
        found.update((i, k) for k, i in self.now.items() if i is not None)
        return found


def _people(data: SourceData, state: DirectoryState, plan: Plan) -> _People:
    now: dict[str, str | None] = {}
    arrived: dict[str, str] = {}
    waits: dict[str, str] = {}
    rekeyed: dict[str, str] = {}
    for op in plan.operations:
        if op.kind is OpKind.USER_REKEY and op.mirror and op.mirror.get("previous_key"):
            rekeyed[str(op.mirror["previous_key"])] = op.key
        if op.kind in _ARRIVING:
            now[op.key] = arrived[op.key] = str(op.payload.get("new_user_id") or op.feishu_id) \
                if op.kind is OpKind.USER_REKEY else op.feishu_id
            waits[op.key] = op.op_id
        elif op.kind in _LEAVING:
            now[op.key] = None
    return _People(state, data.snapshot, now, arrived, waits, rekeyed)


async def plan_groups(config: Config, ledger: Ledger, client: FeishuClient, data: SourceData,
                      state: DirectoryState, plan: Plan, *, full: bool = False) -> Plan:
    """``plan`` with the group operations (and issues) the ``groups:`` section asks for.

    ``full`` (``resync``, ``check``) also reads each managed group's members from Feishu: a
    member orgsync added that is missing there is added again. A person added by hand is
    left alone, even one orgsync manages whom the rule excludes: orgsync removes only the
    memberships it made, as it leaves an adopted group's other members (someone's access
    is never taken on a guess about why a human granted it)."""
    cfg = config.groups
    mirror = ledger.load_groups(members=False)
    if not cfg.define and not mirror:
        return plan
    people = _people(data, state, plan)
    held = data.held_employees
    builder = _Builder(people, mirror)
    changed: _Changed | None = None
    quick: dict[str, tuple[set[str], set[str], int]] = {}
    if mirror and not full:
        steady = in_step(ledger, data.snapshot.departments)
        changed = _Changed.of(ledger, data, state, plan, people, steady.held)
        quick = _in_step(cfg, data, people, changed, mirror, steady)
    population: Population | None = None
    feishu: list[dict[str, Any]] | None = None
    for spec in cfg.define:
        unread = [n for n in spec.source_groups if not data.groups.get(n)]
        if unread:
            builder.issue(spec, f"source group {', '.join(unread)} came back missing or empty: "
                                f"a failed read, not 'remove everyone'; the group is left as "
                                f"it is")
            continue
        if spec.key in quick:
            builder.rename(spec)
            builder.members(spec, *quick[spec.key])
            continue
        if population is None:  # the whole evaluation: only for a group that needs it
            population = Population(data.snapshot.employees, data.snapshot.departments,
                                    data.groups, keys=people.eligible(held))
        ids = spec.rule(population)
        if changed is not None and spec.key in mirror and len(ids) <= MAX_GROUP_MEMBERS:
            near = changed.members(population, spec.key, ids, mirror[spec.key].digest,
                                   people, held)
            if near is not None:  # the members as applied, and what changes
                builder.rename(spec)
                builder.members(spec, *near)
                continue
        desired = set(population.keys_of(ids))
        if spec.key in mirror:
            mirror[spec.key].members = ledger.group_members(spec.key)
        current = {people.rekeyed.get(k, k) for k in mirror[spec.key].members} \
            if spec.key in mirror else set()
        if full and spec.key in mirror:
            current -= await _missing(client, mirror[spec.key].feishu_id, current & desired,
                                      people)
        if len(desired) > MAX_GROUP_MEMBERS:
            builder.issue(spec, f"{len(desired)} members, over Feishu's {MAX_GROUP_MEMBERS} "
                                f"per group (42012): the group is left as it is")
            continue
        if spec.key not in mirror:
            if feishu is None:
                feishu = [g async for g in client.iter_groups()]
            adopted = await builder.adopt_or_create(client, spec, feishu)
            if adopted is None:
                continue
            current = adopted
        else:
            builder.rename(spec)
        desired.update(k for k in current if people.keeps(k, held))
        builder.members(spec, desired - current, current - desired, len(current))
    configured = {s.key for s in cfg.define}
    for key in sorted(mirror.keys() - configured):
        mirror[key].members = ledger.group_members(key)
        builder.drop(key)
    if not builder.ops and not builder.issues:
        return plan
    return replace(plan, operations=topological([*plan.operations, *builder.ops]),
                   issues=tuple(sorted((*plan.issues, *builder.issues),
                                       key=lambda i: i.sort_key())))


def _in_step(cfg: GroupsConfig, data: SourceData, people: _People, changed: _Changed,
             mirror: Mapping[str, MirrorGroup], steady: InStep
             ) -> dict[str, tuple[set[str], set[str], int]]:
    """(adds, removes, members as applied) of each group evaluated on the changed people
    alone: the :attr:`~orgsync.groups.GroupSpec.local` groups the last apply left in step
    (:data:`IN_STEP`) with the rule they have now, the department tree being the same."""
    specs = [s for s in cfg.define if s.local and s.key in mirror
             and steady.groups.get(s.key, ("", 0))[0] == s.source]
    if not specs:
        return {}
    held = data.held_employees
    snap = data.snapshot
    employees = snap.employees

    def bosses() -> set[str]:
        # Those of the changed people someone who can be a member reports to: one pass.
        mine, found = set(few.keys), set()
        for k, e in employees.items():
            if (m := e.manager_key) in mine and m not in found and people.can_join(k, held):
                found.add(m)
        return found
    few = Population(employees, snap.departments, data.groups,
                     keys=[k for k in changed.keys if people.can_join(k, held)],
                     manager_keys=bosses)
    out: dict[str, tuple[set[str], set[str], int]] = {}
    for s in specs:
        adds, removes = changed.edits(s.key, few.keys_of(s.rule(few)), people, held)
        of = steady.groups[s.key][1]
        if of - len(removes) + len(adds) <= MAX_GROUP_MEMBERS:  # else: evaluated whole
            out[s.key] = (adds, removes, of)
    return out


def tree_digest(departments: Mapping[str, Department]) -> str:
    """A digest of the department tree: each department's key and parent's key."""
    pairs = sorted((k, d.parent_key or "") for k, d in departments.items())
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class InStep:
    """What the last apply that did everything left (:func:`settled`)."""

    groups: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    """Group key → (its rule as written, its members as applied) of the groups in step."""
    held: frozenset[str] = frozenset()
    """The people held back then: they kept their memberships whatever their rule said, so
    the next plan evaluates them again (their record may look applied)."""


def in_step(ledger: Ledger, departments: Mapping[str, Department]) -> InStep:
    """The :data:`IN_STEP` record, if the last apply that did everything ran on this
    department tree; else an empty one (every group is evaluated whole)."""
    raw = ledger.get_meta(IN_STEP)
    try:
        record = json.loads(raw) if raw else {}
        if not isinstance(record, dict) or record.get("tree") != tree_digest(departments):
            return InStep()
        return InStep({str(k): (str(rule), int(size))
                       for k, (rule, size) in record["groups"].items()},
                      frozenset(str(k) for k in record["held"]))
    except (ValueError, TypeError, KeyError, AttributeError):  # not a record orgsync wrote
        return InStep()


def settled(ledger: Ledger, config: Config, plan: Plan, result: ApplyResult | None,
            departments: Mapping[str, Department]) -> str:
    """The :data:`IN_STEP` record an apply of ``plan`` leaves (``result``: what it did):
    every configured group the plan raised no issue about, with its rule as written, its
    members as applied, and the department tree — or none at all unless every operation
    was done and nothing was deferred (a person's record not applied may have moved their
    groups already)."""
    done = {r.op.op_id for r in result.results if r.ok} if result is not None else set()
    if plan.deferred or any(op.op_id not in done for op in plan.operations):
        return ""
    issues = {i.key for i in plan.issues if i.entity == "group"}
    held = {i.key for i in plan.issues if i.entity == "employee" and i.severity == "error"
            and i.key is not None}  # every person held back has an error of their own
    specs = [s for s in config.groups.define if s.key not in issues]
    return in_step_record(departments, specs, ledger.group_sizes([s.key for s in specs]),
                          held)


def in_step_record(departments: Mapping[str, Department], specs: Iterable[GroupSpec],
                   sizes: Mapping[str, int], held: Iterable[str] = ()) -> str:
    """The :data:`IN_STEP` record of ``specs`` in step on the tree of ``departments``, with
    ``sizes`` members as applied (by group key; none when absent) and ``held`` people."""
    return json.dumps({"tree": tree_digest(departments),
                       "groups": {s.key: [s.source, sizes.get(s.key, 0)] for s in specs},
                       "held": sorted(set(held))}, ensure_ascii=False, sort_keys=True)


@dataclass(slots=True)
class _Changed:
    """The people whose memberships may have changed since the last apply, with their
    memberships as applied: a group whose digest differs is first taken to differ in them
    only, which its digest confirms (or the group's whole member list is read); a group in
    step (:func:`_in_step`) is evaluated on them alone."""

    keys: set[str]
    applied: dict[str, set[str]]
    rekeyed: dict[str, str]
    ids: frozenset[int] | None = None
    """:attr:`keys` in the whole population (:meth:`members` numbers them once)."""
    digested: dict[tuple[frozenset[int], frozenset[str], frozenset[str]], tuple[str, int]] = \
        field(default_factory=dict)
    """(members, less, plus) → the digest and size of those members as applied."""

    @classmethod
    def of(cls, ledger: Ledger, data: SourceData, state: DirectoryState, plan: Plan,
           people: _People, held_before: AbstractSet[str]) -> _Changed:
        """Everyone with an operation in ``plan`` (a rekey's old key too), held now or at
        the last apply (``held_before``), or whose record differs from the one applied; and
        their managers before and after (someone's last report leaving makes them no
        manager). Someone gone from the source without an operation keeps their memberships
        (:meth:`_People.keeps`): nobody else's change touches them. Whoever else a group
        gains or loses (a department moved, a source group changed) makes its digest differ:
        then the group is read whole."""
        employees, users = data.snapshot.employees, state.users
        keys = {op.key for op in plan.operations} | people.rekeyed.keys() | \
            data.held_employees | held_before
        keys.update(filterfalse(state.unchanged.__contains__, employees))
        for key in list(keys):
            if (e := employees.get(key)) is not None and e.manager_key:
                keys.add(e.manager_key)
            if (u := users.get(key)) is not None and u.record.manager_key:
                keys.add(u.record.manager_key)
        return cls(keys, ledger.group_memberships(keys) if keys else {}, people.rekeyed)

    def edits(self, group: str, now: Iterable[str], people: _People, held: AbstractSet[str]
              ) -> tuple[set[str], set[str]]:
        """(adds, removes) of ``group`` when the changed people in it now are ``now`` (who
        :meth:`_People.keeps` their memberships keeps them)."""
        current = {self.rekeyed.get(k, k) for k in self.applied.get(group, set())}
        desired = set(now)
        desired.update(k for k in current if people.keeps(k, held))
        return desired - current, current - desired

    def members(self, population: Population, group: str, ids: frozenset[int], digest: str,
                people: _People, held: AbstractSet[str]
                ) -> tuple[set[str], set[str], int] | None:
        """(adds, removes, members as applied) for ``group`` now holding ``ids``, if the
        members as applied are the unchanged people among ``ids`` and the changed people
        the ledger has in the group — which ``digest`` (as applied) confirms; else None."""
        if self.ids is None:
            self.ids = population.ids(self.keys)
        changed = self.ids.intersection(ids)  # (iterates the smaller set)
        now = population.keys_of(changed)
        near = self.applied.get(group, set())
        # As applied = these members, less the changed people the group no longer holds,
        # plus those it held; groups whose rules give the same members (the benchmark's 40
        # city groups hold 6 distinct sets) are digested once.
        drop, add = now - near, frozenset(near - now)
        applied = self.digested.get((ids, drop, add))
        if applied is None:
            applied = self.digested[ids, drop, add] = self._digest(population, ids, drop, add)
        if applied[0] != digest:
            return None
        return (*self.edits(group, now, people, held), applied[1])

    @staticmethod
    def _digest(population: Population, ids: frozenset[int], drop: frozenset[str],
                add: frozenset[str]) -> tuple[str, int]:
        """The digest and size of the keys at ``ids`` less ``drop`` plus ``add``: a few edits
        of one sorted run."""
        order = sorted(ids)
        for i in sorted(population.ids(drop), reverse=True):
            del order[bisect_left(order, i)]
        in_order = population.in_order(order, ordered=True)
        if add:
            in_order = list(in_order)
            for k in sorted(add):
                insort(in_order, k)
        return sorted_digest(in_order), len(in_order)


async def _missing(client: FeishuClient, fid: str, applied: set[str],
                   people: _People) -> set[str]:
    """The ``applied`` members with a Feishu id that group ``fid`` no longer holds."""
    there = {m.get("member_id") async for m in client.iter_group_members(fid)}
    return {k for k in applied if (i := people.known_id(k)) and i not in there}


class _Builder:
    def __init__(self, people: _People, mirror: Mapping[str, MirrorGroup]) -> None:
        self.people = people
        self.mirror = mirror
        self.ops: list[Operation] = []
        self.issues: list[Issue] = []
        self.creates = 0

    def issue(self, spec: GroupSpec, reason: str) -> None:
        self.issues.append(Issue("group", spec.key, "members", reason, "error"))

    async def adopt_or_create(self, client: FeishuClient, spec: GroupSpec,
                              feishu: list[dict[str, Any]]) -> set[str] | None:
        """The create or adoption of an unmanaged group; its managed members (None: held)."""
        found = next((g for g in feishu if g.get("group_id", g.get("id")) == spec.group_id),
                     None) or next((g for g in feishu if g.get("name") == spec.name), None)
        if found is None:
            if len(feishu) + self.creates >= MAX_GROUPS:
                self.issue(spec, f"Feishu holds {len(feishu) + self.creates} groups, its "
                                 f"limit is {MAX_GROUPS} per tenant (42016): not created; "
                                 f"remove groups in Feishu or from groups.define")
                return None
            self.creates += 1
            body = {"group_id": spec.group_id, "name": spec.name,
                    **({"description": spec.description} if spec.description else {})}
            self.ops.append(Operation(
                op_id(OpKind.GROUP_CREATE, spec.key), OpKind.GROUP_CREATE, spec.key,
                spec.group_id, body, (FieldChange("name", None, spec.name),),
                f"new group (members: {spec.source})", (), {"name": spec.name}, spec.name))
            return set()
        fid = str(found.get("group_id") or found.get("id"))
        by_id = self.people.by_user_id()
        members = {by_id[m["member_id"]] async for m in client.iter_group_members(fid)
                   if m.get("member_id") in by_id}
        how = "custom id" if fid == spec.group_id else "name"
        self.ops.append(Operation(
            op_id(OpKind.GROUP_ADOPT, spec.key), OpKind.GROUP_ADOPT, spec.key, fid, {}, (),
            f"a Feishu group with this {how} exists: managed from now on "
            f"({len(members)} managed members)", (),
            {"name": str(found.get("name")), "feishu_id": fid, "members": sorted(members)},
            spec.name))
        if found.get("name") != spec.name:
            self._rename(spec, fid, str(found.get("name")), (op_id(OpKind.GROUP_ADOPT,
                                                                    spec.key),))
        return members

    def rename(self, spec: GroupSpec) -> None:
        m = self.mirror[spec.key]
        if m.name != spec.name:
            self._rename(spec, m.feishu_id, m.name, ())

    def _rename(self, spec: GroupSpec, fid: str, old: str, deps: tuple[str, ...]) -> None:
        self.ops.append(Operation(
            op_id(OpKind.GROUP_UPDATE, spec.key), OpKind.GROUP_UPDATE, spec.key, fid,
            {"name": spec.name}, (FieldChange("name", old, spec.name),),
            f"renamed from {old}", deps, {"name": spec.name}, spec.name))

    def members(self, spec: GroupSpec, add: set[str], remove: set[str], of: int) -> None:
        """The batches adding ``add`` and removing ``remove`` (the group has ``of`` now)."""
        fid = self.mirror[spec.key].feishu_id if spec.key in self.mirror else None
        made = () if fid is not None else (op_id(OpKind.GROUP_CREATE, spec.key),
                                            op_id(OpKind.GROUP_ADOPT, spec.key))
        fid = fid or next(op.feishu_id for op in reversed(self.ops) if op.key == spec.key)
        self._batches(OpKind.GROUP_ADD_MEMBERS, spec.key, spec.name, fid, sorted(add), of, made)
        self._batches(OpKind.GROUP_REMOVE_MEMBERS, spec.key, spec.name, fid, sorted(remove),
                      of, made)

    def drop(self, key: str) -> None:
        """A managed group no longer configured: its members go, then the group."""
        m = self.mirror[key]
        removes = self._batches(OpKind.GROUP_REMOVE_MEMBERS, key, m.name, m.feishu_id,
                                sorted(m.members), len(m.members), (), dropped=True)
        self.ops.append(Operation(
            op_id(OpKind.GROUP_DELETE, key), OpKind.GROUP_DELETE, key, m.feishu_id, {},
            (FieldChange("name", m.name, None),), "no longer in groups.define",
            tuple(removes), None, m.name))

    def _batches(self, kind: OpKind, key: str, name: str, fid: str, members: Sequence[str],
                 of: int, deps: Iterable[str], *, dropped: bool = False) -> list[str]:
        made: list[str] = []
        verb = "adds" if kind is OpKind.GROUP_ADD_MEMBERS else "removes"
        people = self.people
        for n, start in enumerate(range(0, len(members), GROUP_MEMBER_BATCH), 1):
            batch = members[start:start + GROUP_MEMBER_BATCH]
            waits = [people.waits[k] for k in batch if k in people.waits] \
                if kind is OpKind.GROUP_ADD_MEMBERS else []
            # someone orgsync no longer knows in Feishu leaves the mirror only
            user_ids = [i for k in batch if (i := people.user_id(k) or people.known_id(k))]
            shown = [people.name(k) for k in batch]
            more = f" and {len(shown) - _NAMES_SHOWN} more" if len(shown) > _NAMES_SHOWN else ""
            op = Operation(
                op_id(kind, f"{key}#{n}"), kind, f"{key}#{n}", fid, {"user_ids": user_ids},
                (FieldChange("members", None if verb == "adds" else shown,
                             shown if verb == "adds" else None),),
                f"{verb} {len(batch)} of {len(members)} ({of} now): "
                f"{', '.join(shown[:_NAMES_SHOWN])}{more}",
                (*deps, *waits), {"group": key, "members": list(batch), "of": of,
                                  **({"dropped": True} if dropped else {})}, name)
            self.ops.append(op)
            made.append(op.op_id)
        return made


def group_gauges(plan: Plan, cfg: GroupsConfig, safety: SafetyConfig) -> list[Gauge]:
    """The group guards measured on ``plan``: a group's removals over
    ``groups.max_removal_fraction`` of its members (once it has ``groups.guard_min_members``),
    and group deletes over ``safety.max_department_deletes`` (the departments' threshold)."""
    removed: dict[str, tuple[str, int, int]] = {}
    deletes = 0
    for op in plan.operations:
        if op.kind is OpKind.GROUP_DELETE:
            deletes += 1
        elif op.kind is OpKind.GROUP_REMOVE_MEMBERS and op.mirror and \
                not op.mirror.get("dropped"):
            name, count, of = removed.get(str(op.mirror["group"]), (op.label, 0,
                                                                     int(op.mirror["of"])))
            removed[str(op.mirror["group"])] = (name, count + len(op.mirror["members"]), of)
    found: list[Gauge] = []
    for _key, (name, count, of) in sorted(removed.items()):
        if of >= cfg.guard_min_members:
            found.append(Gauge(f"members removed from group {name}", count,
                               cfg.max_removal_fraction * of,
                               f"groups.max_removal_fraction={cfg.max_removal_fraction:.0%}",
                               of, cfg.max_removal_fraction))
    if deletes:
        found.append(Gauge("group deletes", deletes, safety.max_department_deletes,
                           f"safety.max_department_deletes={safety.max_department_deletes}"))
    return found


def person_groups(config: Config, data: SourceData | None, ledger: Ledger,
                  key: str) -> list[dict[str, Any]]:
    """``explain``: the managed groups ``key`` is in (as applied) or that their rule puts
    them in (now), each with the rule as written."""
    mirror = ledger.load_groups()
    population = None if data is None else Population(
        {k: e for k, e in data.snapshot.active_employees().items()
         if k not in data.held_employees}, data.snapshot.departments, data.groups)
    found: list[dict[str, Any]] = []
    for spec in config.groups.define:
        applied = spec.key in mirror and key in mirror[spec.key].members
        wanted = population is not None and key in evaluate(spec, population)
        if applied or wanted:
            found.append({"group": spec.key, "name": spec.name, "rule": spec.source,
                          "applied": applied, "by_rule": wanted})
    configured = {s.key for s in config.groups.define}
    found.extend({"group": k, "name": g.name, "rule": None, "applied": True, "by_rule": False}
                 for k, g in sorted(mirror.items()) if k not in configured and key in g.members)
    return found

