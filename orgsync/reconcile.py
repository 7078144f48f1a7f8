"""Who the source's rows are: :func:`orgsync.identity.resolve` applied to one run.

Between validation and the diff, the source is reconciled with the people orgsync
manages, so that a person becomes a leaver only when the source positively does not
hold them:

* a managed person matched by a held-back row (its id after the key rules, its
  email or its mobile) is *accounted for*: held as they are, with an issue naming the
  row, so they get no freeze, delete, move-out, and links to them stay;
* a record whose key changed but that is, by the key rules or by email and mobile,
  exactly one managed person is that person under a new key: the mirror is renamed
  for the diff (which plans ``user.rekey``) and references follow;
* ambiguous matches are held conflicts; a held row that matches nobody and has no
  usable id leaves every leaver of the run in place (``Reconciled.hold_leavers``).

The common run — every key the mirror knows is in the source — costs one pass over
the managed people and returns its inputs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from orgsync.identity import Identity, KeyRules, feishu_user_id, mobile_digits, resolve
from orgsync.model import Snapshot, Status, rename_people
from orgsync.source import Issue, SourceData
from orgsync.state import DirectoryState, Lifecycle, MirrorUser


@dataclass(slots=True)
class Reconciled:
    """The run's inputs after reconciliation.

    ``held``: extra source keys to hold (conflicts) and managed keys accounted for;
    ``issues``: their issues (errors); ``rekeys``: new key → (old key, old Feishu id);
    ``hold_leavers``: the unidentified rows (``where: what``), when there are any.
    """

    state: DirectoryState
    held: set[str] = field(default_factory=set)
    issues: list[Issue] = field(default_factory=list)
    rekeys: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Source references to rewrite: a rekeyed person's old key, or a key written
    #: differently (``e00030`` for ``E00030`` under the key rules) → the source key.
    aliases: dict[str, str] = field(default_factory=dict)
    hold_leavers: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when the source must be validated again (held keys or references moved)."""
        return bool(self.held or self.aliases)


def reconcile(raw: SourceData, data: SourceData, state: DirectoryState,
              rules: KeyRules) -> Reconciled:
    """Reconcile ``data`` (validated from ``raw``) with ``state``; ``state`` is not modified."""
    # Set differences first (C speed): the loops then see the few people concerned.
    absent: dict[str, tuple[str | None, str | None]] = {}
    for k in state.users.keys() - data.snapshot.employees.keys() - data.held_employees:
        u = state.users[k]
        if u.lifecycle is not Lifecycle.DELETED:
            absent[k] = (u.record.email, u.record.mobile)
    held_rows = _held_identities(raw, data)
    aliases = _aliases(raw, rules)
    if not absent and not held_rows:
        return Reconciled(state, aliases=aliases)
    people = data.snapshot.employees
    new = {k: Identity(k, e.email, e.mobile, data.where("employee", k))
           for k in sorted(people.keys() - state.users.keys())
           if (e := people[k]).status is Status.ACTIVE} if absent else {}
    res = resolve(new, held_rows, absent, rules, _contact_changed(data, state) if absent else {})
    out = Reconciled(state, aliases=aliases)
    for key, reason in res.conflicts:
        out.held.add(key)
        out.issues.append(Issue("employee", key, "key", reason, "error",
                                data.where("employee", key)))
    for managed, row in sorted(res.accounted.items()):
        if managed in res.rekeys.values():
            continue
        out.held.add(managed)
        out.issues.append(Issue("employee", managed, "key", _accounted_reason(managed, row),
                                "error", row.where))
    if res.rekeys:
        out.state = _renamed(state, res.rekeys, out)
    out.hold_leavers = tuple(f"{row.where or 'a row'}: {_describe(row)}"
                             for row in res.unidentified)
    return out


def _aliases(raw: SourceData, rules: KeyRules) -> dict[str, str]:
    """Manager and leader references the source holds under no exact key that name
    exactly one of its keys under the key rules (``e00030`` → ``E00030``)."""
    snap = raw.snapshot
    known = snap.employees.keys() | raw.held_employees
    refs = {e.manager_key for e in snap.employees.values()} | {
        k for d in snap.departments.values()
        for k in (d.leader_key, *d.deputy_leader_keys, *d.hrbp_keys)}
    dangling = {r for r in refs if r is not None and r not in known}
    if not dangling:
        return {}
    by_rule: dict[str, list[str]] = {}
    for k in known:
        by_rule.setdefault(rules.normalize(k), []).append(k)
    return {r: found[0] for r in sorted(dangling)
            if len(found := by_rule.get(rules.normalize(r), [])) == 1}


def apply_renames(raw: SourceData, renamed: Mapping[str, str]) -> SourceData:
    """``raw`` with manager and leader references renamed (:attr:`Reconciled.aliases`).

    An export whose rows changed one person's id may still name them by the old id
    elsewhere; that reference must not look like a link to someone gone.
    """
    if not renamed:
        return raw
    snap = raw.snapshot
    employees = {k: replace(e, manager_key=renamed[e.manager_key])
                 if e.manager_key is not None and e.manager_key in renamed else e
                 for k, e in snap.employees.items()}
    departments = {k: rename_people(d, renamed) for k, d in snap.departments.items()}
    return replace(raw, snapshot=Snapshot(departments, employees))


def _contact_changed(data: SourceData, state: DirectoryState) -> dict[str, Identity]:
    """Records of managed people whose email or mobile differs from the mirror's."""
    out: dict[str, Identity] = {}
    users = state.users
    people = data.snapshot.employees
    for k in sorted(people.keys() - state.unchanged):
        e = people[k]
        if (u := users.get(k)) is None:
            continue
        if (e.email or "").casefold() != (u.record.email or "").casefold() or \
                mobile_digits(e.mobile) != mobile_digits(u.record.mobile):
            out[k] = Identity(k, e.email, e.mobile, data.where("employee", k))
    return out


def _held_identities(raw: SourceData, data: SourceData) -> list[Identity]:
    """Rows held back by the connector, and records held back by validation."""
    rows = list(raw.held_rows)
    people = raw.snapshot.employees
    bad_keys = {i.key for i in data.issues if i.held and i.field == "key" and i.key}
    for k in sorted(data.held_employees - raw.held_employees):
        e = people.get(k)
        if e is not None:
            rows.append(Identity(k, e.email, e.mobile, data.where("employee", k),
                                 usable=k not in bad_keys))
    return rows


def _renamed(state: DirectoryState, rekeys: Mapping[str, str], out: Reconciled) -> DirectoryState:
    """A copy of ``state`` with each rekeyed person under the new key (and the Feishu id
    orgsync will give them), and every reference to them following."""
    renamed = {old: new for new, old in rekeys.items()}
    users: dict[str, MirrorUser] = {}
    for k, u in state.users.items():
        if k in renamed:
            new = renamed[k]
            # An account orgsync created carries the key as its user_id, which follows;
            # an adopted account keeps the user_id it had.
            fid = feishu_user_id(new) if u.feishu_id == feishu_user_id(k) else u.feishu_id
            out.rekeys[new] = (k, u.feishu_id)
            u = replace(u, record=replace(u.record, key=new), feishu_id=fid)
            k = new
        if u.record.manager_key in renamed:
            u = replace(u, record=replace(u.record, manager_key=renamed[u.record.manager_key]))
        users[k] = u
    departments = {k: d if (r := rename_people(d.record, renamed)) is d.record
                   else replace(d, record=r) for k, d in state.departments.items()}
    out.aliases = {**renamed, **out.aliases}
    return DirectoryState(departments, users,
                          {renamed.get(k, k) for k in state.tenant_admins},
                          {k for k in state.unchanged if k not in renamed},
                          released=state.released)


def _accounted_reason(managed: str, row: Identity) -> str:
    return (f"not in the source under this id, but a row held back ({_describe(row)}) matches "
            f"them; left as they are, never treated as a leaver")


def _describe(row: Identity) -> str:
    parts = [f"id '{row.key}'" if row.key else "no id"]
    parts += [f"email {row.email}"] if row.email else []
    parts += [f"mobile {row.mobile}"] if row.mobile else []
    return ", ".join(parts)
