"""sync_activations.completed_steps (the steps' completion as a bitmask) and its index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The bit of each step is store.models.step_bit (SYNC_STEPS order), written out here so the
# migration means the same thing whatever the models become.
_BACKFILL = """
UPDATE sync_activations SET completed_steps = (
    SELECT coalesce(sum(CASE s.step
        WHEN 'CONNECTION' THEN 1 WHEN 'MAPPING' THEN 2 WHEN 'CONFIGURATION' THEN 4 ELSE 0 END), 0)
    FROM sync_activation_steps AS s
    WHERE s.activation_id = sync_activations.id AND s.complete
)
"""


def upgrade() -> None:
    with op.batch_alter_table("sync_activations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("completed_steps", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(_BACKFILL)
    op.create_index(
        "ix_sync_activations_sync_steps_consumer",
        "sync_activations",
        ["sync_id", "completed_steps", "consumer_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_sync_activations_sync_steps_consumer", table_name="sync_activations")
    with op.batch_alter_table("sync_activations", schema=None) as batch_op:
        batch_op.drop_column("completed_steps")
