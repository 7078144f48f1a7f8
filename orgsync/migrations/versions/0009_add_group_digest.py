"""add group member digest

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 11:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from orgsync.group_mirror import member_digest

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('mirror_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default=''))
    # Digest the groups already mirrored: a plan compares digests, never an empty one.
    conn = op.get_bind()
    members: dict[str, set[str]] = {}
    for group_key, user_key in conn.execute(
            sa.text("SELECT group_key, user_key FROM mirror_group_members")):
        members.setdefault(group_key, set()).add(user_key)
    for (key,) in conn.execute(sa.text("SELECT key FROM mirror_groups")).fetchall():
        conn.execute(sa.text("UPDATE mirror_groups SET digest = :d WHERE key = :k"),
                     {"d": member_digest(members.get(key, set())), "k": key})


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('mirror_groups', schema=None) as batch_op:
        batch_op.drop_column('digest')
