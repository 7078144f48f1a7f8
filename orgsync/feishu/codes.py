"""What Feishu's business codes mean for orgsync, and the remedy an admin applies.

One table (:data:`CODES`) for the codes that need more than "the call failed": out of the
app's contact range, credentials, tenant settings, partial successes, resurrect's
availability and the Feishu People lock. Facts and doc pages: feishu-api-more.md §1
(paths relative to https://open.feishu.cn). Retrying is decided in
:mod:`orgsync.feishu.retry`; this module only names and explains.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from orgsync.errors import FeishuError


class Kind(enum.Enum):
    """What a code says about the call that got it."""

    OUT_OF_SCOPE = "out of scope"      # outside the app's contact range: terminal
    CREDENTIALS = "credentials"        # the app id / secret: fatal for the whole run
    TENANT_SETTING = "tenant setting"  # a feature the tenant has switched off: terminal
    PARTIAL = "partial success"        # the write was done; an enum value was not
    LATER = "later"                    # refused for now: the next run tries again
    LOCKED = "locked"                  # sourced from Feishu People: never writable here
    REJECTED = "rejected"              # the request itself is wrong for this record


@dataclass(frozen=True, slots=True)
class Code:
    """One documented code: what it means and what to do about it."""

    kind: Kind
    meaning: str
    remedy: str


_SCOPE_REMEDY = ("widen the app's contact range (通讯录权限范围) in the developer console to "
                 "cover it, publish a new app version and have an admin approve it")
_CREDENTIALS_REMEDY = ("check feishu.app_id and feishu.app_secret against the app's credentials "
                  "page in the developer console")
_PARTIAL_REMEDY = ("the person's other fields were written; check the tenant's work-city / "
                   "job-title lists (full at 10,000, disabled, or the value too long or "
                   "sensitive) — the next run writes the field again")

CODES: dict[int, Code] = {
    # /document/server-docs/contact-v3/scope/scope_authority and each endpoint's error table
    # (feishu-api-more.md §1.2): which call answers which is listed there; all mean the same.
    40004: Code(Kind.OUT_OF_SCOPE, "outside the app's contact range", _SCOPE_REMEDY),
    40014: Code(Kind.OUT_OF_SCOPE, "the parent department is outside the app's contact range "
                                   "(creating under the root needs the all-members range)",
                _SCOPE_REMEDY),
    41050: Code(Kind.OUT_OF_SCOPE, "the user is outside the app's contact range",
                _SCOPE_REMEDY),
    # /document/server-docs/api-call-guide/generic-error-code (§1.10); the HTTP status is
    # UNCONFIRMED, so the code alone decides.
    10003: Code(Kind.CREDENTIALS, "unknown app_id or invalid token request", _CREDENTIALS_REMEDY),
    10014: Code(Kind.CREDENTIALS, "the app is disabled (or, as some tenants answer, the "
                                  "secret is wrong)",
                "enable the app in the developer console, then " + _CREDENTIALS_REMEDY),
    10015: Code(Kind.CREDENTIALS, "wrong app secret", _CREDENTIALS_REMEDY),
    20002: Code(Kind.CREDENTIALS, "app_id and app_secret do not match", _CREDENTIALS_REMEDY),
    # U/create, U/patch (§1.14): answered with HTTP 504 yet permanent.
    41031: Code(Kind.TENANT_SETTING, "the tenant's position (职务) feature is off",
                "turn it on in the admin console, or leave job titles out of the mapping"),
    41032: Code(Kind.TENANT_SETTING, "the tenant's multi-department feature is off",
                "turn it on in the admin console, or give each person one department"),
    # U/create, U/patch and the 2024-04-08 breaking-change notice (§1.4)
    44054: Code(Kind.PARTIAL, "created, but the work city could not be set", _PARTIAL_REMEDY),
    44055: Code(Kind.PARTIAL, "created, but the job title could not be set", _PARTIAL_REMEDY),
    44056: Code(Kind.PARTIAL, "created, but the work city and job title could not be set",
                _PARTIAL_REMEDY),
    44057: Code(Kind.PARTIAL, "updated, but the work city could not be set", _PARTIAL_REMEDY),
    44058: Code(Kind.PARTIAL, "updated, but the job title could not be set", _PARTIAL_REMEDY),
    44059: Code(Kind.PARTIAL, "updated, but the work city and job title could not be set",
                _PARTIAL_REMEDY),
    # U/resurrect, U/delete (§1.7)
    44029: Code(Kind.REJECTED, "resurrect is not enabled for this app",
                "ask Feishu support to grant the resurrect API (paid editions only); "
                "orgsync creates a new account instead"),
    44028: Code(Kind.REJECTED, "resigned more than 30 days ago: cannot be resurrected",
                "orgsync creates a new account instead"),
    44034: Code(Kind.LATER, "the earlier deletion is still in progress",
                "nothing to do: the next run tries again (Feishu may take up to 48 h)"),
    44042: Code(Kind.LATER, "a resurrect of this person is still in progress",
                "nothing to do: the next run tries again"),
    # U/patch only (§1.9)
    44035: Code(Kind.REJECTED, "a department in department_ids does not exist in Feishu",
                "run `orgsync resync` to rebuild the ledger's picture of the departments"),
    # §1.15: the notice names no code; these two are the candidates (mapping UNCONFIRMED).
    44053: Code(Kind.LOCKED, "the person is sourced from Feishu People and cannot be "
                             "updated through the contact API",
                "change it in Feishu People, or take the person out of orgsync's source"),
    43031: Code(Kind.LOCKED, "the department is sourced from Feishu People and cannot be "
                             "updated through the contact API",
                "change it in Feishu People, or take the department out of orgsync's source"),
}


def codes_of(kind: Kind) -> frozenset[int]:
    """Every code of ``kind``."""
    return frozenset(c for c, v in CODES.items() if v.kind is kind)


def explain(error: FeishuError) -> str:
    """Feishu's msg, then what the code means for orgsync and its remedy (when known)."""
    known = CODES.get(error.code)
    if known is None:
        return error.msg
    return f"{error.msg} — {known.meaning}; remedy: {known.remedy}"
