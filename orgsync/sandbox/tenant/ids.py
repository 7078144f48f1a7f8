"""Shared state of the sandbox tenant: id minting, id resolution and the live indexes.

Every resource mixin (departments, users, messages, seed) derives from :class:`IdIndex`, which
holds all records and the indexes kept in step with them (custom ids, memberships, children,
unique user keys), so a rule in one resource can look up what another one stores.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable

from orgsync.sandbox.config import SandboxConfig
from orgsync.sandbox.tenant.model import (
    JSON,
    ROOT,
    USER_ID_TYPES,
    ApiError,
    Department,
    IdTypes,
    SandboxClock,
    User,
)


def _fingerprint(body: JSON | None, ids: IdTypes) -> str:
    return json.dumps({"b": body, "u": ids.user, "d": ids.dept}, sort_keys=True,
                      ensure_ascii=False)


class IdIndex:
    """A tenant's records, the ids it mints and the indexes that resolve request ids into them."""

    def __init__(self, clock: SandboxClock | None = None, seed: int = 0) -> None:
        self.clock = clock or SandboxClock()
        self.seed = seed
        self.new_users_unjoined = False
        #: The permissions the app holds (the ``permissions`` knob); None: every one.
        self.permissions: frozenset[str] | None = None
        self.knobs = SandboxConfig()  # the running sandbox's own, shared (app.Sandbox)
        self.reset()

    # ----------------------------------------------------------------- lifecycle

    def reset(self, seed: int | None = None) -> None:
        """Empty the tenant: only the root department ``"0"`` remains; ids restart from the seed."""
        if seed is not None:
            self.seed = seed
        self._rng = random.Random(f"ids:{self.seed}")
        self._seq = 0
        self.departments: dict[str, Department] = {}
        self.users: dict[str, User] = {}
        self.messages: list[JSON] = []
        self.chats: dict[str, JSON] = {}
        self.catalogs: dict[str, dict[str, JSON]] = {}  # job_level / job_family → id → entry
        self.timeoff_events: dict[str, JSON] = {}  # calendar.py: timeoff_event_id → event
        self._live_dept_ids: dict[str, str] = {}   # custom department_id → open id (live only)
        self._children: dict[str, list[str]] = {}  # open id → live child open ids
        self._members: dict[str, dict[str, None]] = {}  # dept open id → ordered set of user open ids
        self._by_union: dict[str, str] = {}
        self._live_user_ids: dict[str, str] = {}   # user_id → open_id, non-resigned users
        self._live_mobiles: dict[str, str] = {}
        self._live_emails: dict[str, str] = {}
        self._live_employee_nos: dict[str, str] = {}
        self._client_tokens: dict[tuple[str, str], tuple[str, JSON]] = {}
        self._message_uuids: dict[str, tuple[float, JSON]] = {}
        self._chat_uuids: dict[tuple[str, str], tuple[float, JSON]] = {}
        self._p2p_chats: dict[str, str] = {}
        self._counts: dict[str, tuple[int, int]] | None = None  # memo, None = invalid
        # Subtrees as last walked, by department open id, with the tree's version then: a
        # fetch_child walk of 5,000 departments asks for the same subtree once per page.
        self._tree_version = 0
        self._subtrees: dict[str, tuple[int, list[Department]]] = {}
        root = Department(open_id=ROOT, custom_id=ROOT, name="", parent=None, order=0,
                          seq=self._next_seq())
        self.departments[ROOT] = root
        self._children[ROOT] = []
        self._members[ROOT] = {}

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _hex(self, nbits: int = 128) -> str:
        return f"{self._rng.getrandbits(nbits):0{nbits // 4}x}"

    def _new_open_dept_id(self) -> str:
        while True:
            candidate = "od-" + self._hex()
            if candidate not in self.departments:
                return candidate

    def _new_custom_dept_id(self) -> str:
        while True:
            candidate = "D" + self._hex(64)
            if candidate not in self._live_dept_ids:
                return candidate

    def _new_user_id(self) -> str:
        while True:
            candidate = self._hex(32)
            if candidate not in self._live_user_ids:
                return candidate

    def new_chat_id(self) -> str:
        """A fresh ``oc_`` chat id."""
        return "oc_" + self._hex()

    # ----------------------------------------------------------------- id resolution

    def find_department(self, ref: str, id_type: str) -> Department | None:
        """The department an id names (deleted ones only by open id, their custom id is freed)."""
        if ref == ROOT:
            return self.departments[ROOT]
        if id_type == "open_department_id":
            return self.departments.get(ref)
        open_id = self._live_dept_ids.get(ref)
        return self.departments[open_id] if open_id else None

    def _dept_for_read(self, ref: str, ids: IdTypes, *, allow_deleted: bool = False) -> Department:
        dept = self.find_department(ref, ids.dept)
        if dept is None or (dept.deleted and not allow_deleted):
            raise ApiError(40015, "department not exist")
        return dept

    def _dept_for_write(self, ref: str, ids: IdTypes) -> Department:
        dept = self.find_department(ref, ids.dept)
        if dept is None or dept.deleted:
            # Write APIs reject unknown ids at the gateway (GENERR 99992357 / 99992380);
            # the HTTP status is UNCONFIRMED, 400 like the other gateway errors.
            if ids.dept == "department_id":
                raise ApiError(99992380, f"department ids not existed: {ref}")
            raise ApiError(99992357, f"open_department_ids not existed: {ref}")
        return dept

    def find_user(self, ref: str, id_type: str) -> User | None:
        """The user an id names; a reused ``user_id`` names the non-resigned holder first."""
        if id_type == "open_id":
            return self.users.get(ref)
        if id_type == "union_id":
            open_id = self._by_union.get(ref)
            return self.users[open_id] if open_id else None
        open_id = self._live_user_ids.get(ref)
        if open_id:
            return self.users[open_id]
        resigned = [u for u in self.users.values() if u.user_id == ref]
        return max(resigned, key=lambda u: u.seq) if resigned else None

    def find_user_any(self, ref: str) -> User | None:
        """The user named by an open_id, union_id or user_id (admin API convenience)."""
        for kind in USER_ID_TYPES:
            user = self.find_user(ref, kind)
            if user is not None:
                return user
        return None

    def _user_for_api(self, ref: str, ids: IdTypes) -> User:
        user = self.find_user(ref, ids.user)
        if user is None:
            # UNCONFIRMED: the code for a well-formed but unknown user id (feishu-api.md §5.2,
            # §11.2). The sandbox answers with the gateway's "ids not existed" errors.
            if ids.user == "user_id":
                raise ApiError(99992360, f"user_ids not existed: {ref}")
            raise ApiError(99992351, f"{ids.user}s not existed: {ref}")
        return user

    def _dept_ref(self, dept: Department, ids: IdTypes) -> str:
        return dept.open_id if ids.dept == "open_department_id" else dept.custom_id

    def _user_ref(self, open_id: str, ids: IdTypes) -> str:
        if not open_id:
            return ""
        user = self.users[open_id]
        if ids.user == "open_id":
            return user.open_id
        return user.union_id if ids.user == "union_id" else user.user_id

    # ----------------------------------------------------------------- contact scope

    def _dept_in_scope(self, dept: Department) -> bool:
        """Inside the app's contact range: a granted department covers its whole subtree
        (/document/server-docs/contact-v3/scope/scope_authority); the root only with
        "all members" (``contact_scope`` None or empty)."""
        scope = self.knobs.contact_scope
        if not scope:
            return True
        node: Department | None = dept
        while node is not None and node.parent is not None:
            if node.custom_id in scope:
                return True
            node = self.departments[node.parent]
        return False

    def _check_dept_scope(self, dept: Department, code: int = 40004) -> None:
        """40004 (403) for a department outside the range; 40014 (403) names a parent."""
        if not self._dept_in_scope(dept):
            what = "parent department" if code == 40014 else "department"
            raise ApiError(code, f"no {what} authority error", 403)

    def _user_in_scope(self, user: User) -> bool:
        return not self.knobs.contact_scope or any(
            self._dept_in_scope(self.departments[d]) for d in user.departments)

    def _check_user_scope(self, user: User, status: int = 400) -> None:
        """41050 for a user outside the range: HTTP 400 on get/patch, 403 on delete
        (feishu-api-more.md §1.2)."""
        if not self._user_in_scope(user):
            raise ApiError(41050, "no user authority error", status)

    # ----------------------------------------------------------------- idempotency

    def _idempotent(self, kind: str, client_token: str | None, body: JSON, ids: IdTypes,
                    action: Callable[[], JSON]) -> JSON:
        """Replay the first response for a reused ``client_token`` with the same request.

        UNCONFIRMED: Feishu does not document the dedup window; the sandbox keeps tokens for
        its lifetime (until reset). Only successful creates are remembered.
        """
        if not client_token:
            return action()
        key = (kind, client_token)
        fingerprint = _fingerprint(body, ids)
        prior = self._client_tokens.get(key)
        if prior is not None:
            if prior[0] != fingerprint:
                raise ApiError(40021, "no a same request error: client_token was used with "
                                      "different parameters")
            return copy.deepcopy(prior[1])
        result = action()
        self._client_tokens[key] = (fingerprint, copy.deepcopy(result))
        return result

    # ----------------------------------------------------------------- department tree

    def _depth(self, dept: Department) -> int:
        depth = 0
        while dept.parent is not None:
            depth += 1
            dept = self.departments[dept.parent]
        return depth

    def _height(self, open_id: str) -> int:
        children = self._children.get(open_id, [])
        return 1 + max((self._height(c) for c in children), default=0) if children else 0

    def _is_descendant_or_self(self, candidate: Department, ancestor: Department) -> bool:
        node: Department | None = candidate
        while node is not None:
            if node.open_id == ancestor.open_id:
                return True
            node = self.departments[node.parent] if node.parent is not None else None
        return False

    def _siblings(self, parent: str, exclude: str | None = None) -> list[Department]:
        return [self.departments[c] for c in self._children.get(parent, []) if c != exclude]

    def _sorted_children(self, open_id: str) -> list[Department]:
        ids = self._children.get(open_id)
        if not ids:  # most departments: a walk of the whole tree asks for every leaf's
            return []
        return sorted((self.departments[c] for c in ids), key=lambda d: (d.order, d.seq))

    def _departments_changed(self) -> None:
        """A department was added, moved, reordered, renamed or deleted: the memos go."""
        self._counts = None
        self._tree_version += 1

    def _subtree(self, dept: Department) -> list[Department]:
        """All live descendants, parents before children (pre-order, siblings by order).
        The list is shared with later calls until the tree changes: do not modify it."""
        memo = self._subtrees.get(dept.open_id)
        if memo is not None and memo[0] == self._tree_version:
            return memo[1]
        out = self._walk_subtree(dept)
        self._subtrees[dept.open_id] = (self._tree_version, out)
        return out

    def _walk_subtree(self, dept: Department) -> list[Department]:
        out: list[Department] = []
        stack = list(reversed(self._sorted_children(dept.open_id)))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(self._sorted_children(node.open_id)))
        return out

    # ----------------------------------------------------------------- user indexes

    def _unindex_user(self, user: User) -> None:
        for index, key in ((self._live_user_ids, user.user_id),
                           (self._live_mobiles, user.mobile),
                           (self._live_emails, user.email.lower()),
                           (self._live_employee_nos, user.employee_no)):
            if key and index.get(key) == user.open_id:
                del index[key]
        for dept_id in user.departments:
            self._members.get(dept_id, {}).pop(user.open_id, None)
        self._counts = None

    def _index_user(self, user: User) -> None:
        self._by_union[user.union_id] = user.open_id
        if not user.resigned:
            for index, key in ((self._live_user_ids, user.user_id),
                               (self._live_mobiles, user.mobile),
                               (self._live_emails, user.email.lower()),
                               (self._live_employee_nos, user.employee_no)):
                if key:
                    index[key] = user.open_id
            for dept_id in user.departments:
                self._members.setdefault(dept_id, {})[user.open_id] = None
        self._counts = None

    def _lookup(self, kind: str, key: str, include_resigned: bool) -> User | None:
        """The user holding an email (lower-cased) or normalized mobile; live holders first."""
        index = self._live_emails if kind == "email" else self._live_mobiles
        if key in index:
            return self.users[index[key]]
        if include_resigned:
            resigned = [u for u in self.users.values() if u.resigned
                        and (u.email.lower() if kind == "email" else u.mobile) == key]
            return max(resigned, key=lambda u: u.seq) if resigned else None
        return None
