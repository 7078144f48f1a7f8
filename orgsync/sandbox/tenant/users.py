"""Contact v3 users (feishu-api.md §5): create, read, patch, resign, resurrect, lookups."""

from __future__ import annotations

import copy

from orgsync.sandbox.tenant.body import (
    normalize_mobile,
    opt_bool,
    opt_int,
    opt_list,
    opt_obj,
    opt_str,
    opt_str_list,
)
from orgsync.sandbox.tenant.model import (
    ACCEPTOR_FIELDS,
    JSON,
    MAX_BATCH,
    MAX_USER_DEPARTMENTS,
    RESURRECT_WINDOW_S,
    ROOT,
    ApiError,
    IdTypes,
    User,
    UserOrder,
    readable,
)
from orgsync.sandbox.tenant.paging import page_data, paginate
from orgsync.sandbox.tenant.permissions import USER_FIELDS as USER_READ
from orgsync.sandbox.tenant.user_fields import UserFields

# The sandbox's own spellings: the top-level is_frozen mirrors status, avatar_key the avatar.
_USER_READ = {**USER_READ, "is_frozen": USER_READ["status"], "avatar_key": USER_READ["avatar"]}


class Users(UserFields):
    """The user endpoints, and the admin switches on users."""

    def render_user(self, user: User, ids: IdTypes, *, whole: bool = False) -> JSON:
        """A user object exactly as the API returns it: without the fields the app may not
        read (:data:`~orgsync.sandbox.tenant.permissions.USER_FIELDS`), unless ``whole`` (state dumps)."""
        def dept_ref(open_id: str) -> str:
            return self._dept_ref(self.departments[open_id], ids)

        return readable({
            "union_id": user.union_id, "user_id": user.user_id, "open_id": user.open_id,
            "name": user.name, "en_name": user.en_name, "nickname": user.nickname,
            "email": user.email, "mobile": user.mobile, "mobile_visible": user.mobile_visible,
            "gender": user.gender, "avatar_key": user.avatar_key,
            "avatar": {"avatar_72": "", "avatar_240": "", "avatar_640": "", "avatar_origin": ""},
            "status": {"is_frozen": user.frozen, "is_resigned": user.resigned,
                       "is_activated": user.activated, "is_exited": False,
                       "is_unjoin": user.unjoin},
            "department_ids": [dept_ref(d) for d in user.departments],
            "leader_user_id": self._user_ref(user.leader, ids),
            "city": user.city, "country": user.country, "work_station": user.work_station,
            "join_time": user.join_time, "is_tenant_manager": user.is_tenant_manager,
            "employee_no": user.employee_no, "employee_type": user.employee_type,
            "orders": [{"department_id": dept_ref(o.dept), "user_order": o.user_order,
                        "department_order": o.department_order,
                        "is_primary_dept": o.is_primary} for o in user.orders],
            "custom_attrs": copy.deepcopy(user.custom_attrs),
            "enterprise_email": user.enterprise_email, "job_title": user.job_title,
            "is_frozen": user.frozen,
            "dotted_line_leader_user_ids": [self._user_ref(u, ids)
                                            for u in user.dotted_line_leaders],
            "job_level_id": user.job_level_id, "job_family_id": user.job_family_id,
        }, _USER_READ, None if whole else self.permissions)

    def create_user(self, body: JSON, ids: IdTypes, client_token: str | None = None) -> JSON:
        """POST contact/v3/users → ``{"user": {...}}``."""
        return self._idempotent("user", client_token, body, ids,
                                lambda: self._create_user(body, ids))

    def _create_user(self, body: JSON, ids: IdTypes) -> JSON:
        changes = self._validate_user(body, ids, None)
        orders: list[UserOrder] = changes.get("orders") or []
        if not all(self._dept_in_scope(self.departments[o.dept]) for o in orders):
            raise ApiError(40004, "no dept authority error", 403)
        failed = self._tenant_rules(changes)
        user = User(open_id="ou_" + self._hex(), union_id="on_" + self._hex(),
                    user_id=changes.pop("user_id") or self._new_user_id(),
                    seq=self._next_seq(), name=changes.pop("name"),
                    mobile=changes.pop("mobile"), employee_type=changes.pop("employee_type"),
                    join_time=changes.pop("join_time", int(self.clock.now())))
        for key, value in changes.items():
            setattr(user, key, value)
        if self.new_users_unjoined:
            user.unjoin, user.activated = True, False
        self.users[user.open_id] = user
        self._index_user(user)
        self._partial(failed, created=True)
        return {"user": self.render_user(user, ids)}

    def _tenant_rules(self, changes: JSON) -> list[str]:
        """The tenant's settings on a validated create/patch: 41032 (HTTP 504, permanent)
        when multi-department is off (feishu-api-more.md §1.14); with the enum store full,
        ``city`` / ``job_title`` values no one holds yet cannot be created (§1.4): they are
        dropped from ``changes`` and returned, the write goes ahead."""
        orders = changes.get("orders")
        if orders is not None and len(orders) > 1 and not self.knobs.multi_department:
            raise ApiError(41032, "multi-department feature is not enabled", 504)
        failed: list[str] = []
        if self.knobs.enum_store_full:
            for key in ("city", "job_title"):
                value = changes.get(key)
                if value and value.strip() and all(getattr(u, key) != value
                                                   for u in self.users.values()):
                    failed.append(key)
                    del changes[key]
        return failed

    @staticmethod
    def _partial(failed: list[str], *, created: bool) -> None:
        """44054–44056 (create) / 44057–44059 (patch): done, but the enum values failed
        (U/create, U/patch). UNCONFIRMED whether ``data.user`` comes with them: none here."""
        if not failed:
            return
        offset = 0 if "job_title" not in failed else (1 if "city" not in failed else 2)
        code = (44054 if created else 44057) + offset
        verb = "created" if created else "updated"
        raise ApiError(code, f"user {verb}, but creating {' and '.join(failed)} failed")

    def get_user(self, ref: str, ids: IdTypes) -> JSON:
        """GET contact/v3/users/:id (resigned users too, with ``status.is_resigned``)."""
        user = self._user_for_api(ref, ids)
        if not user.resigned:
            self._check_user_scope(user)
        return {"user": self.render_user(user, ids)}

    def patch_user(self, ref: str, body: JSON, ids: IdTypes) -> JSON:
        """PATCH contact/v3/users/:id: fields not sent are unchanged; ``is_frozen`` freezes."""
        user = self._user_for_api(ref, ids)
        if user.resigned:
            raise ApiError(42006, "user has resigned")
        if user.unjoin:
            raise ApiError(44010, "unjoined user can not be updated")
        self._check_user_scope(user)
        if user.user_id in (self.knobs.people_sourced or ()):
            # feishu-api-more.md §1.15: UNCONFIRMED that 44053 is the code of the lock
            raise ApiError(44053, "Unable to edit data from external data sources")
        changes = self._validate_user(body, ids, user)
        failed = self._tenant_rules(changes)
        self._unindex_user(user)
        for key, value in changes.items():
            setattr(user, key, value)
        self._index_user(user)
        self._partial(failed, created=False)
        return {"user": self.render_user(user, ids)}

    def delete_user(self, ref: str, body: JSON | None, ids: IdTypes) -> JSON:
        """DELETE contact/v3/users/:id: the user resigns; acceptors are validated and recorded."""
        user = self._user_for_api(ref, ids)
        if user.resigned:
            raise ApiError(42006, "user has resigned")
        if user.is_tenant_manager:
            raise ApiError(44037, "tenant manager can not be deleted")
        self._check_user_scope(user, 403)
        handover = self._handover(body or {}, ids, user)
        self._unindex_user(user)
        user.resigned, user.activated, user.frozen = True, False, False
        user.resign_time = self.clock.now()
        user.handover = handover
        user.orders = []
        user.leader = ""
        user.dotted_line_leaders = []
        self._index_user(user)
        self._drop_references_to(user)
        return {}

    def _handover(self, body: JSON, ids: IdTypes, leaving: User) -> JSON:
        """The acceptors of a DELETE body (§5.5): live users other than the leaver (41052);
        ``email_acceptor.processing_type`` 1 (transfer, needs an acceptor), 2 or 3."""
        handover: JSON = {}
        for key in ACCEPTOR_FIELDS:
            acceptor = opt_str(body, key)
            if acceptor:
                handover[key] = self._acceptor(acceptor, ids, leaving)
        email_acceptor = opt_obj(body, "email_acceptor")
        if email_acceptor is not None:
            processing = opt_str(email_acceptor, "processing_type")
            if processing not in ("1", "2", "3"):
                raise ApiError(41052, "email_acceptor.processing_type must be 1, 2 or 3")
            target = opt_str(email_acceptor, "acceptor_user_id")
            if processing == "1" and not target:
                raise ApiError(41052, "email_acceptor.acceptor_user_id is required to transfer")
            handover["email_acceptor"] = {
                "processing_type": processing,
                "acceptor_user_id": self._acceptor(target, ids, leaving) if target else ""}
        return handover

    def _drop_references_to(self, user: User) -> None:
        # A resigned user can lead nothing (42006 / 44021), so references to them are dropped.
        for dept in self.departments.values():
            dept.leaders = [(k, u) for k, u in dept.leaders if u != user.open_id]
            dept.hrbps = [u for u in dept.hrbps if u != user.open_id]
        for other in self.users.values():
            if other.leader == user.open_id:
                other.leader = ""
            if user.open_id in other.dotted_line_leaders:
                other.dotted_line_leaders.remove(user.open_id)

    def _acceptor(self, ref: str, ids: IdTypes, leaving: User) -> str:
        acceptor = self.find_user(ref, ids.user)
        if acceptor is None or acceptor.resigned or acceptor.open_id == leaving.open_id:
            raise ApiError(41052, f"acceptor user id invalid: {ref}")
        return acceptor.open_id

    def update_user_id(self, ref: str, body: JSON, ids: IdTypes) -> JSON:
        """PATCH contact/v3/users/:id/update_user_id → ``{}`` (feishu-api-more.md §3,
        /document/contact-v3/user/update_user_id).

        ``new_user_id`` is required, at most 64 characters and unused in the tenant
        (41011); 41009 when the user has neither email nor mobile. The id rule
        checked for 41054 is the custom-id one Feishu documents for ``user_id`` at
        create; how often an id may change (41013) is UNCONFIRMED and not modelled,
        nor is updating a resigned user's id (UNCONFIRMED: the sandbox answers 42006).
        """
        user = self._user_for_api(ref, ids)
        new_id = opt_str(body, "new_user_id")
        if not new_id:
            raise ApiError(40001, "param error: new_user_id is required")
        if len(new_id) > 64 or any(c.isspace() for c in new_id):
            raise ApiError(41054, f"new user id invalid: {new_id}")
        if user.resigned:
            raise ApiError(42006, "user has resigned")
        if not user.email and not user.mobile:
            raise ApiError(41009, "user has neither email nor mobile")
        self._check_unique(self._live_user_ids, new_id, user.open_id, 41011, "user_id")
        self._unindex_user(user)
        user.user_id = new_id
        self._index_user(user)
        return {}

    def resurrect_user(self, ref: str, body: JSON | None, ids: IdTypes) -> JSON:
        """POST contact/v3/users/:id/resurrect: within 30 days of resignation, no conflicts.

        Without ``departments`` the user comes back under the root department.
        """
        user = self._user_for_api(ref, ids)
        if not self.knobs.resurrect_available:
            raise ApiError(44029, "No access to resurrect")
        if not user.resigned:
            raise ApiError(44033, "user is not resigned")
        if user.resign_time is not None and \
                self.clock.now() - user.resign_time < self.knobs.deletion_pending_seconds:
            raise ApiError(44034, "user deletion is in progress, please retry later")
        if user.resign_time is not None and \
                self.clock.now() - user.resign_time > RESURRECT_WINDOW_S:
            raise ApiError(44028, "user resigned more than 30 days ago")
        body = body or {}
        for index, key, code, what in ((self._live_mobiles, user.mobile, 44030, "mobile"),
                                       (self._live_emails, user.email.lower(), 44031, "email"),
                                       (self._live_user_ids, user.user_id, 44032, "user_id"),
                                       (self._live_employee_nos, user.employee_no, 44051,
                                        "employee_no")):
            if key and key in index:
                raise ApiError(code, f"{what} duplicated with another user")
        orders = self._resurrect_orders(body, ids)
        self._unindex_user(user)
        user.resigned, user.activated, user.frozen = False, True, False
        user.resign_time = None
        user.orders = orders
        self._index_user(user)
        return {}

    def _resurrect_orders(self, body: JSON, ids: IdTypes) -> list[UserOrder]:
        """``departments`` of a resurrect body (§5.6): at most 50 (41033), each named once; the
        first is primary; none means the root department."""
        raw = opt_list(body, "departments")
        orders: list[UserOrder] = []
        if raw:
            if len(raw) > MAX_USER_DEPARTMENTS:
                raise ApiError(41033, "a user can be in at most 50 departments")
            for item in raw:
                if not isinstance(item, dict) or not opt_str(item, "department_id"):
                    raise ApiError(40001, "param error: departments[].department_id is required")
                dept = self._dept_for_write(str(item["department_id"]), ids)
                if any(o.dept == dept.open_id for o in orders):
                    raise ApiError(40001, "param error: departments holds duplicates")
                orders.append(UserOrder(dept.open_id, opt_int(item, "user_order") or 0,
                                        opt_int(item, "department_order") or 0))
        else:
            orders = [UserOrder(ROOT)]
        orders[0].is_primary = True
        return orders

    def find_by_department(self, ref: str | None, ids: IdTypes, *, page_size: str | None,
                           page_token: str | None) -> JSON:
        """GET users/find_by_department: direct members, larger ``user_order`` first."""
        if not ref:
            raise ApiError(40001, "param error: department_id is required")
        dept = self._dept_for_read(ref, ids)
        self._check_dept_scope(dept)
        members = [self.users[u] for u in self._members[dept.open_id]]

        def user_order(user: User) -> int:
            return next(o.user_order for o in user.orders if o.dept == dept.open_id)

        members.sort(key=lambda u: (-user_order(u), u.seq))
        page, more, token = paginate(members, page_size, page_token,
                                     f"members:{dept.open_id}")
        return page_data([self.render_user(u, ids) for u in page], more, token)

    def batch_users(self, refs: list[str], ids: IdTypes) -> JSON:
        """GET users/batch (repeated ``user_ids``, at most 50)."""
        if not refs or len(refs) > MAX_BATCH:
            raise ApiError(40001, "param error: user_ids must hold 1 to 50 ids")
        users = [self._user_for_api(r, ids) for r in refs]
        # Out-of-range users are left out of items (feishu-api-more.md §1.2)
        return {"items": [self.render_user(u, ids) for u in users if self._user_in_scope(u)]}

    def batch_get_id(self, body: JSON, ids: IdTypes) -> JSON:
        """POST users/batch_get_id: one entry per input, without ``user_id`` when not found.

        UNCONFIRMED (feishu-api.md §11.5): the sandbox keeps the entry and omits ``user_id``.
        """
        emails = opt_str_list(body, "emails") or []
        mobiles = opt_str_list(body, "mobiles") or []
        include_resigned = opt_bool(body, "include_resigned") or False
        if len(emails) > MAX_BATCH or len(mobiles) > MAX_BATCH:
            raise ApiError(40001, "param error: at most 50 emails and 50 mobiles")
        out: list[JSON] = []
        for email in emails:
            found = self._lookup("email", email.lower(), include_resigned)
            out.append(self._id_entry("email", email, found, ids))
        for mobile in mobiles:
            try:
                key = normalize_mobile(mobile)
            except ApiError:
                key = ""
            found = self._lookup("mobile", key, include_resigned) if key else None
            out.append(self._id_entry("mobile", mobile, found, ids))
        return {"user_list": out}

    def _id_entry(self, kind: str, value: str, user: User | None, ids: IdTypes) -> JSON:
        entry: JSON = {kind: value}
        if user is not None:
            entry["user_id"] = self._user_ref(user.open_id, ids)
            entry["status"] = {"is_frozen": user.frozen, "is_resigned": user.resigned,
                               "is_activated": user.activated, "is_exited": False,
                               "is_unjoin": user.unjoin}
        return entry

    def set_reachable(self, ref: str, reachable: bool) -> User:
        """Admin: whether the bot can message this user (unreachable → 230013)."""
        user = self.find_user_any(ref)
        if user is None:
            raise KeyError(ref)
        user.reachable = reachable
        return user

    def set_joined(self, ref: str) -> User:
        """Admin: an unjoined user accepts the invitation (activated, no longer unjoined)."""
        user = self.find_user_any(ref)
        if user is None:
            raise KeyError(ref)
        user.unjoin, user.activated = False, True
        return user
