"""Opaque page tokens and list responses (feishu-api.md §1)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TypeVar

from orgsync.sandbox.tenant.model import JSON, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, ApiError

T = TypeVar("T")


def paginate(items: list[T], page_size: str | None, page_token: str | None,
             scope: str, *, max_size: int = PAGE_SIZE_MAX) -> tuple[list[T], bool, str | None]:
    """One page of ``items``: ``(page, has_more, next_token)``.

    ``page_size`` defaults to 10 and must be 1..50 (1..``max_size``; 40011). The token is opaque, bound to the
    listing it came from (``scope``) and rejected with 40012 when it cannot be decoded or
    belongs to another listing.
    """
    size = PAGE_SIZE_DEFAULT
    if page_size:
        try:
            size = int(page_size)
        except ValueError:
            raise ApiError(40011, "page size invalid") from None
        if not 1 <= size <= max_size:
            raise ApiError(40011, "page size invalid")
    offset = 0
    tag = hashlib.sha256(scope.encode()).hexdigest()[:12]
    if page_token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(page_token.encode() + b"=="))
            offset = int(decoded["o"])
            valid = decoded["s"] == tag and offset >= 0
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            raise ApiError(40012, "page token invalid")
    page = items[offset:offset + size]
    has_more = offset + size < len(items)
    token = None
    if has_more:
        raw = json.dumps({"s": tag, "o": offset + size}, separators=(",", ":")).encode()
        token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return page, has_more, token


def page_data(items: list[JSON], has_more: bool, token: str | None) -> JSON:
    """The ``data`` of a list response: ``page_token`` only when there is more."""
    data: JSON = {"has_more": has_more, "items": items}
    if has_more:
        data["page_token"] = token
    return data
