"""Migrations build the schema from empty on every backend, and agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

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
