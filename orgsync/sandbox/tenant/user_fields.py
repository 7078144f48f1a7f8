"""The user body rules of feishu-api.md §5.1 (U-CREATE) and §5.3 (U-PATCH)."""

from __future__ import annotations

import copy
import re

from orgsync.sandbox.tenant.body import (
    normalize_mobile,
    opt_bool,
    opt_int,
    opt_list,
    opt_str,
    opt_str_list,
)
from orgsync.sandbox.tenant.images import Images
from orgsync.sandbox.tenant.job_catalog import FAMILY, LEVEL, JobCatalog
from orgsync.sandbox.tenant.model import (
    JSON,
    MAX_DIRECT_MEMBERS,
    MAX_USER_DEPARTMENTS,
    ApiError,
    Department,
    IdTypes,
    User,
    UserOrder,
    field_error,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserFields(JobCatalog, Images):
    """Validation of user create and patch bodies."""

    def _validate_user(self, body: JSON, ids: IdTypes, current: User | None) -> JSON:
        """Check a create (``current`` None) or patch body; return the attribute changes.

        One step per field or rule, in a fixed order: the first rule broken decides the answer.
        A step records what it accepted in ``changes``, which later steps may read.
        """
        changes: JSON = {}
        for step in (self._user_name, self._user_alias_names, self._user_profile_texts,
                     self._user_job_title, self._user_mobile, self._user_email,
                     self._user_email_outside_mainland, self._user_enterprise_email,
                     self._user_custom_id, self._user_employee_no, self._user_employee_type,
                     self._user_gender, self._user_join_time, self._user_switches,
                     self._user_job_catalogs,
                     self._user_custom_attrs, self._user_departments_and_orders,
                     self._user_direct_leader, self._user_dotted_line_leaders):
            step(body, ids, current, changes)
        return changes

    # ----------------------------------------------------------------- one step per field
    # feishu-api.md §5.1 (U-CREATE) lists the fields, §5.3 (U-PATCH) what differs on patch,
    # §6.3 the codes. ``current`` is None on create.

    def _user_name(self, body: JSON, ids: IdTypes, current: User | None, changes: JSON) -> None:
        """``name``: required on create (41040), at most 255 chars (41070 create, 44006 patch)."""
        name = opt_str(body, "name")
        if current is None or name is not None:
            if not name:
                raise ApiError(41040, "name is required")
            if len(name) > 255:
                raise ApiError(41070 if current is None else 44006, "name is too long (max 255)")
            changes["name"] = name

    def _user_alias_names(self, body: JSON, ids: IdTypes, current: User | None,
                          changes: JSON) -> None:
        """``en_name`` / ``nickname``: at most 255 (41071 / 41072 create, 44007 / 44008 patch);
        ``""`` clears (UNCONFIRMED, feishu-api-more.md §1.5)."""
        for key, create_code, patch_code in (("en_name", 41071, 44007),
                                             ("nickname", 41072, 44008)):
            value = self._check_len(body, key, 255, create_code if current is None else patch_code)
            if value is not None:
                changes[key] = value

    def _user_profile_texts(self, body: JSON, ids: IdTypes, current: User | None,
                            changes: JSON) -> None:
        """``city``, ``country``, ``work_station``, ``avatar_key``: at most 255 chars (40001;
        §5.1 names no code for them); ``""`` clears (UNCONFIRMED, feishu-api-more.md §1.5)."""
        for key in ("city", "country", "work_station", "avatar_key"):
            value = self._check_len(body, key, 255, 40001)
            if value is not None:
                if key == "avatar_key":
                    self.check_avatar_key(value)  # 41036 (orgsync.sandbox.tenant.images)
                changes[key] = value

    def _user_job_title(self, body: JSON, ids: IdTypes, current: User | None,
                        changes: JSON) -> None:
        """``job_title``: at most 255 chars, as §5.1's table says (41063; its text says 100).

        A single space clears it (feishu-api-more.md §1.5, ``U/patch``). ``""`` clears it
        too, as the sandbox always had it: whether Feishu takes ``""`` as a clear or
        ignores it is UNCONFIRMED."""
        job_title = self._check_len(body, "job_title", 255, 41063)
        if job_title is not None:
            changes["job_title"] = "" if job_title == " " else job_title

    def _user_mobile(self, body: JSON, ids: IdTypes, current: User | None, changes: JSON) -> None:
        """``mobile``: required on create (41010), valid (41004), unique among live users
        (41001); stored normalized (``+86…`` for mainland numbers)."""
        mobile = opt_str(body, "mobile")
        if current is None and not mobile:
            raise ApiError(41010, "mobile is required")
        if mobile is not None:
            changes["mobile"] = normalize_mobile(mobile)
            self._check_unique(self._live_mobiles, changes["mobile"], _own_id(current), 41001,
                               "mobile")

    def _user_email(self, body: JSON, ids: IdTypes, current: User | None, changes: JSON) -> None:
        """``email``: valid (41005), unique among live users ignoring case (41002); ``""``
        clears (UNCONFIRMED, feishu-api-more.md §1.5)."""
        email = opt_str(body, "email")
        if email:
            if not _EMAIL.match(email):
                raise ApiError(41005, "email is invalid")
            self._check_unique(self._live_emails, email.lower(), _own_id(current), 41002, "email")
        if email is not None:
            changes["email"] = email

    def _user_email_outside_mainland(self, body: JSON, ids: IdTypes, current: User | None,
                                     changes: JSON) -> None:
        """A mobile outside mainland China needs an email (44020), judged on the result."""
        final_mobile = changes.get("mobile", current.mobile if current else "")
        final_email = changes.get("email", current.email if current else "")
        if not final_mobile.startswith("+86") and not final_email:
            raise ApiError(44020, "email is required for a mobile outside mainland China")

    def _user_enterprise_email(self, body: JSON, ids: IdTypes, current: User | None,
                               changes: JSON) -> None:
        """``enterprise_email`` needs Feishu Mail, which the sandbox tenant has not (44001)."""
        if opt_str(body, "enterprise_email"):
            raise ApiError(44001, "the tenant has no enterprise mail domain")

    def _user_custom_id(self, body: JSON, ids: IdTypes, current: User | None,
                        changes: JSON) -> None:
        """``user_id`` (create only): at most 64 chars (41043), no spaces (41012), unique
        among live users (41011); empty means a random one."""
        if current is not None:
            return
        user_id = opt_str(body, "user_id") or ""
        if user_id:
            if len(user_id) > 64:
                raise ApiError(41043, "user_id can't exceed 64 chars")
            if any(c.isspace() for c in user_id):
                raise ApiError(41012, "user id invalid: user_id must not contain spaces")
            self._check_unique(self._live_user_ids, user_id, None, 41011, "user_id")
        changes["user_id"] = user_id

    def _user_employee_no(self, body: JSON, ids: IdTypes, current: User | None,
                          changes: JSON) -> None:
        """``employee_no``: at most 255 chars (40001), unique among live users (44051)."""
        employee_no = self._check_len(body, "employee_no", 255, 40001)
        if employee_no is not None:
            self._check_unique(self._live_employee_nos, employee_no, _own_id(current), 44051,
                               "employee_no")
            changes["employee_no"] = employee_no

    def _user_employee_type(self, body: JSON, ids: IdTypes, current: User | None,
                            changes: JSON) -> None:
        """``employee_type``: required on create, 1 regular … 5 consultant or an active custom
        type (``custom_employee_types``, feishu-api-more.md §1.13), else 41059."""
        employee_type = opt_int(body, "employee_type")
        if current is None or employee_type is not None:
            custom = {int(v) for v in self.knobs.custom_employee_types or ()} \
                | self.active_custom_types()
            if employee_type is None or not (1 <= employee_type <= 5 or employee_type in custom):
                raise ApiError(41059, "employee_type is invalid")
            changes["employee_type"] = employee_type

    def _user_gender(self, body: JSON, ids: IdTypes, current: User | None, changes: JSON) -> None:
        """``gender``: 0–3 (41038)."""
        gender = opt_int(body, "gender")
        if gender is not None:
            if not 0 <= gender <= 3:
                raise ApiError(41038, "gender is invalid")
            changes["gender"] = gender

    def _user_job_catalogs(self, body: JSON, ids: IdTypes, current: User | None,
                           changes: JSON) -> None:
        """``job_level_id`` / ``job_family_id``: an existing, enabled entry (44044 / 44045,
        feishu-api-more.md §5.2, §5.3)."""
        for kind in (LEVEL, FAMILY):
            ref = opt_str(body, f"{kind.name}_id")
            if ref is not None:
                changes[f"{kind.name}_id"] = self.check_catalog_ref(kind, ref)

    def _user_join_time(self, body: JSON, ids: IdTypes, current: User | None,
                        changes: JSON) -> None:
        """``join_time``: seconds, not negative (41042); the create defaults it to now."""
        join_time = opt_int(body, "join_time")
        if join_time is not None:
            if join_time < 0:
                raise ApiError(41042, "join_time is invalid")
            changes["join_time"] = join_time

    def _user_switches(self, body: JSON, ids: IdTypes, current: User | None,
                       changes: JSON) -> None:
        """``mobile_visible``; ``is_frozen`` only on patch (§5.3), ignored on create."""
        mobile_visible = opt_bool(body, "mobile_visible")
        if mobile_visible is not None:
            changes["mobile_visible"] = mobile_visible
        frozen = opt_bool(body, "is_frozen")
        if frozen is not None and current is not None:
            changes["frozen"] = frozen

    def _user_custom_attrs(self, body: JSON, ids: IdTypes, current: User | None,
                           changes: JSON) -> None:
        """``custom_attrs`` (feishu-api-more.md §6): each element needs ``type`` and ``id``
        (41044), an attribute the tenant defines (41045) and a ``value`` (41046); HREF needs
        ``text`` (41047) and ``url`` (41048). Elements of an attribute not opened to the API
        have no effect (the list page); the others replace those of the same id (UNCONFIRMED
        whether Feishu replaces the whole list, §1.5: the sandbox keeps the unnamed ones)."""
        attrs = opt_list(body, "custom_attrs")
        if attrs is None:
            return
        defined = {str(a.get("id")): a for a in self.knobs.custom_attrs or ()}
        kept = {str(a.get("id")): a for a in (current.custom_attrs if current else ())
                if isinstance(a, dict)}
        for a in attrs:
            if not isinstance(a, dict) or not a.get("type") or not a.get("id"):
                raise ApiError(41044, "custom attribute type or id missing")
            if str(a["id"]) not in defined:
                raise ApiError(41045, "custom attribute id does not exist")
            value = a.get("value")
            if not isinstance(value, dict):
                raise ApiError(41046, "custom attribute value missing")
            if a["type"] == "HREF" and not value.get("text"):
                raise ApiError(41047, "HREF text is empty")
            if a["type"] == "HREF" and not value.get("url"):
                raise ApiError(41048, "HREF url is empty")
            if defined[str(a["id"])].get("api_enabled", True):
                kept[str(a["id"])] = copy.deepcopy(a)
        changes["custom_attrs"] = list(kept.values())

    def _user_departments_and_orders(self, body: JSON, ids: IdTypes, current: User | None,
                                     changes: JSON) -> None:
        """``department_ids`` and ``orders`` (:meth:`_user_departments`, :meth:`_user_orders`);
        on patch ``orders`` only together with ``department_ids`` (44002)."""
        depts = self._user_departments(body, ids, current)
        if depts is None:
            if "orders" in body:
                raise ApiError(44002, "orders can only be changed together with department_ids")
        else:
            changes["orders"] = self._user_orders(body, ids, depts, current)

    def _user_direct_leader(self, body: JSON, ids: IdTypes, current: User | None,
                            changes: JSON) -> None:
        """``leader_user_id``: see :meth:`_user_leader`; ``""`` clears it (UNCONFIRMED,
        feishu-api-more.md §1.5)."""
        leader_ref = opt_str(body, "leader_user_id")
        if leader_ref is not None:
            changes["leader"] = self._user_leader(leader_ref, ids, current,
                                                  changes.get("user_id"))

    def _user_dotted_line_leaders(self, body: JSON, ids: IdTypes, current: User | None,
                                  changes: JSON) -> None:
        """``dotted_line_leader_user_ids``: each one as a leader, without the cycle check."""
        dotted = opt_str_list(body, "dotted_line_leader_user_ids")
        if dotted is not None:
            changes["dotted_line_leaders"] = [
                self._user_leader(ref, ids, current, changes.get("user_id"), direct=False)
                for ref in dotted]

    # ----------------------------------------------------------------- shared checks

    def _check_unique(self, index: dict[str, str], key: str, self_id: str | None,
                      code: int, what: str) -> None:
        """Refuse ``key`` with ``code`` when a live user other than ``self_id`` holds it."""
        holder = index.get(key)
        if key and holder is not None and holder != self_id:
            raise ApiError(code, f"{what} already exists")

    def _check_len(self, body: JSON, key: str, limit: int, code: int) -> str | None:
        """The string at ``key``, refused with ``code`` when longer than ``limit``."""
        value = opt_str(body, key)
        if value is not None and len(value) > limit:
            raise ApiError(code, f"{key} is too long (max {limit})")
        return value

    def _user_departments(self, body: JSON, ids: IdTypes, current: User | None) -> list[str] | None:
        """``department_ids`` as open ids, None when a patch leaves them out: required on create
        (41041), 1–50 (41033), live departments, no repeats, room for one more member (41016)."""
        refs = opt_str_list(body, "department_ids")
        if refs is None:
            if current is None:
                raise ApiError(41041, "department_ids is required")
            return None
        if not refs:
            raise ApiError(41041, "department_ids is required")
        if len(refs) > MAX_USER_DEPARTMENTS:
            raise ApiError(41033, "a user can be in at most 50 departments")
        depts = [self._user_department(r, ids, current).open_id for r in refs]
        if len(set(depts)) != len(depts):
            raise ApiError(40001, "param error: department_ids holds duplicates")
        for dept_id in depts:
            members = self._members[dept_id]
            if len(members) >= MAX_DIRECT_MEMBERS and (current is None
                                                       or current.open_id not in members):
                raise ApiError(41016, "department has too many users")
        return depts

    def _user_department(self, ref: str, ids: IdTypes, current: User | None) -> Department:
        """One of ``department_ids``: on a patch an unknown one is 44035 "departmentID is
        invaild" (sic; U/patch only, feishu-api-more.md §1.9); create documents no code
        (UNCONFIRMED), the gateway's "ids not existed" stands in."""
        if current is not None:
            dept = self.find_department(ref, ids.dept)
            if dept is None or dept.deleted:
                raise ApiError(44035, "departmentID is invaild")
        return self._dept_for_write(ref, ids)

    def _user_orders(self, body: JSON, ids: IdTypes, depts: list[str],
                     current: User | None) -> list[UserOrder]:
        """One order per department in ``depts``: an order names one of them (41025), at most one
        is flagged primary and it has the largest ``department_order`` (41410).

        The primary department is the one with the largest ``department_order``
        (feishu-api-more.md §1.6, ``U/create``, ``U/patch``); on a tie the one that was
        primary, else the first of ``department_ids`` (the create default). A department
        the body gives no order for keeps its previous one: a PATCH of ``department_ids``
        without ``orders`` keeps the orders, so the primary stays where it was
        (UNCONFIRMED; of the readings the docs leave open, the one that makes a client's
        job hardest: only ``orders`` move the primary)."""
        raw = opt_list(body, "orders")
        previous = {o.dept: o for o in current.orders} if current else {}
        given: dict[str, UserOrder] = {}
        for item in raw or []:
            if not isinstance(item, dict):
                raise field_error("orders items must be objects")
            ref = opt_str(item, "department_id")
            dept = self.find_department(ref, ids.dept) if ref else None
            if dept is None or dept.open_id not in depts:
                raise ApiError(41025, f"order department not in department_ids: {ref}")
            given[dept.open_id] = UserOrder(
                dept.open_id, opt_int(item, "user_order") or 0,
                opt_int(item, "department_order") or 0,
                opt_bool(item, "is_primary_dept") or False)
        if sum(o.is_primary for o in given.values()) > 1:
            raise ApiError(40001, "param error: only one order may be the primary department")
        orders = [given.get(d) or copy.copy(previous.get(d)) or UserOrder(d) for d in depts]
        flagged = next((o for o in given.values() if o.is_primary), None)
        if flagged is not None:
            if any(o.department_order > flagged.department_order for o in orders):
                raise ApiError(41410, "the primary department must have the largest "
                                      "department_order")
            primary = flagged
        else:
            primary = max(orders, key=lambda o: (o.department_order, o.is_primary,
                                                 -depts.index(o.dept)))
        for o in orders:
            o.is_primary = o is primary
        return orders

    def _user_leader(self, ref: str, ids: IdTypes, me: User | None,
                     my_user_id: str | None, *, direct: bool = True) -> str:
        """The open_id of a leader reference (``""`` clears): not the user themself (41030),
        known (44022), not resigned (44021), and a direct leader closes no management cycle."""
        if not ref:
            return ""
        leader = self.find_user(ref, ids.user)
        if leader is not None and me is not None and leader.open_id == me.open_id:
            raise ApiError(41030, "leader can not be the user self")
        if leader is None and ids.user == "user_id" and ref == my_user_id:
            raise ApiError(41030, "leader can not be the user self")
        if leader is None:
            raise ApiError(44022, f"leader id invalid: {ref}")
        if leader.resigned:
            raise ApiError(44021, f"leader has resigned: {ref}")
        if me is not None and direct:
            node: User | None = leader
            while node is not None and node.leader:
                if node.leader == me.open_id:
                    # UNCONFIRMED code: the docs name no code for a management cycle.
                    raise ApiError(40001, "param error: leader_user_id would create a "
                                          "management cycle")
                node = self.users.get(node.leader)
        return leader.open_id


def _own_id(current: User | None) -> str | None:
    """The open_id a uniqueness check may find as the holder: the patched user's own."""
    return current.open_id if current else None
