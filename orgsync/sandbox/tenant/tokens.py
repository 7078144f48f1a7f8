"""tenant_access_token issuance (feishu-api.md §2)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from orgsync.sandbox.tenant.model import TOKEN_REUSE_MIN_S, SandboxClock


@dataclass
class _Token:
    app_id: str
    expires_at: float
    revoked: bool = False


class TokenStore:
    """tenant_access_token issuance and checks, by the 2 h / 30 min rule (feishu-api.md §2).

    Calling again returns the same token while it has ≥ 30 min left; below that a new one is
    minted and the old one stays valid until it expires. Tokens survive a tenant reset so that
    clients which cache them keep working; :meth:`revoke_all` invalidates them.
    """

    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._current: dict[str, str] = {}

    def issue(self, app_id: str, ttl: int) -> tuple[str, int]:
        """Return ``(token, expire)`` for the app, reusing the current token when allowed."""
        now = self._clock.now()
        current = self._current.get(app_id)
        if current is not None:
            record = self._tokens[current]
            remaining = record.expires_at - now
            if not record.revoked and remaining >= TOKEN_REUSE_MIN_S:
                return current, int(remaining)
        token = "t-" + secrets.token_hex(20)
        self._tokens[token] = _Token(app_id, now + ttl)
        self._current[app_id] = token
        return token, ttl

    def app_for(self, token: str) -> str | None:
        """The app a live token belongs to, or None if unknown, expired or revoked."""
        record = self._tokens.get(token)
        if record is None or record.revoked or record.expires_at <= self._clock.now():
            return None
        return record.app_id

    def clamp(self, ttl: int) -> None:
        """Cut every token's expiry to at most ``ttl`` seconds from now.

        After the clock is turned back (a reset), a token minted on an advanced clock
        would otherwise live for the whole jump — days — which no real token does.
        """
        latest = self._clock.now() + ttl
        for record in self._tokens.values():
            record.expires_at = min(record.expires_at, latest)

    def revoke_all(self) -> None:
        """Invalidate every token issued so far."""
        for record in self._tokens.values():
            record.revoked = True
        self._current.clear()
