"""Opening the database the settings name, with its schema brought or checked up to date."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from healthgraph.errors import HealthgraphError
from store.engine import create_engine, session_factory
from store.migrate import current_revision, head_revision, upgrade_database

log = logging.getLogger(__name__)


class SchemaOutOfDateError(HealthgraphError):
    def __init__(self, current: str | None, head: str | None) -> None:
        self.current = current
        super().__init__(
            f"the database schema is at revision {current or '(empty)'}, this version needs "
            f"{head}; run `healthgraph db upgrade` first"
        )


@dataclass(frozen=True, slots=True)
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def close(self) -> None:
        await self.engine.dispose()


def connect(url: str) -> Database:
    """An engine and session factory for `url`; nothing is connected until first use."""
    engine = create_engine(url)
    return Database(engine=engine, sessions=session_factory(engine))


async def ensure_schema(database: Database, *, upgrade_embedded: bool = True) -> None:
    """Upgrade an embedded SQLite file in place; require PostgreSQL to be current.

    PostgreSQL is shared by many processes, so only `healthgraph db upgrade` migrates it.
    """
    engine = database.engine
    if upgrade_embedded and engine.dialect.name == "sqlite":
        before = await current_revision(engine)
        await upgrade_database(engine)
        after = await current_revision(engine)
        if before != after:
            log.info("database schema upgraded from %s to %s", before or "(empty)", after)
        return
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDateError(current, head)


async def open_database(url: str, *, upgrade_embedded: bool = True) -> Database:
    """`connect` and `ensure_schema` in one step."""
    database = connect(url)
    try:
        await ensure_schema(database, upgrade_embedded=upgrade_embedded)
    except BaseException:
        await database.close()
        raise
    return database
