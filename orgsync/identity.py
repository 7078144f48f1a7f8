"""Source keys → Feishu custom ids.

The HR department code becomes Feishu's ``department_id`` and the HR employee id
becomes Feishu's ``user_id``, so Feishu and HR ids match with no mapping table.
A key that breaks Feishu's rules (regex, length, the reserved ``0``/``1``, the
``od-`` prefix) is mapped deterministically to ``h-<24 hex>``; the ledger's mirror
records the id used, so the mapping is visible and stable.
"""

from __future__ import annotations

import hashlib
import re

_CUSTOM_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_\-@.]{0,63}")
_RESERVED_DEPARTMENT_IDS = frozenset({"0", "1"})


def _hashed(key: str) -> str:
    return "h-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def feishu_department_id(key: str) -> str:
    """The custom ``department_id`` for a department key (the key itself when Feishu allows it)."""
    if (
        _CUSTOM_ID.fullmatch(key)
        and key not in _RESERVED_DEPARTMENT_IDS
        and not key.startswith("od-")
    ):
        return key
    return _hashed(key)


def feishu_user_id(key: str) -> str:
    """The custom ``user_id`` for an employee key (the key itself when Feishu allows it)."""
    if _CUSTOM_ID.fullmatch(key):
        return key
    return _hashed(key)


def is_mapped(key: str, feishu_id: str) -> bool:
    """True when the Feishu id differs from the source key (a deterministic mapping was needed)."""
    return key != feishu_id
