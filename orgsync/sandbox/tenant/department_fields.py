"""The department body rules of feishu-api.md §4.1 (D-CREATE), §4.3 (D-PATCH), §4.4 (D-PUT).

One check per field or rule, with the codes of §6.2. The endpoints in ``departments`` call
them in a fixed order, so the first broken rule decides the answer.
"""

from __future__ import annotations

import re

from orgsync.sandbox.tenant.body import opt_list, opt_obj, opt_str, opt_str_list
from orgsync.sandbox.tenant.ids import IdIndex
from orgsync.sandbox.tenant.model import (
    JSON,
    MAX_CHILDREN,
    MAX_DEPTH,
    ApiError,
    Department,
    IdTypes,
    field_error,
)

_CUSTOM_DEPT_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_\-@.]{0,63}$")


class DepartmentFields(IdIndex):
    """Validation of department create and update bodies."""

    def _check_name(self, name: str | None, *, empty_status: int) -> str:
        """``name``: not blank (40016), no ``/`` (43029)."""
        if name is None or not name.strip():
            # D-CREATE documents 40016 with HTTP 401 on create (400 on PUT); kept as documented.
            raise ApiError(40016, "dept name empty", empty_status)
        if "/" in name:
            raise ApiError(43029, "department name can not contain '/'")
        return name

    def _check_i18n(self, body: JSON) -> dict[str, str] | None:
        """``i18n_name``: ``{zh_cn, ja_jp, en_us}`` strings without ``/`` (43029); empty ones
        are dropped; None when not sent."""
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

    def _check_custom_dept_id(self, body: JSON) -> str:
        """``department_id`` on create (§1's custom-id rules): the regex, not ``0`` / ``1``, no
        ``od-`` prefix (43008), unused by a live department (43007); ``""`` when not sent."""
        custom_id = opt_str(body, "department_id") or ""
        if custom_id:
            if (not _CUSTOM_DEPT_ID.match(custom_id) or custom_id in ("0", "1")
                    or custom_id.startswith("od-")):
                raise ApiError(43008, f"custom dept id invalid: {custom_id}")
            if custom_id in self._live_dept_ids:
                raise ApiError(43007, f"custom dept id duplicated: {custom_id}")
        return custom_id

    def _check_parent(self, parent_ref: str, ids: IdTypes) -> Department:
        """``parent_department_id``: a live department (40014, HTTP 403)."""
        parent = self.find_department(parent_ref, ids.dept)
        if parent is None or parent.deleted:
            # UNCONFIRMED: no documented "parent not found" code (feishu-api.md §6.2); the
            # sandbox answers 40014 "no parent dept authority" (HTTP 403).
            raise ApiError(40014, f"no parent dept authority: {parent_ref}", 403)
        return parent

    def _check_room(self, parent: Department, height: int) -> None:
        """A department whose subtree is ``height`` levels deep fits under ``parent``: at most
        25 levels (43019) and 1000 children per department (43013)."""
        if self._depth(parent) + 1 + height > MAX_DEPTH:
            raise ApiError(43019, "department level exceeds 25")
        if len(self._children[parent.open_id]) >= MAX_CHILDREN:
            raise ApiError(43013, "too many sub-departments (max 1000)")

    def _check_sibling_names(self, parent: str, name: str, i18n: dict[str, str],
                             exclude: str | None) -> None:
        """``name`` and ``i18n_name`` unique (43022 / 43018)."""
        # The docs say a name "must not duplicate an existing department name"; the sandbox
        # reads that as unique among live siblings (same parent), as the admin console enforces.
        for sibling in self._siblings(parent, exclude):
            if sibling.name == name:
                raise ApiError(43022, f"department name duplicate: {name}")
            for lang, text in i18n.items():
                if sibling.i18n_name.get(lang) == text:
                    raise ApiError(43018, f"department i18n name duplicate: {text}")

    def _check_order(self, body: JSON, parent: str, exclude: str | None) -> int | None:
        """``order``: a string (or int) holding a non-negative integer (40001), unique among
        the siblings under ``parent`` (43005); None when not sent."""
        value = body.get("order")
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            order = value
        elif isinstance(value, str) and value.isdigit() and value.isascii():
            order = int(value)
        else:
            raise ApiError(40001, "param error: order must be a string holding a non-negative "
                                  "integer")
        if any(s.order == order for s in self._siblings(parent, exclude)):
            raise ApiError(43005, f"department order duplicate: {order}")
        return order

    def _default_order(self, parent: str, exclude: str | None = None) -> int:
        """After the existing siblings (§4.1: the default order)."""
        return max((s.order for s in self._siblings(parent, exclude)), default=0) + 1

    def _dept_leader_user(self, ref: str, ids: IdTypes) -> str:
        """A user a department may name as leader or HRBP: known (41012), not resigned (42006),
        joined (43025)."""
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

        ``leader_user_id`` alone replaces the main leader and keeps the deputies. ``leaders``
        holds no one twice (43016), one main leader at most, and that one equals
        ``leader_user_id`` when both are sent (40001).
        """
        raw_leaders = opt_list(body, "leaders")
        leader_ref = opt_str(body, "leader_user_id")
        if raw_leaders is None and leader_ref is None:
            return None
        main_from_field = self._dept_leader_user(leader_ref, ids) if leader_ref else ""
        if raw_leaders is None:
            deputies = [(k, u) for k, u in current if k != 1 and u != main_from_field]
            return ([(1, main_from_field)] if main_from_field else []) + deputies
        parsed = self._parse_leaders(raw_leaders, ids)
        if len({u for _, u in parsed}) != len(parsed):
            raise ApiError(43016, "leaders repeated")
        mains = [u for k, u in parsed if k == 1]
        if parsed and len(mains) != 1:
            # D/create, D/patch (feishu-api-more.md §1.12): a non-empty list holds exactly
            # one main leader; UNCONFIRMED code for none or two (40001 here)
            raise ApiError(40001, "param error: leaders must hold exactly one main leader")
        if leader_ref is not None and (mains[0] if mains else "") != main_from_field:
            raise ApiError(40001, "param error: leader_user_id must equal the main leader in "
                                  "leaders")
        return sorted(parsed, key=lambda p: p[0])

    def _parse_leaders(self, raw_leaders: list[object], ids: IdTypes) -> list[tuple[int, str]]:
        """``leaders[]`` items as ``(leaderType, open_id)``: type 1 (main) or 2 (deputy) and an
        id are required (40001).

        Accepted with the documented camelCase keys and with the snake_case keys the Python SDK
        sends (``leader_type`` / ``leader_id``, SDK135 ``leader_i_d``).
        """
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
        return parsed

    def _check_dept_extras(self, body: JSON, ids: IdTypes) -> JSON:
        """The list fields that were sent, keyed by :class:`Department` attribute."""
        checked = {"group_chat_employee_types": self._check_chat_employee_types(body),
                   "hrbps": self._check_hrbps(body, ids),
                   "unit_ids": self._check_unit_ids(body)}
        return {key: value for key, value in checked.items() if value is not None}

    def _check_chat_employee_types(self, body: JSON) -> list[int] | None:
        """``group_chat_employee_types``: 1 regular … 5 consultant (43026)."""
        types = opt_list(body, "group_chat_employee_types")
        if types is None:
            return None
        if not all(isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 5 for t in types):
            raise ApiError(43026, "invalid employee type")
        return list(types)

    def _check_hrbps(self, body: JSON, ids: IdTypes) -> list[str] | None:
        """``department_hrbps``: at most 500 (43028), each a possible leader."""
        hrbps = opt_str_list(body, "department_hrbps")
        if hrbps is None:
            return None
        if len(hrbps) > 500:
            raise ApiError(43028, "invalid department hrbps: more than 500")
        return [self._dept_leader_user(ref, ids) for ref in hrbps]

    def _check_unit_ids(self, body: JSON) -> list[str] | None:
        """``unit_ids``: only one unit is supported (43004)."""
        units = opt_str_list(body, "unit_ids")
        if units is None:
            return None
        if len(units) > 1:
            raise ApiError(43004, "illegal unit: only one unit is supported")
        return list(units)
