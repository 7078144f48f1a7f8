"""Typed readers of request body values, and the mobile number rule they share.

Each reader returns None for an absent key and refuses a value of the wrong JSON type with the
gateway's 99992402 (:func:`field_error`).
"""

from __future__ import annotations

import re
from typing import Any

from orgsync.sandbox.tenant.model import JSON, ApiError, field_error

_MAINLAND_MOBILE = re.compile(r"^(?:\+86)?1\d{10}$")
_INTL_MOBILE = re.compile(r"^\+[1-9]\d{6,14}$")


def opt_str(body: JSON, key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise field_error(f"{key} must be a string")


def opt_bool(body: JSON, key: str) -> bool | None:
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise field_error(f"{key} must be a boolean")


def opt_int(body: JSON, key: str) -> int | None:
    value = body.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise field_error(f"{key} must be an integer")


def opt_list(body: JSON, key: str) -> list[Any] | None:
    value = body.get(key)
    if value is None or isinstance(value, list):
        return value
    raise field_error(f"{key} must be an array")


def opt_str_list(body: JSON, key: str) -> list[str] | None:
    value = opt_list(body, key)
    if value is not None and not all(isinstance(v, str) for v in value):
        raise field_error(f"{key} must be an array of strings")
    return value


def opt_obj(body: JSON, key: str) -> JSON | None:
    value = body.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise field_error(f"{key} must be an object")


def normalize_mobile(mobile: str) -> str:
    """Canonical ``+<cc><digits>`` form; mainland numbers may omit ``+86`` (41004 otherwise)."""
    if _MAINLAND_MOBILE.match(mobile):
        return "+86" + mobile[-11:]
    if mobile.startswith("+86") or not _INTL_MOBILE.match(mobile):
        raise ApiError(41004, "mobile is invalid")
    return mobile
