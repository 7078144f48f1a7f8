"""Knobs of the local Feishu sandbox.

Every field can also be changed at runtime (``SandboxServer.configure`` or
``POST /_sandbox/config``) under the same name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

MASK = "***"


@dataclass
class SandboxConfig:
    """How the sandbox behaves: credentials, rate limits, injected latency and faults.

    Probabilities are per ``/open-apis`` business call (the token endpoint is exempt
    from faults). ``seed`` makes generated ids and fault draws reproducible.
    """

    app_id: str = "cli_sandbox"
    app_secret: str = "sandbox-secret"  # noqa: S105 - the sandbox's published demo credential
    admin_token: str | None = None        # bearer token for /_sandbox/*; None → same as app_secret
    rate_limits: bool = True              # enforce the documented limits
    rate_scale: float = 1.0               # allowed counts per window are multiplied by this
    latency_ms: float = 0.0               # added to every /open-apis call
    fault_5xx: float = 0.0                # HTTP 500/503 JSON envelope; state NOT changed
    fault_timeout: float = 0.0            # hang `hang_seconds`, then answer 504
    fault_drop: float = 0.0               # connection dropped without a complete response
    fault_after_apply: float = 0.5        # timeout/drop on a write: chance the write was applied first
    hang_seconds: float = 30.0
    token_ttl: int = 7200
    seed: int = 0                         # RNG seed for faults and generated ids
    users_unjoined: bool = False          # new users start unjoined (PATCH then answers 44010)
    # The app's contact range (通讯录权限范围): department ids (custom department_id) it
    # covers, each with its subtree; None or empty = all members.
    contact_scope: list[str] | None = None
    # The permissions (scopes) the app holds — full names such as
    # "contact:user.phone:readonly" (``configure`` also takes one string separated by spaces
    # or commas); None: all of them. A user or department field whose read permission is missing is left
    # out of every answer (feishu-api-more.md §1.1; the sandbox's table is
    # orgsync.sandbox.tenant.permissions), and GET application/v6/scopes reports them.
    permissions: list[str] | None = None

    def held_permissions(self) -> frozenset[str] | None:
        """:attr:`permissions` as a set (None: every permission)."""
        return None if self.permissions is None else frozenset(self.permissions)
    # The app and the tenant (feishu-api-more.md §1; doc paths relative to open.feishu.cn).
    app_disabled: bool = False            # the token call answers 10014 "app unauthorized"
    big_department_size: int = 0          # children+fetch_child over more departments → 43010
    enum_store_full: bool = False         # new city / job_title values fail (44054–44059)
    multi_department: bool = True         # False: more than one department → 41032 (HTTP 504)
    resurrect_available: bool = True      # False: resurrect answers 44029
    deletion_pending_seconds: float = 0.0  # resurrect sooner after a delete → 44034
    im_throttled: bool = False            # every message send answers 230020
    bot_enabled: bool = True              # False: time-off calls answer 190007 (§8.1)
    custom_employee_types: list[str] | None = None  # active custom enum_values ("6", …)
    # The tenant's custom profile attributes (feishu-api-more.md §6) as GET custom_attrs
    # lists them ({"id": "C-…", "type": "TEXT", "options": {…}, "i18n_name": […]}); one with
    # "api_enabled": false is defined but not opened to the API: not listed, and a user
    # write naming it has no effect (as the list page says); an id not defined is 41045.
    custom_attrs: list[dict[str, Any]] | None = None
    people_sourced: list[str] | None = None  # user/department ids Feishu People owns: PATCH
                                             # answers 44053 (user) / 43031 (department)

    def effective_admin_token(self) -> str:
        """The bearer token the admin API accepts."""
        return self.admin_token if self.admin_token is not None else self.app_secret

    def public_view(self) -> dict[str, Any]:
        """The knobs as JSON, with the secrets masked."""
        view: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("app_secret", "admin_token"):
            if view[secret] is not None:
                view[secret] = MASK
        return view


KNOB_NAMES: frozenset[str] = frozenset(f.name for f in fields(SandboxConfig))
