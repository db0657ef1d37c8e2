"""OAuth2 apps on connectors, OAuth2 grants per connection, connection params

Connectors carry their OAuth2 app (token URL, client id, scopes, auth method; the client secret
encrypted, with the catalog reference it was read from) and the library template they were made
from. A connection's tokens live in `oauth_grants`, apart from the connection row the scheduler
writes thousands of times a second. Connections get `params`, the values of their heartbeat's
{params.NAME} placeholders.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, no batch rebuild: on SQLite a rebuild drops and recreates the table,
    # which the foreign keys of a database with rows refuse (connectors are RESTRICTed by
    # connections) or cascade (connections into checks and uses). A nullable column, or a
    # NOT NULL one with a server default, needs none on either backend.
    op.add_column("connectors", sa.Column("template", sa.String(length=64), nullable=True))
    op.add_column("connectors", sa.Column("oauth2", sa.JSON(), nullable=True))
    op.add_column(
        "connectors",
        sa.Column("oauth2_client_secret_ciphertext", sa.LargeBinary(), nullable=True),
    )
    op.add_column("connectors", sa.Column("oauth2_client_secret_ref", sa.JSON(), nullable=True))
    op.add_column(
        "connections", sa.Column("params", sa.JSON(), server_default="{}", nullable=False)
    )
    op.create_table(
        "oauth_grants",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("grant_type", sa.String(length=32), nullable=False),
        sa.Column("refresh_token_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("access_token_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column(
            "access_token_expires_at", store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "refresh_token_expires_at", store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("seed_digest", sa.String(length=64), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refreshing_by", sa.String(length=64), nullable=True),
        sa.Column("refreshing_until", store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dead_at", store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dead_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_oauth_grants_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_oauth_grants")),
    )


def downgrade() -> None:
    op.drop_table("oauth_grants")
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), not a batch rebuild: see upgrade().
    op.drop_column("connections", "params")
    for column in ("oauth2_client_secret_ref", "oauth2_client_secret_ciphertext", "oauth2"):
        op.drop_column("connectors", column)
    op.drop_column("connectors", "template")
