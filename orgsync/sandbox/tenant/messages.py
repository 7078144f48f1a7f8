"""IM (feishu-api.md §7): sending messages and creating chats."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

from orgsync.sandbox.tenant.body import opt_str, opt_str_list
from orgsync.sandbox.tenant.ids import IdIndex
from orgsync.sandbox.tenant.model import (
    CHAT_UUID_WINDOW_S,
    JSON,
    MESSAGE_UUID_WINDOW_S,
    MSG_TYPES,
    RECEIVE_ID_TYPES,
    ApiError,
    IdTypes,
)


class Messages(IdIndex):
    """The IM endpoints: messages to users or chats, and group chats."""

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
        content = _check_content(msg_type, content)
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
        data = _sent_message("om_" + self._hex(), msg_type, content, chat_id, app_id, now)
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
        resolved = self._chat_members(([owner_ref] if owner_ref else []) + members, ids)
        owner = resolved[0] if owner_ref else ""
        chat_id = self.new_chat_id()
        self.chats[chat_id] = {"chat_id": chat_id, "name": name, "description": description,
                               "owner": owner, "members": list(dict.fromkeys(resolved)),
                               "kind": "group", "department": None, "uuid": uuid,
                               "create_time": now}
        data = _new_chat(chat_id, name, description, owner_ref, ids.user)
        if uuid:
            self._chat_uuids[(uuid, owner_ref)] = (now, copy.deepcopy(data))
        return data

    def _chat_members(self, refs: list[str], ids: IdTypes) -> list[str]:
        """Open ids of a new chat's owner and members: known (232043), not resigned (232022)."""
        resolved: list[str] = []
        for ref in refs:
            user = self.find_user(ref, ids.user)
            if user is None:
                raise ApiError(232043, f"unavailable ids: {ref}")
            if user.resigned:
                raise ApiError(232022, f"the invited user has resigned: {ref}")
            resolved.append(user.open_id)
        return resolved


def _check_content(msg_type: str, content: object) -> str:
    """``content``: a string of JSON (230001), a ``text`` string for text messages, at most
    150 KB for text and 30 KB for post and interactive cards (230025), feishu-api.md §7.1."""
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
    return content


def _sent_message(message_id: str, msg_type: str, content: str, chat_id: str, app_id: str,
                  now: float) -> JSON:
    """The ``data`` of a sent message, as the bot sent it."""
    millis = str(int(now * 1000))
    return {
        "message_id": message_id, "root_id": "", "parent_id": "", "thread_id": "",
        "msg_type": msg_type, "create_time": millis, "update_time": millis,
        "deleted": False, "updated": False, "chat_id": chat_id,
        "sender": {"id": app_id, "id_type": "app_id", "sender_type": "app",
                   "tenant_key": "sandbox"},
        "body": {"content": content}, "mentions": [], "upper_message_id": ""}


def _new_chat(chat_id: str, name: str, description: str, owner_ref: str,
              owner_id_type: str) -> JSON:
    """The ``data`` of a created group chat, with Feishu's default settings."""
    return {
        "chat_id": chat_id, "avatar": "", "name": name, "description": description,
        "i18n_names": {"zh_cn": "", "en_us": "", "ja_jp": ""},
        "owner_id": owner_ref, "owner_id_type": owner_id_type,
        "add_member_permission": "all_members", "share_card_permission": "allowed",
        "at_all_permission": "all_members", "edit_permission": "all_members",
        "group_message_type": "chat", "chat_mode": "group", "chat_type": "private",
        "chat_tag": "inner", "join_message_visibility": "all_members",
        "leave_message_visibility": "all_members",
        "membership_approval": "no_approval_required",
        "moderation_permission": "all_members", "external": False,
        "tenant_key": "sandbox"}
