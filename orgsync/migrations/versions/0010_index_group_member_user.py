"""index group memberships by person

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 14:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('mirror_group_members', schema=None) as batch_op:
        # by person, covering: a plan reads the changed people's groups from the index alone
        batch_op.create_index('ix_mirror_group_members_user_key', ['user_key', 'group_key'],
                              unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('mirror_group_members', schema=None) as batch_op:
        batch_op.drop_index('ix_mirror_group_members_user_key')
