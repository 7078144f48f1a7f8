"""store the mirror's fingerprints in their marshal form

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 19:20:00.000000
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from orgsync.model import Employee

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    """Apply this revision: every mirrored user's fingerprint of the record it stores, as
    :meth:`orgsync.model.Employee.fingerprint` now computes it (an old one would match no
    record, and every unchanged person would decode on every plan)."""
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT key, fields FROM mirror_users")).fetchall()
    update = sa.text("UPDATE mirror_users SET fingerprint = :f WHERE key = :k")
    for start in range(0, len(rows), _BATCH):
        conn.execute(update, [{"k": key, "f": _fingerprint(key, fields)}
                              for key, fields in rows[start:start + _BATCH]])


def _fingerprint(key: str, fields: str) -> int | None:
    """None for a record orgsync did not write: the plan decodes it, and says so."""
    try:
        return Employee.from_fields(key, json.loads(fields)).fingerprint()
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def downgrade() -> None:
    """Revert this revision: no fingerprint (each row is decoded until it is written again)."""
    op.execute(sa.text("UPDATE mirror_users SET fingerprint = NULL"))
