"""connections: index (consumer_id, state, connector_id) for the per-consumer EXISTS checks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_connections_consumer_state_connector",
        "connections",
        ["consumer_id", "state", "connector_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_connections_consumer_state_connector", table_name="connections")
