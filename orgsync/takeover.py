"""Taking over the Feishu directory a company already has (a first run on a non-empty tenant).

When the ledger manages nothing yet, the live tree is read once and the source is
matched against it before anything is created:

* a department by custom ``department_id`` equal to its HR code (or the id orgsync
  would give it, :func:`orgsync.identity.feishu_department_id`); otherwise by name
  path from the root — exact, then after NFKC and whitespace normalisation;
* a person by custom ``user_id`` equal to the HR id (or :func:`feishu_user_id`),
  then by email, then by mobile.

One candidate is adopted; several are a conflict, held with the candidates named;
none means create. Accounts no HR record matches are *Feishu-only*: never changed,
only listed. Tenant admins are never adopted. Pure: :func:`match` reads nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from orgsync.feishu.schema import USER_READ
from orgsync.identity import feishu_department_id, feishu_user_id, mobile_digits
from orgsync.model import Snapshot, Status, rename_people
from orgsync.renames import path_keyed
from orgsync.source import Issue, SourceData
from orgsync.state import DirectoryState, Lifecycle, MirrorDepartment, MirrorUser

#: Feishu-only accounts a rendered takeover names before "and N more".
SHOW_NAMES = 10
_SPACE = re.compile(r"\s+")


def normalized(name: str) -> str:
    """A department name compared loosely: NFKC, without whitespace (``研发 部`` is
    ``研发部``; ideographic spaces too), case folded."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", name)).casefold()


@dataclass(slots=True)
class Takeover:
    """How the source maps onto a Feishu tenant orgsync does not manage yet.

    ``departments`` / ``users``: HR key → the Feishu custom id it has now (adopted);
    ``rules``: HR key (``department:K`` / ``user:K``) → the rule that matched it
    (``id``, ``path``, ``normalised path``, ``email``, ``mobile``);
    ``conflicts``: held records (errors naming every candidate);
    ``feishu_only``: (user_id, name) of live accounts no HR record matched.
    """

    live: DirectoryState
    departments: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    conflicts: list[Issue] = field(default_factory=list)
    feishu_only: list[tuple[str, str]] = field(default_factory=list)

    @property
    def tenant_empty(self) -> bool:
        """True when Feishu holds no department and no account: a plain first run."""
        return not self.live.departments and not self.live.users

    def state(self, rekey_departments: bool, rekey_users: bool,
              managed: Mapping[str, str] | None = None) -> DirectoryState:
        """The current side for the diff: what was adopted as Feishu holds it, under HR
        keys, with the id it will have (the HR id when ``rekey_departments`` /
        ``rekey_users``). ``managed``: department key → Feishu id orgsync manages already
        (references to them read as their keys)."""
        dkey = {fid: k for k, fid in (*(managed or {}).items(), *self.departments.items())}
        ukey = {fid: k for k, fid in self.users.items()}
        out = DirectoryState()
        for key, fid in self.users.items():
            u = self.live.users[fid]
            person = u.record
            out.users[key] = MirrorUser(
                replace(person, key=key,
                        department_keys=tuple(dkey.get(d, d) for d in person.department_keys),
                        manager_key=ukey.get(person.manager_key, person.manager_key)
                        if person.manager_key else None),
                feishu_user_id(key) if rekey_users else fid, u.open_id, u.lifecycle)
        for key, fid in self.departments.items():
            rec = self.live.departments[fid].record
            parent = rec.parent_key
            out.departments[key] = MirrorDepartment(
                rename_people(replace(rec, key=key,
                                      parent_key=dkey.get(parent, parent) if parent else None),
                              ukey),
                feishu_department_id(key) if rekey_departments else fid,
                self.live.departments[fid].open_id)
        return out

    def summary(self, desired: SourceData, *, show: int = SHOW_NAMES) -> dict[str, Any]:
        """What a takeover plan shows before its operations (JSON-able)."""
        snap = desired.snapshot
        held = {i.key for i in self.conflicts}
        by_rule: dict[str, dict[str, int]] = {"departments": defaultdict(int),
                                              "users": defaultdict(int)}
        for k, rule in self.rules.items():
            by_rule["departments" if k.startswith("department:") else "users"][rule] += 1
        people = {k for k, e in snap.employees.items() if e.status is Status.ACTIVE}
        return {
            "departments": {
                "matched": dict(sorted(by_rule["departments"].items())),
                "to_create": len(snap.departments.keys() - self.departments.keys() - held),
                "ambiguous": sorted(i.key for i in self.conflicts
                                    if i.entity == "department" and i.key),
            },
            "users": {
                "matched": dict(sorted(by_rule["users"].items())),
                "to_create": len(people - self.users.keys() - held),
                "ambiguous": sorted(i.key for i in self.conflicts
                                    if i.entity == "employee" and i.key),
            },
            "feishu_only": {"count": len(self.feishu_only),
                            "names": [n or uid for uid, n in self.feishu_only[:show]]},
        }


def match(desired: SourceData, live: DirectoryState,
          managed: Mapping[str, str] | None = None) -> Takeover:
    """Match the validated source against ``live`` (read with no reverse maps: keys are
    Feishu's custom ids). Deterministic in the inputs.

    ``managed``: department key → Feishu id of the departments orgsync manages already
    (a run that would create departments): only the others are matched, and people
    are not (their accounts are looked up by email/mobile, as for any new person).
    """
    out = Takeover(live)
    _match_departments(desired.snapshot, live, out, dict(managed or {}))
    if managed is None:
        _match_users(desired, live, out)
    return out


def _match_departments(snap: Snapshot, live: DirectoryState, out: Takeover,
                       managed: dict[str, str]) -> None:
    children: dict[str | None, list[str]] = defaultdict(list)
    for fid, m in live.departments.items():
        children[m.record.parent_key].append(fid)
    claimed: set[str] = set(managed.values())
    for key in sorted(snap.departments.keys() - managed.keys()):
        for fid in dict.fromkeys((key, feishu_department_id(key))):
            if fid in live.departments and fid not in claimed:
                out.departments[key] = fid
                out.rules[f"department:{key}"] = "id"
                claimed.add(fid)
                break
    # Name paths top-down: a department's candidates are the children of its parent's match.
    pending = sorted(snap.departments)
    done: set[str] = set(out.departments) | managed.keys()
    found = {**managed, **out.departments}  # key -> Feishu id, adopted or managed
    while pending:
        progress = False
        rest: list[str] = []
        for key in pending:
            if key in done:
                continue
            d = snap.departments[key]
            if d.parent_key is not None and d.parent_key not in done:
                rest.append(key)
                continue
            done.add(key)
            progress = True
            if d.parent_key is not None and d.parent_key not in found:
                continue  # the parent is created (or held): nothing under it exists
            parent_fid = found.get(d.parent_key) if d.parent_key else None
            free = [f for f in children.get(parent_fid, ()) if f not in claimed]
            exact = [f for f in free if live.departments[f].record.name == d.name]
            loose = exact or [f for f in free
                              if normalized(live.departments[f].record.name) == normalized(d.name)]
            if len(loose) == 1:
                out.departments[key] = found[key] = loose[0]
                out.rules[f"department:{key}"] = "path" if exact else "normalised path"
                claimed.add(loose[0])
            elif loose:
                names = ", ".join(f"{live.departments[f].record.name!r} ({f})"
                                  for f in sorted(loose))
                out.conflicts.append(Issue(
                    "department", key, "name",
                    f"its name path matches several Feishu departments: {names}; not created "
                    "or adopted until one of them is renamed, or given this department's code "
                    "as its department_id", "error"))
        pending = rest
        if not progress:
            break  # a parent cycle: validation holds those


def _match_users(desired: SourceData, live: DirectoryState, out: Takeover) -> None:
    if not live.users:  # a first sync into an empty tenant: nobody to match, 10⁵ rows spared
        return
    by_id = {u.feishu_id: k for k, u in live.users.items()}
    by_email: dict[str, set[str]] = defaultdict(set)
    by_mobile: dict[str, set[str]] = defaultdict(set)
    for fid, u in live.users.items():
        if u.lifecycle is Lifecycle.DELETED:
            continue
        if u.record.email:
            by_email[u.record.email.casefold()].add(fid)
        if (digits := mobile_digits(u.record.mobile)) is not None:
            by_mobile[digits].add(fid)
    claims: dict[str, list[tuple[str, str]]] = defaultdict(list)  # account -> (key, rule)
    snap = desired.snapshot
    for key in sorted(snap.employees):
        e = snap.employees[key]
        if e.status is not Status.ACTIVE:
            continue
        where = desired.where("employee", key)
        ids = [f for f in dict.fromkeys((key, feishu_user_id(key))) if f in by_id]
        if ids:
            fid, rule = ids[0], "id"
        else:
            email = by_email.get((e.email or "").casefold(), set()) if e.email else set()
            mobile = by_mobile.get(mobile_digits(e.mobile) or "", set())
            found = email | mobile
            if not found:
                continue
            if len(found) > 1:
                out.conflicts.append(Issue(
                    "employee", key, "email", "email and mobile match two different "
                    f"Feishu users ({', '.join(sorted(found))})", "error", where))
                continue
            fid = next(iter(found))
            rule = "email" if fid in email else "mobile"
        admin = True if by_id[fid] in live.tenant_admins else (
            None if "tenant_admin" in live.users[by_id[fid]].unknown else False)
        if admin is not False:
            out.conflicts.append(Issue("employee", key, "email", not_adopted(fid, admin),
                                       "error", where))
            continue
        claims[fid].append((key, rule))
    for fid, found_by in sorted(claims.items()):
        if len(found_by) == 1:
            key, rule = found_by[0]
            out.users[key] = fid
            out.rules[f"user:{key}"] = rule
            continue
        keys = [k for k, _ in found_by]
        for key in keys:
            out.conflicts.append(Issue(
                "employee", key, "email", f"matches Feishu user {fid}, as do "
                f"{', '.join(k for k in keys if k != key)}; none is adopted until the source "
                "says who is who", "error", desired.where("employee", key)))
    out.conflicts.sort(key=lambda i: (i.entity, i.key or ""))
    matched = set(out.users.values())
    out.feishu_only = sorted((u.feishu_id, u.record.name) for u in live.users.values()
                             if u.feishu_id not in matched
                             and u.lifecycle is not Lifecycle.DELETED)


def not_adopted(account: str, admin: bool | None) -> str:
    """Why the Feishu account ``account`` is not taken over: it is a tenant admin (True), or
    whether it is cannot be read (None: its read permission is missing)."""
    if admin is None:
        return (f"matches Feishu user {account}, which may be a tenant admin: Feishu does not "
                f"say without {' or '.join(USER_READ['is_tenant_manager'])}; not adopted")
    return f"matches Feishu user {account}, a tenant admin; tenant admins are never adopted"


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """A takeover summary (:meth:`Takeover.summary`) as plain lines, for every renderer."""
    lines = ["Takeover: Feishu already holds a directory; it is matched before anything is "
             "created (approve this plan once to take it over)"]
    for entity, label in (("departments", "Departments"), ("users", "People")):
        part = summary[entity]
        matched = part["matched"]
        by = ", ".join(f"{n} by {rule}" for rule, n in matched.items()) or "none"
        ambiguous = part["ambiguous"]
        lines.append(f"{label}: {sum(matched.values())} matched ({by}), {part['to_create']} to "
                     f"create, {len(ambiguous)} ambiguous"
                     + (f" ({', '.join(ambiguous)})" if ambiguous else ""))
    lines.append(feishu_only_text(summary["feishu_only"]))
    return lines


def feishu_only_text(names: Mapping[str, Any]) -> str:
    """``N Feishu-only account(s) left as they are: a, b, … and M more``."""
    count = int(names["count"])
    shown = list(names["names"])
    more = count - len(shown)
    return (f"{count} Feishu-only account(s) left as they are (matched by no HR record)"
            + (": " + ", ".join(shown) if shown else "")
            + (f" and {more} more" if more > 0 else ""))


def unaligned(state: DirectoryState, desired: SourceData, *, departments: bool, users: bool
              ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Managed departments and people whose Feishu id is not yet their HR id (an adoption
    whose id change failed, or ran with the policy off), for ``takeover.rekey_*``.

    Returns (department key → id now, for ``department.adopt``; employee key → (key, id
    now), for ``user.rekey``) and moves ``state`` to the ids they will have.
    """
    depts: dict[str, str] = {}
    people: dict[str, tuple[str, str]] = {}
    if departments:
        wanted = desired.snapshot.departments
        for k, d in state.departments.items():
            # A department keyed by its path has no HR code to align to: its id is a hash
            # of a path, which a rename leaves as it was (orgsync.renames).
            if d.feishu_id != k and k in wanted and not path_keyed(wanted[k]) and \
                    d.feishu_id != (fid := feishu_department_id(k)):
                depts[k] = d.feishu_id
                d.feishu_id = fid
    if users:
        for k, u in state.users.items():
            if u.feishu_id != k and u.lifecycle is not Lifecycle.DELETED and \
                    k in desired.snapshot.employees and u.feishu_id != (uid := feishu_user_id(k)):
                people[k] = (k, u.feishu_id)
                u.feishu_id = uid
    return depts, people
