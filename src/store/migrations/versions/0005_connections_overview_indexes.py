"""connections: indexes that answer the overview's counts without reading the table

(connector_id, state) becomes (connector_id, state, status): one scan gives the per-connector
and the per-status counts. (state, consumer_id) lists ACTIVE connections in consumer order,
so counting active consumers is a distinct count over one index range.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_connections_connector_state_status",
        "connections",
        ["connector_id", "state", "status"],
        unique=False,
    )
    op.drop_index("ix_connections_connector_state", table_name="connections")
    op.create_index(
        "ix_connections_state_consumer", "connections", ["state", "consumer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_connections_state_consumer", table_name="connections")
    op.create_index(
        "ix_connections_connector_state", "connections", ["connector_id", "state"], unique=False
    )
    op.drop_index("ix_connections_connector_state_status", table_name="connections")
