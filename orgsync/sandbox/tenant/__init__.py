"""The sandbox's Feishu tenant: departments, users, messages, chats, tokens and every rule.

Pure Python and synchronous: no HTTP here. Each public method takes the request's query
values and JSON body, validates them exactly as feishu-api.md §4–7 describes, mutates state
only when every check passed, and returns the ``data`` object of the response envelope.
A refused request raises :class:`ApiError` carrying Feishu's code, msg and HTTP status.

Internally departments are keyed by ``open_department_id`` and users by ``open_id``; the
``user_id_type`` / ``department_id_type`` of a request only decide how ids are read from the
path and body and how they are rendered (:class:`IdTypes`).

Where the official docs are silent the sandbox picks a behaviour and says so in a comment
marked UNCONFIRMED, so it can be corrected against the real API.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable

from orgsync.sandbox.tenant.body import (
    normalize_mobile,
    opt_bool,
    opt_list,
    opt_obj,
    opt_str,
    opt_str_list,
)
from orgsync.sandbox.tenant.model import (
    CHAT_UUID_WINDOW_S,
    JSON,
    MAX_BATCH,
    MAX_CHILDREN,
    MAX_DEPTH,
    MESSAGE_UUID_WINDOW_S,
    MSG_TYPES,
    RECEIVE_ID_TYPES,
    ROOT,
    ApiError,
    Department,
    IdTypes,
    SandboxClock,
    User,
    UserOrder,
    field_error,
)
from orgsync.sandbox.tenant.paging import page_data, paginate
from orgsync.sandbox.tenant.tokens import TokenStore
from orgsync.sandbox.tenant.users import Users

__all__ = [
    "JSON",
    "ApiError",
    "Department",
    "IdTypes",
    "SandboxClock",
    "Tenant",
    "TokenStore",
    "User",
    "UserOrder",
    "field_error",
    "normalize_mobile",
    "page_data",
    "paginate",
]

_CUSTOM_DEPT_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_\-@.]{0,63}$")


class Tenant(Users):
    """All directory and IM state of one sandbox tenant, with Feishu's validation rules.

    Not thread-safe by itself: the HTTP layer calls it under one lock, one request at a time.
    """

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

    def _check_name(self, name: str | None, *, empty_status: int) -> str:
        if name is None or not name.strip():
            # D-CREATE documents 40016 with HTTP 401 on create (400 on PUT); kept as documented.
            raise ApiError(40016, "dept name empty", empty_status)
        if "/" in name:
            raise ApiError(43029, "department name can not contain '/'")
        return name

    def _check_i18n(self, body: JSON) -> dict[str, str] | None:
        value = opt_obj(body, "i18n_name")
        if value is None:
            return None
        out: dict[str, str] = {}
        for lang in ("zh_cn", "ja_jp", "en_us"):
            text = value.get(lang)
            if text is None or text == "":
                continue
            if not isinstance(text, str):
                raise field_error(f"i18n_name.{lang} must be a string")
            if "/" in text:
                raise ApiError(43029, "department name can not contain '/'")
            out[lang] = text
        return out

    def _check_sibling_names(self, parent: str, name: str, i18n: dict[str, str],
                             exclude: str | None) -> None:
        # The docs say a name "must not duplicate an existing department name"; the sandbox
        # reads that as unique among live siblings (same parent), as the admin console enforces.
        for sibling in self._siblings(parent, exclude):
            if sibling.name == name:
                raise ApiError(43022, f"department name duplicate: {name}")
            for lang, text in i18n.items():
                if sibling.i18n_name.get(lang) == text:
                    raise ApiError(43018, f"department i18n name duplicate: {text}")

    def _check_order(self, body: JSON) -> int | None:
        value = body.get("order")
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.isdigit() and value.isascii():
            return int(value)
        raise ApiError(40001, "param error: order must be a string holding a non-negative integer")

    def _check_order_free(self, parent: str, order: int, exclude: str | None) -> None:
        if any(s.order == order for s in self._siblings(parent, exclude)):
            raise ApiError(43005, f"department order duplicate: {order}")

    def _default_order(self, parent: str, exclude: str | None = None) -> int:
        return max((s.order for s in self._siblings(parent, exclude)), default=0) + 1

    def _dept_leader_user(self, ref: str, ids: IdTypes) -> str:
        user = self.find_user(ref, ids.user)
        if user is None:
            raise ApiError(41012, f"user id invalid: {ref}")
        if user.resigned:
            raise ApiError(42006, f"user has resigned: {ref}")
        if user.unjoin:
            raise ApiError(43025, f"leader has not joined: {ref}")
        return user.open_id

    def _check_leaders(self, body: JSON, ids: IdTypes,
                       current: list[tuple[int, str]]) -> list[tuple[int, str]] | None:
        """New leaders list from ``leaders`` and/or ``leader_user_id``; None when neither is sent.

        ``leaders`` is accepted with the documented camelCase keys and with the snake_case
        keys the Python SDK sends (``leader_type`` / ``leader_id``, SDK135 ``leader_i_d``).
        """
        raw_leaders = opt_list(body, "leaders")
        leader_ref = opt_str(body, "leader_user_id")
        if raw_leaders is None and leader_ref is None:
            return None
        main_from_field = self._dept_leader_user(leader_ref, ids) if leader_ref else ""
        if raw_leaders is None:
            deputies = [(k, u) for k, u in current if k != 1 and u != main_from_field]
            return ([(1, main_from_field)] if main_from_field else []) + deputies
        parsed: list[tuple[int, str]] = []
        for item in raw_leaders:
            if not isinstance(item, dict):
                raise field_error("leaders items must be objects")
            kind = item.get("leaderType", item.get("leader_type"))
            ref = item.get("leaderID", item.get("leader_id", item.get("leader_i_d")))
            if kind not in (1, 2) or isinstance(kind, bool):
                raise ApiError(40001, "param error: leaderType must be 1 (main) or 2 (deputy)")
            if not isinstance(ref, str) or not ref:
                raise ApiError(40001, "param error: leaderID is required")
            parsed.append((int(kind), self._dept_leader_user(ref, ids)))
        if len({u for _, u in parsed}) != len(parsed):
            raise ApiError(43016, "leaders repeated")
        mains = [u for k, u in parsed if k == 1]
        if len(mains) > 1:
            raise ApiError(40001, "param error: leaders may hold only one main leader")
        if leader_ref is not None and (mains[0] if mains else "") != main_from_field:
            raise ApiError(40001, "param error: leader_user_id must equal the main leader in "
                                  "leaders")
        return sorted(parsed, key=lambda p: p[0])

    def _check_dept_extras(self, body: JSON, ids: IdTypes) -> JSON:
        extras: JSON = {}
        types = opt_list(body, "group_chat_employee_types")
        if types is not None:
            if not all(isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 5
                       for t in types):
                raise ApiError(43026, "invalid employee type")
            extras["group_chat_employee_types"] = list(types)
        hrbps = opt_str_list(body, "department_hrbps")
        if hrbps is not None:
            if len(hrbps) > 500:
                raise ApiError(43028, "invalid department hrbps: more than 500")
            extras["hrbps"] = [self._dept_leader_user(ref, ids) for ref in hrbps]
        units = opt_str_list(body, "unit_ids")
        if units is not None:
            if len(units) > 1:
                raise ApiError(43004, "illegal unit: only one unit is supported")
            extras["unit_ids"] = list(units)
        return extras

    def _create_dept_chat(self, dept: Department) -> None:
        dept.chat_id = self.new_chat_id()
        self.chats[dept.chat_id] = {
            "chat_id": dept.chat_id, "name": dept.name, "description": "",
            "owner": dept.leader, "members": [], "kind": "department",
            "department": dept.open_id, "uuid": None, "create_time": self.clock.now()}

    def render_department(self, dept: Department, ids: IdTypes) -> JSON:
        """A department object exactly as the API returns it (camelCase ``leaders``)."""
        member_count, primary_count = self._counts_for(dept.open_id)
        parent = ""
        if dept.parent is not None:
            parent = self._dept_ref(self.departments[dept.parent], ids)
        return {
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
            "leaders": [{"leaderType": kind, "leaderID": self._user_ref(uid, ids)}
                        for kind, uid in dept.leaders],
            "group_chat_employee_types": list(dept.group_chat_employee_types),
            "department_hrbps": [self._user_ref(uid, ids) for uid in dept.hrbps],
        }

    # ----------------------------------------------------------------- departments

    def create_department(self, body: JSON, ids: IdTypes, client_token: str | None = None) -> JSON:
        """POST contact/v3/departments → ``{"department": {...}}``."""
        return self._idempotent("department", client_token, body, ids,
                                lambda: self._create_department(body, ids))

    def _create_department(self, body: JSON, ids: IdTypes) -> JSON:
        name = self._check_name(opt_str(body, "name"), empty_status=401)
        parent_ref = opt_str(body, "parent_department_id")
        if not parent_ref:
            raise ApiError(44101, "parent_department_id is required")
        parent = self.find_department(parent_ref, ids.dept)
        if parent is None or parent.deleted:
            # UNCONFIRMED: no documented "parent not found" code (feishu-api.md §6.2); the
            # sandbox answers 40014 "no parent dept authority" (HTTP 403).
            raise ApiError(40014, f"no parent dept authority: {parent_ref}", 403)
        custom_id = opt_str(body, "department_id") or ""
        if custom_id:
            if (not _CUSTOM_DEPT_ID.match(custom_id) or custom_id in ("0", "1")
                    or custom_id.startswith("od-")):
                raise ApiError(43008, f"custom dept id invalid: {custom_id}")
            if custom_id in self._live_dept_ids:
                raise ApiError(43007, f"custom dept id duplicated: {custom_id}")
        i18n = self._check_i18n(body) or {}
        self._check_sibling_names(parent.open_id, name, i18n, None)
        order = self._check_order(body)
        if order is not None:
            self._check_order_free(parent.open_id, order, None)
        if self._depth(parent) + 1 > MAX_DEPTH:
            raise ApiError(43019, "department level exceeds 25")
        if len(self._children[parent.open_id]) >= MAX_CHILDREN:
            raise ApiError(43013, "too many sub-departments (max 1000)")
        leaders = self._check_leaders(body, ids, []) or []
        extras = self._check_dept_extras(body, ids)
        create_chat = opt_bool(body, "create_group_chat") or False

        dept = Department(
            open_id=self._new_open_dept_id(),
            custom_id=custom_id or self._new_custom_dept_id(),
            name=name, parent=parent.open_id,
            order=order if order is not None else self._default_order(parent.open_id),
            seq=self._next_seq(), i18n_name=i18n, leaders=leaders,
            unit_ids=extras.get("unit_ids", []),
            group_chat_employee_types=extras.get("group_chat_employee_types", []),
            hrbps=extras.get("hrbps", []))
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
        self._counts = None

    def get_department(self, ref: str, ids: IdTypes) -> JSON:
        """GET contact/v3/departments/:id (a deleted department shows ``status.is_deleted``)."""
        dept = self._dept_for_read(ref, ids, allow_deleted=True)
        return {"department": self.render_department(dept, ids)}

    def patch_department(self, ref: str, body: JSON, ids: IdTypes) -> JSON:
        """PATCH contact/v3/departments/:id: partial update, move via ``parent_department_id``."""
        return self._update_department(ref, body, ids, full=False)

    def put_department(self, ref: str, body: JSON, ids: IdTypes) -> JSON:
        """PUT contact/v3/departments/:id: full replacement (``order`` is kept if omitted)."""
        return self._update_department(ref, body, ids, full=True)

    def _update_department(self, ref: str, body: JSON, ids: IdTypes, *, full: bool) -> JSON:
        dept = self._dept_for_write(ref, ids)
        if dept.parent is None:
            raise ApiError(40002, "process root dept error")
        if full:
            self._check_name(opt_str(body, "name"), empty_status=400)
            if not opt_str(body, "parent_department_id"):
                raise ApiError(40017, "parent id empty")
            body = {"i18n_name": {}, "department_hrbps": [], "group_chat_employee_types": [],
                    **body}
            if "leaders" not in body:
                lead = body.get("leader_user_id")
                body["leaders"] = [{"leaderType": 1, "leaderID": lead}] if lead else []
        name = dept.name
        if full or "name" in body:
            name = self._check_name(opt_str(body, "name"), empty_status=400)
        parent = self.departments[dept.parent]
        parent_ref = opt_str(body, "parent_department_id")
        if parent_ref:
            target = self.find_department(parent_ref, ids.dept)
            if target is None or target.deleted:
                raise ApiError(40014, f"no parent dept authority: {parent_ref}", 403)
            parent = target
        moving = parent.open_id != dept.parent
        if moving:
            if self._is_descendant_or_self(parent, dept):
                # UNCONFIRMED code: Feishu documents no dedicated code for this cycle.
                raise ApiError(40001, "param error: cannot move a department under itself or "
                                      "one of its descendants")
            if self._depth(parent) + 1 + self._height(dept.open_id) > MAX_DEPTH:
                raise ApiError(43019, "department level exceeds 25")
            if len(self._children[parent.open_id]) >= MAX_CHILDREN:
                raise ApiError(43013, "too many sub-departments (max 1000)")
        i18n = self._check_i18n(body)
        self._check_sibling_names(parent.open_id, name,
                                  i18n if i18n is not None else dept.i18n_name, dept.open_id)
        order = self._check_order(body)
        if order is not None:
            self._check_order_free(parent.open_id, order, dept.open_id)
        elif moving and any(s.order == dept.order for s in self._siblings(parent.open_id)):
            order = self._default_order(parent.open_id)  # keep the order unless it collides
        leaders = self._check_leaders(body, ids, dept.leaders)
        extras = self._check_dept_extras(body, ids)
        create_chat = opt_bool(body, "create_group_chat") or False

        if moving:
            self._children[dept.parent].remove(dept.open_id)
            self._children[parent.open_id].append(dept.open_id)
            dept.parent = parent.open_id
            self._counts = None
        dept.name = name
        if i18n is not None:
            dept.i18n_name = i18n
        if order is not None:
            dept.order = order
        if leaders is not None:
            dept.leaders = leaders
        if "unit_ids" in extras:
            dept.unit_ids = extras["unit_ids"]
        if "group_chat_employee_types" in extras:
            dept.group_chat_employee_types = extras["group_chat_employee_types"]
        if "hrbps" in extras:
            dept.hrbps = extras["hrbps"]
        if create_chat and not dept.chat_id:
            self._create_dept_chat(dept)
        return {"department": self.render_department(dept, ids)}

    def delete_department(self, ref: str, ids: IdTypes) -> JSON:
        """DELETE contact/v3/departments/:id: only an empty leaf; its custom id is freed."""
        dept = self._dept_for_write(ref, ids)
        if dept.parent is None:
            raise ApiError(40002, "process root dept error")
        if self._members[dept.open_id]:
            raise ApiError(43011, "department has members, can not be deleted")
        if self._children[dept.open_id]:
            raise ApiError(43012, "department has sub-departments, can not be deleted")
        dept.deleted = True
        self._children[dept.parent].remove(dept.open_id)
        self._live_dept_ids.pop(dept.custom_id, None)
        self._counts = None
        return {}

    def department_children(self, ref: str, ids: IdTypes, *, fetch_child: bool,
                            page_size: str | None, page_token: str | None) -> JSON:
        """GET departments/:id/children: direct children, or the whole subtree (pre-order)."""
        dept = self._dept_for_read(ref, ids)
        items = self._subtree(dept) if fetch_child else self._sorted_children(dept.open_id)
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
        return {"items": [self.render_department(d, ids) for d in depts]}

    # ----------------------------------------------------------------- IM

    def send_message(self, receive_id_type: str | None, body: JSON, *, app_id: str,
                     admit: Callable[[str], None] | None = None) -> JSON:
        """POST im/v1/messages. ``admit(target)`` is called for the resolved receiver before the
        message is stored (the per-target rate limit raises from there); a ``uuid`` seen in the
        last hour returns the first message instead of sending again.
        """
        if receive_id_type not in RECEIVE_ID_TYPES:
            raise ApiError(230001, "invalid receive_id_type")
        receive_id = opt_str(body, "receive_id")
        msg_type = opt_str(body, "msg_type")
        content = body.get("content")
        uuid = opt_str(body, "uuid")
        if not receive_id:
            raise ApiError(230001, "invalid parameter: receive_id is required")
        if msg_type not in MSG_TYPES:
            raise ApiError(230001, "invalid parameter: msg_type is not supported")
        if not isinstance(content, str):
            raise ApiError(230001, "invalid parameter: content must be a string of JSON")
        try:
            parsed = json.loads(content)
        except ValueError:
            raise ApiError(230001, "invalid parameter: content is not valid JSON") from None
        if msg_type == "text" and not (isinstance(parsed, dict)
                                       and isinstance(parsed.get("text"), str)):
            raise ApiError(230001, "invalid parameter: text content needs a \"text\" string")
        limit = 150 * 1024 if msg_type == "text" else 30 * 1024
        if msg_type in ("text", "post", "interactive") and len(content.encode()) > limit:
            raise ApiError(230025, "message content is too long")
        if uuid is not None and len(uuid) > 50:
            raise ApiError(230001, "invalid parameter: uuid longer than 50")
        now = self.clock.now()
        if uuid:
            prior = self._message_uuids.get(uuid)
            if prior is not None and now - prior[0] < MESSAGE_UUID_WINDOW_S:
                return copy.deepcopy(prior[1])
        target, chat_id = self._receiver(receive_id_type, receive_id)
        if admit is not None:
            admit(target)
        millis = str(int(now * 1000))
        data: JSON = {
            "message_id": "om_" + self._hex(), "root_id": "", "parent_id": "", "thread_id": "",
            "msg_type": msg_type, "create_time": millis, "update_time": millis,
            "deleted": False, "updated": False, "chat_id": chat_id,
            "sender": {"id": app_id, "id_type": "app_id", "sender_type": "app",
                       "tenant_key": "sandbox"},
            "body": {"content": content}, "mentions": [], "upper_message_id": ""}
        self.messages.append({
            "message_id": data["message_id"], "receive_id_type": receive_id_type,
            "receive_id": receive_id, "receiver": target, "chat_id": chat_id,
            "msg_type": msg_type, "content": content, "uuid": uuid, "time": now})
        if uuid:
            self._message_uuids[uuid] = (now, copy.deepcopy(data))
        return data

    def _receiver(self, receive_id_type: str, receive_id: str) -> tuple[str, str]:
        """``(target key, chat_id)``: a user's open_id and their p2p chat, or a group chat."""
        if receive_id_type == "chat_id":
            if receive_id not in self.chats:
                raise ApiError(230034, f"receive_id is invalid: {receive_id}")
            return receive_id, receive_id
        if receive_id_type == "email":
            found = self._lookup("email", receive_id.lower(), True)
        else:
            found = self.find_user(receive_id, receive_id_type)
        if found is None:
            raise ApiError(230034, f"receive_id is invalid: {receive_id}")
        if found.resigned:
            raise ApiError(230029, "the user has resigned")
        if not found.reachable:
            raise ApiError(230013, "bot has no availability to this user")
        chat = self._p2p_chats.get(found.open_id)
        if chat is None:
            chat = self._p2p_chats[found.open_id] = self.new_chat_id()
        return found.open_id, chat

    def create_chat(self, body: JSON, ids: IdTypes, uuid: str | None) -> JSON:
        """POST im/v1/chats (minimal): name, owner, members; ``uuid`` + owner dedup for 10 h."""
        if uuid is not None and len(uuid) > 50:
            raise ApiError(232001, "invalid param: uuid longer than 50")
        name = opt_str(body, "name") or ""
        description = opt_str(body, "description") or ""
        owner_ref = opt_str(body, "owner_id") or ""
        members = opt_str_list(body, "user_id_list") or []
        if len(members) > 50:
            raise ApiError(232001, "invalid param: user_id_list holds more than 50 ids")
        now = self.clock.now()
        if uuid:
            prior = self._chat_uuids.get((uuid, owner_ref))
            if prior is not None and now - prior[0] < CHAT_UUID_WINDOW_S:
                return copy.deepcopy(prior[1])
        resolved: list[str] = []
        for ref in ([owner_ref] if owner_ref else []) + members:
            user = self.find_user(ref, ids.user)
            if user is None:
                raise ApiError(232043, f"unavailable ids: {ref}")
            if user.resigned:
                raise ApiError(232022, f"the invited user has resigned: {ref}")
            resolved.append(user.open_id)
        owner = resolved[0] if owner_ref else ""
        chat_id = self.new_chat_id()
        self.chats[chat_id] = {"chat_id": chat_id, "name": name, "description": description,
                               "owner": owner, "members": list(dict.fromkeys(resolved)),
                               "kind": "group", "department": None, "uuid": uuid,
                               "create_time": now}
        data: JSON = {
            "chat_id": chat_id, "avatar": "", "name": name, "description": description,
            "i18n_names": {"zh_cn": "", "en_us": "", "ja_jp": ""},
            "owner_id": owner_ref, "owner_id_type": ids.user,
            "add_member_permission": "all_members", "share_card_permission": "allowed",
            "at_all_permission": "all_members", "edit_permission": "all_members",
            "group_message_type": "chat", "chat_mode": "group", "chat_type": "private",
            "chat_tag": "inner", "join_message_visibility": "all_members",
            "leave_message_visibility": "all_members",
            "membership_approval": "no_approval_required",
            "moderation_permission": "all_members", "external": False,
            "tenant_key": "sandbox"}
        if uuid:
            self._chat_uuids[(uuid, owner_ref)] = (now, copy.deepcopy(data))
        return data

    # ----------------------------------------------------------------- state dump / load

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
            departments.append(self.render_department(dept, ids))
        users = []
        for user in sorted(self.users.values(), key=lambda u: u.seq):
            item = self.render_user(user, ids)
            item.update(resign_time=user.resign_time, handover=copy.deepcopy(user.handover),
                        reachable=user.reachable)
            users.append(item)
        return {"departments": departments, "users": users,
                "messages": copy.deepcopy(self.messages),
                "chats": copy.deepcopy(list(self.chats.values()))}

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
            parents[open_id] = str(raw.get("parent_department_id") or ROOT)
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

        raw_users = list(state.get("users", []))
        links: list[tuple[User, JSON]] = []
        for raw in raw_users:
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
            user.frozen = bool(status.get("is_frozen", raw.get("is_frozen", False)))
            user.resigned = resigned
            user.unjoin = bool(status.get("is_unjoin", False))
            user.activated = bool(status.get("is_activated", not resigned and not user.unjoin))
            user.resign_time = raw.get("resign_time")
            if resigned and user.resign_time is None:
                user.resign_time = self.clock.now()
            user.handover = raw.get("handover")
            user.reachable = bool(raw.get("reachable", True))
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
            links.append((user, raw))
        for user, raw in links:
            if user.resigned:
                continue
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
        for raw, dept in zip(raw_depts, [d for d in self.departments.values()
                                         if d.parent is not None], strict=True):
            leaders = [(int(item.get("leaderType", item.get("leader_type", 2))),
                        self._seed_user(str(item.get("leaderID", item.get("leader_id")))).open_id)
                       for item in raw.get("leaders") or []]
            if raw.get("leader_user_id") and not any(k == 1 for k, _ in leaders):
                leaders.insert(0, (1, self._seed_user(str(raw["leader_user_id"])).open_id))
            dept.leaders = sorted(leaders, key=lambda p: p[0])
            dept.hrbps = [self._seed_user(str(r)).open_id
                          for r in raw.get("department_hrbps") or []]
        self.messages = [dict(m) for m in state.get("messages", [])]
        for chat in state.get("chats", []):
            self.chats[str(chat["chat_id"])] = dict(chat)
        for dept in self.departments.values():
            if dept.chat_id and dept.chat_id not in self.chats:
                self.chats[dept.chat_id] = {
                    "chat_id": dept.chat_id, "name": dept.name, "description": "",
                    "owner": dept.leader, "members": [], "kind": "department",
                    "department": dept.open_id, "uuid": None, "create_time": self.clock.now()}
        self._counts = None

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
