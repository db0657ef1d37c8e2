"""Migrations build the schema from empty on every backend, and agree with the models."""

from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from store.engine import create_engine
from store.migrate import current_revision, head_revision, upgrade_database
from store.models import Base


async def test_upgrade_from_empty_reaches_head_and_matches_the_models(
    empty_database_url: str,
) -> None:
    engine = create_engine(empty_database_url)
    try:
        assert await current_revision(engine) is None
        await upgrade_database(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert differences == []


async def test_upgrade_twice_is_a_no_op(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await upgrade_database(engine)
        await upgrade_database(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_0007_keeps_the_rows_of_a_database_in_use(empty_database_url: str) -> None:
    """Upgrading a database with connections (foreign keys on) adds the OAuth2 and params
    columns without rebuilding, dropping or cascading anything."""
    engine = create_engine(empty_database_url)
    try:
        await upgrade_database(engine, "0006")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO consumers (id, external_id, name, created_at) "
                    "VALUES (1, 'acme', 'Acme', '2026-12-01 00:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO connectors (id, slug, name, category, heartbeat, created_at) "
                    "VALUES (1, 'qb', 'QB', 'accounting', '{}', '2026-12-01 00:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO connections (id, consumer_id, connector_id, name, direction, "
                    "state, status, consecutive_failures, check_interval_seconds, "
                    "failure_threshold, state_changed_at, heartbeat, created_at, updated_at) "
                    "VALUES (1, 1, 1, 'Acme QB', 'OUTBOUND', 'ACTIVE', 'CONNECTED', 0, 60, 1, "
                    "'2026-12-01 00:00:00', '{}', '2026-12-01 00:00:00', "
                    "'2026-12-01 00:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO checks (connection_id, checked_at, success) "
                    "VALUES (1, '2026-12-01 00:00:00', true)"
                )
            )
        await upgrade_database(engine)
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT c.name, c.params, k.slug, k.oauth2, "
                        "(SELECT count(*) FROM checks) FROM connections c "
                        "JOIN connectors k ON k.id = c.connector_id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert [
        (name, json.loads(params) if isinstance(params, str) else params, slug, oauth2, checks)
        for name, params, slug, oauth2, checks in rows
    ] == [("Acme QB", {}, "qb", None, 1)]
