"""connections: (consumer_id, state, status, connector_id), so the issue column reads no table

The CSV export by connections lists each consumer's failed connectors: state FAILED, or not
DISABLED with status CONNECTION_FAILURE. With status outside the (consumer_id, state,
connector_id) index, SQLite looked up some 10k table rows per batch of 2,000 consumers
(16 ms of 26); from this index alone the export ran 41k -> 78k rows/s (graphql_bench, 100k
connections). Added beside the older index, which keeps serving the (consumer, connector,
ACTIVE) probes of sync activation without a scan over statuses.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_connections_consumer_state_status_connector",
        "connections",
        ["consumer_id", "state", "status", "connector_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_connections_consumer_state_status_connector", table_name="connections")
