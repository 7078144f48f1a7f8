"""LDAP values and DNs as the mapping sees them.

An entry becomes a plain record: attribute name → text (one value) or list of
texts (several), plus ``dn``. Binary identity attributes get their usual text
forms — ``objectGUID`` as a UUID (AD stores it little-endian), ``objectSid`` as
``S-1-5-21-…`` — so they can be keys; other values are UTF-8, or base64 when
they are not text.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

_GUIDS = frozenset({"objectguid", "msexchmailboxguid"})
_SIDS = frozenset({"objectsid"})


def guid_text(raw: bytes) -> str:
    """An AD GUID (16 bytes, little-endian fields) as ``12345678-…`` text."""
    return str(uuid.UUID(bytes_le=raw)) if len(raw) == 16 else raw.hex()


def sid_text(raw: bytes) -> str:
    """A binary security identifier as ``S-1-5-21-…``."""
    if len(raw) < 8:
        return raw.hex()
    count = raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = [int.from_bytes(raw[8 + 4 * i:12 + 4 * i], "little") for i in range(count)]
    return "-".join(["S", str(raw[0]), str(authority), *map(str, subs)])


def value_text(name: str, raw: bytes) -> str:
    """One raw attribute value as text (see the module docstring)."""
    folded = name.casefold()
    if folded in _GUIDS:
        return guid_text(raw)
    if folded in _SIDS:
        return sid_text(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")


def record(dn: str, raw_attributes: Mapping[str, Sequence[bytes]]) -> dict[str, Any]:
    """An entry as a mapping record: ``{"dn": dn, attr: text | [texts], …}``."""
    out: dict[str, Any] = {"dn": dn}
    for name, values in raw_attributes.items():
        texts = [value_text(name, v) for v in values]
        if texts:
            out[name.partition(";")[0]] = texts[0] if len(texts) == 1 else texts
    return out


def normalize_dn(dn: str) -> str:
    """A DN compared the way directories do: types lower-cased, values case-folded, no spaces.

    ``CN=John Doe, OU=Eng,DC=corp`` and ``cn=john doe,ou=eng,dc=corp`` give the same
    text. A string that is not a DN is returned case-folded.
    """
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError:
        return dn.strip().casefold()
    return ",".join(f"{attr.strip().lower()}={value.strip().casefold()}" for attr, value, _ in parts)


def parent_dn(dn: str) -> str | None:
    """The DN one level up, or ``None`` for a single RDN (works on normalised DNs)."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError:
        return None
    if len(parts) < 2:
        return None
    return ",".join(f"{attr}={value}" for attr, value, _ in parts[1:])


def rdn_value(dn: str) -> str:
    """The value of the first RDN (``ou=Sales,dc=x`` → ``Sales``)."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError:
        return dn
    return parts[0][1] if parts else dn
