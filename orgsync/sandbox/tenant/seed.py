"""The whole tenant as JSON: the admin state dump and the seed loader that reads it back."""

from __future__ import annotations

import copy

from orgsync.sandbox.tenant.body import normalize_mobile
from orgsync.sandbox.tenant.departments import Departments
from orgsync.sandbox.tenant.groups import Groups
from orgsync.sandbox.tenant.model import JSON, ROOT, Department, IdTypes, User, UserOrder
from orgsync.sandbox.tenant.users import Users


class Seed(Departments, Users, Groups):
    """Dumping and loading a whole tenant (admin ``/_sandbox/state`` and seeds)."""

    def state(self) -> JSON:
        """Everything as JSON (admin ``GET /_sandbox/state``); :meth:`load` reads it back.

        References (parents, leaders, memberships) are written as open ids, which stay
        unambiguous after custom ids are freed or reused.
        """
        ids = IdTypes("open_id", "open_department_id")
        departments = []
        for dept in sorted(self.departments.values(), key=lambda d: d.seq):
            if dept.parent is None:
                continue
            departments.append(self.render_department(dept, ids, whole=True))
        users = []
        for user in sorted(self.users.values(), key=lambda u: u.seq):
            item = self.render_user(user, ids, whole=True)
            item.update(resign_time=user.resign_time, handover=copy.deepcopy(user.handover),
                        reachable=user.reachable)
            users.append(item)
        return {"departments": departments, "users": users,
                "messages": copy.deepcopy(self.messages),
                "chats": copy.deepcopy(list(self.chats.values())),
                "groups": self.dump_groups(),
                "timeoff_events": copy.deepcopy(list(self.timeoff_events.values()))}

    def load(self, state: JSON) -> None:
        """Replace the tenant with ``state`` (the shape of :meth:`state`); raise ValueError if bad.

        Hand-written seeds may omit open ids, custom ids, orders and statuses, and may refer to
        parents, leaders and departments by custom id (``department_id`` / ``user_id``).
        """
        self.reset()
        try:
            self._load(state)
        except (KeyError, TypeError, AttributeError) as exc:
            self.reset()
            raise ValueError(f"bad sandbox state: {exc!r}") from exc
        except ValueError:
            self.reset()
            raise

    def _load(self, state: JSON) -> None:
        raw_depts = [d for d in state.get("departments", [])
                     if d.get("department_id") != ROOT and d.get("open_department_id") != ROOT]
        parents: dict[str, str] = {}
        for raw in raw_depts:
            open_id = self._seed_department(raw)
            parents[open_id] = str(raw.get("parent_department_id") or ROOT)
        self._seed_tree(parents)
        links = [(self._seed_user_record(raw), raw) for raw in state.get("users", [])]
        for user, raw in links:
            if not user.resigned:
                self._seed_user_links(user, raw)
        for raw, dept in zip(raw_depts, [d for d in self.departments.values()
                                         if d.parent is not None], strict=True):
            self._seed_department_leaders(dept, raw)
        self.messages = [dict(m) for m in state.get("messages", [])]
        for chat in state.get("chats", []):
            self.chats[str(chat["chat_id"])] = dict(chat)
        for event in state.get("timeoff_events", []):
            self.timeoff_events[str(event["timeoff_event_id"])] = dict(event)
        for dept in self.departments.values():
            if dept.chat_id and dept.chat_id not in self.chats:
                self._register_dept_chat(dept)
        self.load_groups(state.get("groups", []))
        self._departments_changed()

    def _seed_department(self, raw: JSON) -> str:
        """Store one seeded department, not yet linked to its parent; return its open id."""
        deleted = bool((raw.get("status") or {}).get("is_deleted", False))
        custom = raw.get("department_id") or self._new_custom_dept_id()
        if not deleted and custom in self._live_dept_ids:
            raise ValueError(f"duplicate department_id {custom!r}")
        open_id = raw.get("open_department_id") or self._new_open_dept_id()
        if open_id in self.departments:
            raise ValueError(f"duplicate open_department_id {open_id!r}")
        dept = Department(open_id=open_id, custom_id=custom, name=str(raw["name"]),
                          parent=None, order=int(raw.get("order") or 0),
                          seq=self._next_seq(), i18n_name=dict(raw.get("i18n_name") or {}),
                          unit_ids=list(raw.get("unit_ids") or []),
                          chat_id=raw.get("chat_id") or "",
                          group_chat_employee_types=list(
                              raw.get("group_chat_employee_types") or []),
                          deleted=deleted)
        self.departments[open_id] = dept
        self._children[open_id] = []
        self._members[open_id] = {}
        if not deleted:
            self._live_dept_ids[custom] = open_id
        return open_id

    def _seed_tree(self, parents: dict[str, str]) -> None:
        """Link seeded departments (open id → parent ref) to their parents, refuse a parent
        cycle and put each department without an order after its siblings."""
        for open_id, parent_ref in parents.items():
            parent = self._seed_dept(parent_ref)
            dept = self.departments[open_id]
            dept.parent = parent.open_id
            if not dept.deleted:
                self._children[parent.open_id].append(open_id)
        for dept in self.departments.values():
            if dept.parent is not None and not dept.deleted and self._depth_guarded(dept) < 0:
                raise ValueError(f"department {dept.custom_id!r} is in a parent cycle")
            siblings = self._siblings(dept.parent or ROOT, dept.open_id)
            if dept.order == 0 and dept.parent is not None:
                dept.order = max((s.order for s in siblings), default=0) + 1

    def _seed_user_record(self, raw: JSON) -> User:
        """Store one seeded user with their own fields and unique keys, links not yet made."""
        status = raw.get("status") or {}
        open_id = raw.get("open_id") or "ou_" + self._hex()
        if open_id in self.users:
            raise ValueError(f"duplicate open_id {open_id!r}")
        resigned = bool(status.get("is_resigned", False))
        user = User(open_id=open_id, union_id=raw.get("union_id") or "on_" + self._hex(),
                    user_id=raw.get("user_id") or self._new_user_id(),
                    seq=self._next_seq(), name=str(raw["name"]),
                    mobile=normalize_mobile(str(raw["mobile"])) if raw.get("mobile") else "",
                    employee_type=int(raw.get("employee_type") or 1),
                    join_time=int(raw.get("join_time") or self.clock.now()))
        for key in ("email", "en_name", "nickname", "city", "country", "work_station",
                    "employee_no", "job_title", "avatar_key", "enterprise_email"):
            setattr(user, key, str(raw.get(key) or ""))
        user.mobile_visible = bool(raw.get("mobile_visible", True))
        user.gender = int(raw.get("gender") or 0)
        user.custom_attrs = list(raw.get("custom_attrs") or [])
        user.is_tenant_manager = bool(raw.get("is_tenant_manager", False))
        self._seed_user_status(user, raw, status)
        if not resigned:
            for index, key, what in ((self._live_user_ids, user.user_id, "user_id"),
                                     (self._live_mobiles, user.mobile, "mobile"),
                                     (self._live_emails, user.email.lower(), "email"),
                                     (self._live_employee_nos, user.employee_no,
                                      "employee_no")):
                if key and key in index:
                    raise ValueError(f"duplicate {what} {key!r}")
                if key:
                    index[key] = open_id
        self.users[open_id] = user
        self._by_union[user.union_id] = open_id
        return user

    def _seed_user_status(self, user: User, raw: JSON, status: JSON) -> None:
        """Status flags, resignation and reachability; statuses may be omitted."""
        resigned = bool(status.get("is_resigned", False))
        user.frozen = bool(status.get("is_frozen", raw.get("is_frozen", False)))
        user.resigned = resigned
        user.unjoin = bool(status.get("is_unjoin", False))
        user.activated = bool(status.get("is_activated", not resigned and not user.unjoin))
        user.resign_time = raw.get("resign_time")
        if resigned and user.resign_time is None:
            user.resign_time = self.clock.now()
        user.handover = raw.get("handover")
        user.reachable = bool(raw.get("reachable", True))

    def _seed_user_links(self, user: User, raw: JSON) -> None:
        """A live seeded user's departments (root when none), orders and leaders."""
        orders = {o.get("department_id"): o for o in raw.get("orders") or []}
        refs = list(raw.get("department_ids") or [ROOT])
        for ref in refs:
            dept = self._seed_dept(str(ref))
            given = orders.get(ref) or {}
            user.orders.append(UserOrder(dept.open_id, int(given.get("user_order") or 0),
                                         int(given.get("department_order") or 0),
                                         bool(given.get("is_primary_dept", False))))
            self._members[dept.open_id][user.open_id] = None
        if not any(o.is_primary for o in user.orders):
            user.orders[0].is_primary = True
        if raw.get("leader_user_id"):
            user.leader = self._seed_user(str(raw["leader_user_id"])).open_id
        user.dotted_line_leaders = [self._seed_user(str(r)).open_id
                                    for r in raw.get("dotted_line_leader_user_ids") or []]

    def _seed_department_leaders(self, dept: Department, raw: JSON) -> None:
        """A seeded department's leaders (either key style) and HRBPs."""
        leaders = [(int(item.get("leaderType", item.get("leader_type", 2))),
                    self._seed_user(str(item.get("leaderID", item.get("leader_id")))).open_id)
                   for item in raw.get("leaders") or []]
        if raw.get("leader_user_id") and not any(k == 1 for k, _ in leaders):
            leaders.insert(0, (1, self._seed_user(str(raw["leader_user_id"])).open_id))
        dept.leaders = sorted(leaders, key=lambda p: p[0])
        dept.hrbps = [self._seed_user(str(r)).open_id
                      for r in raw.get("department_hrbps") or []]

    def _depth_guarded(self, dept: Department) -> int:
        depth, node, seen = 0, dept, set()
        while node.parent is not None:
            if node.open_id in seen:
                return -1
            seen.add(node.open_id)
            depth += 1
            node = self.departments[node.parent]
        return depth

    def _seed_dept(self, ref: str) -> Department:
        dept = self.departments.get(ref) or self.find_department(ref, "department_id")
        if dept is None:
            raise ValueError(f"unknown department {ref!r}")
        return dept

    def _seed_user(self, ref: str) -> User:
        user = self.find_user_any(ref)
        if user is None:
            raise ValueError(f"unknown user {ref!r}")
        return user
