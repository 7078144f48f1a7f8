"""Contact v3 departments (feishu-api.md §4): create, read, update, move, delete, list."""

from __future__ import annotations

from orgsync.sandbox.tenant.body import opt_bool, opt_str
from orgsync.sandbox.tenant.department_fields import DepartmentFields
from orgsync.sandbox.tenant.model import (
    JSON,
    MAX_BATCH,
    ROOT,
    ApiError,
    Department,
    IdTypes,
    readable,
)
from orgsync.sandbox.tenant.paging import page_data, paginate
from orgsync.sandbox.tenant.permissions import DEPARTMENT_FIELDS as DEPARTMENT_READ

# leaders[].leaderID needs the organize permission, but the list itself does not.
_DEPARTMENT_READ = {k: v for k, v in DEPARTMENT_READ.items() if k != "leaders"}


class Departments(DepartmentFields):
    """The department endpoints."""

    def _counts_for(self, open_id: str) -> tuple[int, int]:
        """``(member_count, primary_member_count)`` over the department's live subtree.

        Computed per department on demand (cost ~ its subtree's members) and memoized until the
        next membership or tree change, so interleaved writes and reads stay cheap.
        """
        if self._counts is None:
            self._counts = {}
        cached = self._counts.get(open_id)
        if cached is not None:
            return cached
        dept = self.departments[open_id]
        nodes = {open_id} | {d.open_id for d in self._subtree(dept)}
        members: set[str] = set()
        for node in nodes:
            members.update(self._members.get(node, ()))
        primaries = sum(1 for u in members if self.users[u].primary in nodes)
        counts = self._counts[open_id] = (len(members), primaries)
        return counts

    def _create_dept_chat(self, dept: Department) -> None:
        dept.chat_id = self.new_chat_id()
        self._register_dept_chat(dept)

    def _register_dept_chat(self, dept: Department) -> None:
        """Store the department group chat ``dept.chat_id`` names, owned by the main leader."""
        self.chats[dept.chat_id] = {
            "chat_id": dept.chat_id, "name": dept.name, "description": "",
            "owner": dept.leader, "members": [], "kind": "department",
            "department": dept.open_id, "uuid": None, "create_time": self.clock.now()}

    def render_department(self, dept: Department, ids: IdTypes, *, whole: bool = False) -> JSON:
        """A department object exactly as the API returns it (camelCase ``leaders``): without
        the fields the app may not read (:data:`~orgsync.sandbox.tenant.permissions.DEPARTMENT_FIELDS`;
        ``leaders[].leaderType`` needs none), unless ``whole`` (state dumps)."""
        held = None if whole else self.permissions
        see_leaders = held is None or not held.isdisjoint(DEPARTMENT_READ["leaders"])
        member_count, primary_count = self._counts_for(dept.open_id)
        parent = ""
        if dept.parent is not None:
            parent = self._dept_ref(self.departments[dept.parent], ids)
        return readable({
            "name": dept.name,
            "i18n_name": {lang: dept.i18n_name.get(lang, "") for lang in ("zh_cn", "ja_jp",
                                                                           "en_us")},
            "parent_department_id": parent,
            "department_id": dept.custom_id,
            "open_department_id": dept.open_id,
            "leader_user_id": self._user_ref(dept.leader, ids),
            "chat_id": dept.chat_id,
            "order": str(dept.order),
            "unit_ids": list(dept.unit_ids),
            "member_count": member_count,
            "primary_member_count": primary_count,
            "status": {"is_deleted": dept.deleted},
            "leaders": [{"leaderType": kind, "leaderID": self._user_ref(uid, ids)} if see_leaders
                        else {"leaderType": kind} for kind, uid in dept.leaders],
            "group_chat_employee_types": list(dept.group_chat_employee_types),
            "department_hrbps": [self._user_ref(uid, ids) for uid in dept.hrbps],
        }, _DEPARTMENT_READ, held)

    def create_department(self, body: JSON, ids: IdTypes, client_token: str | None = None) -> JSON:
        """POST contact/v3/departments → ``{"department": {...}}``."""
        return self._idempotent("department", client_token, body, ids,
                                lambda: self._create_department(body, ids))

    def _create_department(self, body: JSON, ids: IdTypes) -> JSON:
        name = self._check_name(opt_str(body, "name"), empty_status=401)
        parent_ref = opt_str(body, "parent_department_id")
        if not parent_ref:
            raise ApiError(44101, "parent_department_id is required")
        parent = self._check_parent(parent_ref, ids)
        self._check_dept_scope(parent, 40014)
        custom_id = self._check_custom_dept_id(body)
        i18n = self._check_i18n(body) or {}
        self._check_sibling_names(parent.open_id, name, i18n, None)
        order = self._check_order(body, parent.open_id, None)
        self._check_room(parent, 0)
        leaders = self._check_leaders(body, ids, []) or []
        extras = self._check_dept_extras(body, ids)
        create_chat = opt_bool(body, "create_group_chat") or False

        dept = Department(
            open_id=self._new_open_dept_id(),
            custom_id=custom_id or self._new_custom_dept_id(),
            name=name, parent=parent.open_id,
            order=order if order is not None else self._default_order(parent.open_id),
            seq=self._next_seq(), i18n_name=i18n, leaders=leaders, **extras)
        self._insert_department(dept)
        if create_chat:
            self._create_dept_chat(dept)
        return {"department": self.render_department(dept, ids)}

    def _insert_department(self, dept: Department) -> None:
        self.departments[dept.open_id] = dept
        self._children.setdefault(dept.open_id, [])
        self._members.setdefault(dept.open_id, {})
        if not dept.deleted:
            self._live_dept_ids[dept.custom_id] = dept.open_id
            if dept.parent is not None:
                self._children.setdefault(dept.parent, []).append(dept.open_id)
        self._departments_changed()

    def get_department(self, ref: str, ids: IdTypes) -> JSON:
        """GET contact/v3/departments/:id (a deleted department shows ``status.is_deleted``)."""
        dept = self._dept_for_read(ref, ids, allow_deleted=True)
        self._check_dept_scope(dept)
        return {"department": self.render_department(dept, ids)}

    def patch_department(self, ref: str, body: JSON, ids: IdTypes) -> JSON:
        """PATCH contact/v3/departments/:id: partial update, move via ``parent_department_id``."""
        return self._update_department(ref, body, ids, full=False)

    def put_department(self, ref: str, body: JSON, ids: IdTypes) -> JSON:
        """PUT contact/v3/departments/:id: full replacement (``order`` is kept if omitted)."""
        return self._update_department(ref, body, ids, full=True)

    def _update_department(self, ref: str, body: JSON, ids: IdTypes, *, full: bool) -> JSON:
        dept = self._dept_for_write(ref, ids)
        old_parent = dept.parent
        if old_parent is None:
            raise ApiError(40002, "process root dept error")
        self._check_dept_scope(dept)
        if dept.custom_id in (self.knobs.people_sourced or ()):
            # feishu-api-more.md §1.15: UNCONFIRMED that 43031 is the code of the lock
            raise ApiError(43031, "Unable to edit data from external data sources")
        if full:
            body = self._full_update_body(body)
        changes: JSON = {"name": dept.name}
        if full or "name" in body:
            changes["name"] = self._check_name(opt_str(body, "name"), empty_status=400)
        parent = self._new_parent(dept, old_parent, body, ids)
        moving = parent.open_id != old_parent
        i18n = self._check_i18n(body)
        self._check_sibling_names(parent.open_id, changes["name"],
                                  i18n if i18n is not None else dept.i18n_name, dept.open_id)
        order = self._check_order(body, parent.open_id, dept.open_id)
        if order is None and moving and any(s.order == dept.order
                                            for s in self._siblings(parent.open_id)):
            order = self._default_order(parent.open_id)  # keep the order unless it collides
        leaders = self._check_leaders(body, ids, dept.leaders)
        changes.update(self._check_dept_extras(body, ids))
        create_chat = opt_bool(body, "create_group_chat") or False

        if moving:
            self._move_department(dept, old_parent, parent)
        for key, value in (("i18n_name", i18n), ("order", order), ("leaders", leaders)):
            if value is not None:
                changes[key] = value
        for key, value in changes.items():
            setattr(dept, key, value)
        self._departments_changed()
        if create_chat and not dept.chat_id:
            self._create_dept_chat(dept)
        return {"department": self.render_department(dept, ids)}

    def _full_update_body(self, body: JSON) -> JSON:
        """A PUT body with the omitted fields that PUT clears (§4.4): ``name`` and
        ``parent_department_id`` are required (40016 / 40017), ``order`` is kept."""
        self._check_name(opt_str(body, "name"), empty_status=400)
        if not opt_str(body, "parent_department_id"):
            raise ApiError(40017, "parent id empty")
        body = {"i18n_name": {}, "department_hrbps": [], "group_chat_employee_types": [], **body}
        if "leaders" not in body:
            lead = body.get("leader_user_id")
            body["leaders"] = [{"leaderType": 1, "leaderID": lead}] if lead else []
        return body

    def _new_parent(self, dept: Department, old_parent: str, body: JSON,
                    ids: IdTypes) -> Department:
        """The parent after the update; a move keeps the tree acyclic and within its limits."""
        parent_ref = opt_str(body, "parent_department_id")
        if not parent_ref:
            return self.departments[old_parent]
        parent = self._check_parent(parent_ref, ids)
        if parent.open_id != old_parent:
            self._check_dept_scope(parent, 40014)
            if self._is_descendant_or_self(parent, dept):
                # UNCONFIRMED code: Feishu documents no dedicated code for this cycle.
                raise ApiError(40001, "param error: cannot move a department under itself or "
                                      "one of its descendants")
            self._check_room(parent, self._height(dept.open_id))
        return parent

    def _move_department(self, dept: Department, old_parent: str, parent: Department) -> None:
        self._children[old_parent].remove(dept.open_id)
        self._children[parent.open_id].append(dept.open_id)
        dept.parent = parent.open_id
        self._departments_changed()

    def delete_department(self, ref: str, ids: IdTypes) -> JSON:
        """DELETE contact/v3/departments/:id: only an empty leaf; its custom id is freed."""
        dept = self._dept_for_write(ref, ids)
        if dept.parent is None:
            raise ApiError(40002, "process root dept error")
        self._check_dept_scope(dept)
        if self._members[dept.open_id]:
            raise ApiError(43011, "department has members, can not be deleted")
        if self._children[dept.open_id]:
            raise ApiError(43012, "department has sub-departments, can not be deleted")
        dept.deleted = True
        self._children[dept.parent].remove(dept.open_id)
        self._live_dept_ids.pop(dept.custom_id, None)
        self._departments_changed()
        return {}

    def update_department_id(self, ref: str, body: JSON, ids: IdTypes) -> JSON:
        """PATCH contact/v3/departments/:id/update_department_id → ``{}`` (feishu-api-more.md
        §3, /document/contact-v3/department/update_department_id).

        ``new_department_id`` is required (40001) and follows the custom-id rules of a
        create: the 64-character regex, not ``0``/``1``, no ``od-`` prefix (43008, the
        create's code: the page's own error list names none), unique among live
        departments (43007). The root cannot be renamed (40002). The update-count limit
        (43009) is UNCONFIRMED and not modelled.
        """
        dept = self._dept_for_write(ref, ids)
        if dept.parent is None:
            raise ApiError(40002, "process root dept error")
        new_id = opt_str(body, "new_department_id")
        if not new_id:
            raise ApiError(40001, "param error: new_department_id is required")
        if new_id == dept.custom_id:
            return {}
        self._check_custom_dept_id({"department_id": new_id})
        self._live_dept_ids.pop(dept.custom_id, None)
        dept.custom_id = new_id
        self._live_dept_ids[new_id] = dept.open_id
        return {}

    def department_children(self, ref: str, ids: IdTypes, *, fetch_child: bool,
                            page_size: str | None, page_token: str | None) -> JSON:
        """GET departments/:id/children: direct children, or the whole subtree (pre-order)."""
        dept = self._dept_for_read(ref, ids)
        self._check_dept_scope(dept)
        items = self._subtree(dept) if fetch_child else self._sorted_children(dept.open_id)
        if fetch_child and 0 < self.knobs.big_department_size < len(items):
            # D/children, feishu-api-more.md §1.3: "超大部门不允许进行查询". UNCONFIRMED: the
            # real threshold and whether fetch_child=false avoids it (here it does).
            raise ApiError(43010, "big dept forbid recursion error")
        page, more, token = paginate(items, page_size, page_token,
                                     f"children:{dept.open_id}:{fetch_child}")
        return page_data([self.render_department(d, ids) for d in page], more, token)

    def department_parents(self, ref: str, ids: IdTypes, *, page_size: str | None,
                           page_token: str | None) -> JSON:
        """GET departments/parent: ancestors from the nearest up, excluding the root."""
        if not ref:
            raise ApiError(44102, "department_id is required")
        dept = self._dept_for_read(ref, ids)
        chain: list[Department] = []
        node = dept
        while node.parent is not None and node.parent != ROOT:
            node = self.departments[node.parent]
            chain.append(node)
        page, more, token = paginate(chain, page_size, page_token, f"parent:{dept.open_id}")
        return page_data([self.render_department(d, ids) for d in page], more, token)

    def batch_departments(self, refs: list[str], ids: IdTypes) -> JSON:
        """GET departments/batch (repeated ``department_ids``, at most 50)."""
        if not refs or len(refs) > MAX_BATCH:
            raise ApiError(40001, "param error: department_ids must hold 1 to 50 ids")
        depts = [self._dept_for_read(r, ids, allow_deleted=True) for r in refs]
        for dept in depts:
            self._check_dept_scope(dept)
        return {"items": [self.render_department(d, ids) for d in depts]}
