"""User groups (用户组) and their members (feishu-api-more.md §4).

Sources, relative to open.feishu.cn: ``/document/server-docs/contact-v3/group/{create,get,
patch,delete,simplelist}`` and ``/document/server-docs/contact-v3/group-member/{batch_add,
batch_remove,simplelist}``. Only normal groups (``type`` 1) exist here: the API cannot create,
update or delete dynamic ones. Members are users only (the API adds no departments).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orgsync.sandbox.tenant.body import opt_int, opt_list, opt_str
from orgsync.sandbox.tenant.ids import IdIndex
from orgsync.sandbox.tenant.model import JSON, USER_ID_TYPES, ApiError, IdTypes
from orgsync.sandbox.tenant.paging import page_data, paginate

MAX_GROUPS = 500
"""Normal and dynamic groups together, per tenant (42016)."""
MAX_GROUP_USERS = 100_000
"""Users per normal group (42012)."""
MAX_MEMBER_BATCH = 100
GROUP_PAGE_MAX = 100
GROUP_PAGE_DEFAULT = 50
NAME_MAX = 100
DESCRIPTION_MAX = 500
GROUP_ID_MAX = 64
_GROUP_ID = re.compile(r"^[A-Za-z0-9]+$")


@dataclass
class Group:
    """One normal user group; ``members`` is an ordered set of user open ids."""

    group_id: str
    name: str
    description: str
    seq: int
    members: dict[str, None] = field(default_factory=dict)


def _no_group(group_id: str) -> ApiError:
    # UNCONFIRMED: the code for a well-formed but unknown group id; the pages list only
    # 42002 ("invalid group id") for get/patch, which the sandbox answers for both.
    return ApiError(42002, f"group id is invalid: {group_id}")


class Groups(IdIndex):
    """The group and group-member endpoints."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.groups: dict[str, Group] = {}
        self._group_names: dict[str, str] = {}  # name → group_id

    # ----------------------------------------------------------------- groups

    def create_group(self, body: JSON) -> JSON:
        """POST contact/v3/group: name (tenant-unique), description, type 1, custom group_id.

        The page documents no ``client_token``: a retried create meets 47005 with the same
        custom ``group_id``.
        """
        if self.knobs.contact_scope:
            raise ApiError(42010, "the app's contact scope is not all members", 403)
        name = opt_str(body, "name") or ""
        description = opt_str(body, "description") or ""
        kind = opt_int(body, "type")
        group_id = opt_str(body, "group_id")
        if not name.strip():
            raise ApiError(42001, "group name is empty")
        self._check_texts(name, description)
        if kind not in (None, 1):
            raise ApiError(42003, "group type is invalid: only normal groups (1) can be created")
        if group_id is not None and (len(group_id) > GROUP_ID_MAX
                                     or not _GROUP_ID.match(group_id)):
            raise ApiError(42002, "group id is invalid")
        if group_id is not None and group_id in self.groups:
            raise ApiError(47005, "group id already exists")
        if name in self._group_names:
            raise ApiError(47009, "group name already exists")
        if len(self.groups) >= MAX_GROUPS:
            raise ApiError(42016, f"the tenant has {MAX_GROUPS} groups already")
        group_id = group_id or "g" + self._hex(32)
        self.groups[group_id] = Group(group_id, name, description, self._next_seq())
        self._group_names[name] = group_id
        return {"group_id": group_id}

    def get_group(self, group_id: str) -> JSON:
        """GET contact/v3/group/:group_id."""
        return {"group": self._render_group(self._group(group_id))}

    def patch_group(self, group_id: str, body: JSON) -> JSON:
        """PATCH contact/v3/group/:group_id: name and description."""
        group = self._group(group_id)
        name = opt_str(body, "name")
        description = opt_str(body, "description")
        self._check_texts(name or "", description or "")
        if name is not None and name.strip() and name != group.name:
            if name in self._group_names:
                raise ApiError(47009, "group name already exists")
            del self._group_names[group.name]
            self._group_names[name] = group.group_id
            group.name = name
        if description is not None:
            group.description = description
        return {}

    def delete_group(self, group_id: str) -> JSON:
        """DELETE contact/v3/group/:group_id: needs all-members scope; 42017 while it has members."""
        if self.knobs.contact_scope:
            raise ApiError(42009, "no group authority", 403)
        group = self._group(group_id)
        if group.members:
            raise ApiError(42017, "the group still has members")
        del self.groups[group_id]
        del self._group_names[group.name]
        return {}

    def list_groups(self, kind: str | None, page_size: str | None,
                    page_token: str | None) -> JSON:
        """GET contact/v3/group/simplelist (normal groups by default)."""
        if kind not in (None, "", "1", "2"):
            raise ApiError(42003, "group type is invalid")
        groups = [] if kind == "2" else sorted(self.groups.values(), key=lambda g: g.seq)
        page, more, token = paginate(groups, _page_size(page_size), page_token,
                                     "group/simplelist", max_size=GROUP_PAGE_MAX)
        data = page_data([], more, token)
        del data["items"]
        data["grouplist"] = [self._render_group(g) for g in page]
        return data

    # ----------------------------------------------------------------- members

    def add_group_members(self, group_id: str, body: JSON) -> JSON:
        """POST …/member/batch_add: 1–100 users; per-member ``results`` (42005 already a
        member, with HTTP 200)."""
        group = self._group(group_id)
        members = self._member_refs(body)
        results: list[JSON] = []
        added: list[str] = []
        for ref, open_id in members:
            if open_id is None:
                code = 42006  # UNCONFIRMED: unknown ids answered like resigned users
            elif open_id in group.members or open_id in added:
                code = 42005
            else:
                code = 0
                added.append(open_id)
            results.append({"member_id": ref, "code": code})
        if len(group.members) + len(added) > MAX_GROUP_USERS:
            raise ApiError(42012, "the group has too many users")
        for open_id in added:
            group.members[open_id] = None
        return {"results": results}

    def remove_group_members(self, group_id: str, body: JSON) -> JSON:
        """POST …/member/batch_remove: 1–100 users.

        UNCONFIRMED: what makes 40022 "partial failure"; here a user who is not a member (a
        resigned one included) is skipped, so a replayed removal succeeds, and only an id no
        user ever had fails it.
        """
        group = self._group(group_id)
        members = self._member_refs(body, live_only=False)
        if any(open_id is None for _, open_id in members):
            raise ApiError(40022, "partial failure: some members were not removed")
        for _, open_id in members:
            group.members.pop(open_id or "", None)
        return {}

    def list_group_members(self, group_id: str, ids: IdTypes, member_type: str | None,
                           page_size: str | None, page_token: str | None) -> JSON:
        """GET …/member/simplelist: one member type per call (users, or departments: none)."""
        group = self._group(group_id)
        if member_type not in (None, "", "user", "department"):
            raise ApiError(41072, "member type mismatch")
        ordered = [] if member_type == "department" else list(group.members)
        page, more, token = paginate(ordered, _page_size(page_size), page_token,
                                     f"group/{group_id}/members", max_size=GROUP_PAGE_MAX)
        data = page_data([], more, token)
        del data["items"]
        data["memberlist"] = [{"member_id": self._user_ref(o, ids), "member_type": "user"}
                              for o in page]
        return data

    # ----------------------------------------------------------------- helpers

    def _group(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            raise _no_group(group_id)
        return group

    def _render_group(self, group: Group) -> JSON:
        return {"id": group.group_id, "group_id": group.group_id, "name": group.name,
                "description": group.description, "member_user_count": len(group.members),
                "member_department_count": 0, "type": 1, "department_scope_list": []}

    @staticmethod
    def _check_texts(name: str, description: str) -> None:
        # UNCONFIRMED which of 42013/42014 is the name's and which the description's.
        if len(name) > NAME_MAX:
            raise ApiError(42013, f"group name is longer than {NAME_MAX}")
        if len(description) > DESCRIPTION_MAX:
            raise ApiError(42014, f"group description is longer than {DESCRIPTION_MAX}")

    def _member_refs(self, body: JSON, *, live_only: bool = True
                     ) -> list[tuple[str, str | None]]:
        """``(member_id as sent, user open id or None)`` for each of 1–100 members (None:
        unknown, or resigned when ``live_only``)."""
        members = opt_list(body, "members") or []
        if not 1 <= len(members) <= MAX_MEMBER_BATCH:
            raise ApiError(41073, f"members must hold 1 to {MAX_MEMBER_BATCH} items")
        refs: list[tuple[str, str | None]] = []
        for item in members:
            if not isinstance(item, dict):
                raise ApiError(41073, "a member must be an object")
            ref = opt_str(item, "member_id") or ""
            id_type = opt_str(item, "member_id_type") or ""
            if opt_str(item, "member_type") != "user":
                raise ApiError(41072, "member type mismatch: only users")
            if id_type not in USER_ID_TYPES:
                raise ApiError(41071, "member id type is invalid")
            user = self.find_user(ref, id_type) if ref else None
            live = user is not None and not (live_only and user.resigned)
            refs.append((ref, user.open_id if live and user is not None else None))
        return refs

    def dump_groups(self) -> list[JSON]:
        """Every group with its members' open ids (the admin state dump)."""
        return [{"group_id": g.group_id, "name": g.name, "description": g.description,
                 "members": list(g.members)} for g in sorted(self.groups.values(),
                                                             key=lambda g: g.seq)]

    def load_groups(self, raw: list[JSON]) -> None:
        """Seed groups (the shape of :meth:`dump_groups`; members by any user id)."""
        for item in raw:
            group = Group(str(item["group_id"]), str(item["name"]),
                          str(item.get("description") or ""), self._next_seq())
            if group.group_id in self.groups or group.name in self._group_names:
                raise ValueError(f"duplicate group {group.group_id!r}")
            for ref in item.get("members") or []:
                user = self.find_user_any(str(ref))
                if user is None:
                    raise ValueError(f"unknown user {ref!r}")
                group.members[user.open_id] = None
            self.groups[group.group_id] = group
            self._group_names[group.name] = group.group_id


def _page_size(value: str | None) -> str:
    return value or str(GROUP_PAGE_DEFAULT)
