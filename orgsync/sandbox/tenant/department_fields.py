"""The department body rules of feishu-api.md §4.1 (D-CREATE), §4.3 (D-PATCH), §4.4 (D-PUT)."""

from __future__ import annotations

from orgsync.sandbox.tenant.body import (
    opt_list,
    opt_obj,
    opt_str,
    opt_str_list,
)
from orgsync.sandbox.tenant.ids import IdIndex
from orgsync.sandbox.tenant.model import (
    JSON,
    ApiError,
    IdTypes,
    field_error,
)


class DepartmentFields(IdIndex):
    """Validation of department create and update bodies."""

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
