"""What the catalog asks of the scheduler, on both backends."""

from __future__ import annotations

import pytest

from healthgraph.database import Database
from store.demand import asked_checks_per_second
from store.domain import ConnectionState, Direction
from tests.factories import GraphFactory


async def test_only_probed_outbound_connections_count_once_per_interval(db: Database) -> None:
    async with db.sessions.begin() as session:
        factory = GraphFactory(session)
        books = await factory.connector("books")
        for n, (interval, state, direction) in enumerate(
            [
                (1, ConnectionState.ACTIVE, Direction.OUTBOUND),
                (2, ConnectionState.FAILED, Direction.OUTBOUND),
                (60, ConnectionState.ACTIVE, Direction.OUTBOUND),
                (1, ConnectionState.PENDING, Direction.OUTBOUND),  # never probed
                (1, ConnectionState.DISABLED, Direction.OUTBOUND),
                (1, ConnectionState.ACTIVE, Direction.INBOUND),  # pushes, is not probed
            ]
        ):
            consumer = await factory.consumer(f"c{n}")
            row = await factory.connection(consumer, books, state=state, direction=direction)
            row.check_interval_seconds = interval
        await session.flush()
    async with db.sessions() as session:
        asked = await asked_checks_per_second(session)
    assert asked == pytest.approx(1 + 1 / 2 + 1 / 60)


async def test_an_empty_catalog_asks_for_nothing(db: Database) -> None:
    async with db.sessions() as session:
        assert await asked_checks_per_second(session) == 0.0
