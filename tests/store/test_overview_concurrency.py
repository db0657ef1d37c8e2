"""The overview with its statements on several pooled connections at once: the same figures
as on one session, every session closed however it ends, and no pool deadlock however many
overviews run at once, on every backend."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from healthgraph.database import Database
from store import domain, queries
from store.domain import ConnectionState, ConnectionStatus
from store.engine import create_engine, pool_slots, session_factory
from store.queries import overview_page
from tests.factories import GraphFactory


@pytest.fixture
async def consumer_ids(db: Database) -> list[int]:
    """A random graph (fixed seed) with every state, status and step mix: its consumers' ids."""
    rng = random.Random(3)
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        connectors = [
            await graph.connector(f"k{i}", f"K{i % 3}", f"category {i % 3}") for i in range(6)
        ]
        syncs = [
            await graph.sync(f"s{i}", rng.sample(connectors, rng.randint(1, 2))) for i in range(4)
        ]
        await graph.sync("never activated", [connectors[0]])
        ids = []
        for index in range(30):
            consumer = await graph.consumer(f"c{index:02}")
            ids.append(consumer.id)
            for connector in rng.sample(connectors, rng.randint(0, 5)):
                await graph.connection(
                    consumer,
                    connector,
                    state=rng.choice(
                        [*ConnectionState, ConnectionState.ACTIVE, ConnectionState.ACTIVE]
                    ),
                    status=rng.choice(list(ConnectionStatus)),
                )
            for sync in rng.sample(syncs, rng.randint(0, 3)):
                steps = {s: rng.random() < 0.8 for s in ("connection", "mapping", "configuration")}
                await graph.activation(sync, consumer, **steps)
    return ids


def _scopes(ids: list[int]) -> list[tuple[int, ...] | None]:
    return [None, (), (ids[0],), tuple(ids[::3]), (max(ids) + 1,)]


@asynccontextmanager
async def _small_pool(url: str, size: int, pool_timeout: float) -> AsyncIterator[Any]:
    """A session factory over an engine of its own whose pool never grows past `size`."""
    engine = create_engine(url, pool_size=size, max_overflow=0, pool_timeout=pool_timeout)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def _sequential(
    sessions: async_sessionmaker[AsyncSession], scope: Any, *, categories: bool = False
) -> domain.Overview:
    async with sessions() as session:
        return await queries.overview(session, scope, categories=categories)


async def test_concurrent_overview_equals_sequential(db: Database, consumer_ids: list[int]) -> None:
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for scope, categories in itertools.product(_scopes(consumer_ids), (False, True)):
        sequential = await _sequential(db.sessions, scope, categories=categories)
        statements.clear()
        async with db.sessions() as session:
            concurrent = await queries.overview_concurrently(
                session, db.sessions, scope, categories=categories
            )
        assert concurrent == sequential, (scope, categories)
        assert (concurrent.categories is not None) == categories
        # Statements on the other connections go through the same engine: still counted.
        assert len(statements) == 4
    whole = await _sequential(db.sessions, None, categories=True)
    # Varied enough to mean something: every kind of figure is there.
    assert 0 < whole.active_consumers < whole.consumers
    assert min(whole.active_connections, whole.pending_connections, whole.failed_connections) > 0
    assert 0 < whole.active_syncs < sum(s.activations for s in whole.syncs)
    assert whole.categories is not None
    assert [c.category for c in whole.categories] == ["category 0", "category 1", "category 2"]
    assert all(0 < c.active_consumers < c.active_connections for c in whole.categories)


async def test_a_cancelled_overview_closes_every_session(
    db: Database, consumer_ids: list[int]
) -> None:
    """Cancelled at every point from before its first statement to after its last."""
    pool = db.engine.sync_engine.pool
    before = pool.checkedout()
    held_at_cancel = []
    for ticks in range(40):
        async with db.sessions() as session:
            task = asyncio.create_task(queries.overview_concurrently(session, db.sessions))
            for _ in range(ticks):
                await asyncio.sleep(0)
            held_at_cancel.append(pool.checkedout() - before)
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        assert pool.checkedout() == before, ticks
    assert max(held_at_cancel) == queries.OVERVIEW_CONNECTIONS  # some hit all four in use


async def test_a_failing_part_closes_the_other_sessions_and_raises_itself(
    db: Database, consumer_ids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(session: AsyncSession, _scope: Any, categories: bool = False) -> None:
        await session.execute(select(1))
        raise RuntimeError("boom")

    monkeypatch.setattr(overview_page, "_connection_figures", failing)
    pool = db.engine.sync_engine.pool
    before = pool.checkedout()
    async with db.sessions() as session:
        with pytest.raises(RuntimeError, match="boom"):
            await queries.overview_concurrently(session, db.sessions)
    assert pool.checkedout() == before


@pytest.mark.parametrize(("pool_size", "slots"), [(2, 0), (4, 1), (9, 2)])
async def test_many_overviews_on_a_small_pool_all_finish(
    db: Database,
    database_url: str,
    consumer_ids: list[int],
    monkeypatch: pytest.MonkeyPatch,
    pool_size: int,
    slots: int,
) -> None:
    """Requests that already hold their connection ask for overviews at once, beside requests
    that hold one for a while: all finish with the right figures (a deadlock would end in the
    pool's timeout), and no more run concurrently than the pool has slots for."""
    scopes = _scopes(consumer_ids)
    expected = {scope: await _sequential(db.sessions, scope) for scope in scopes}
    running, most = 0, 0
    concurrently = queries.overview_concurrently

    async def counted(*args: Any, **options: Any) -> domain.Overview:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await concurrently(*args, **options)
        finally:
            running -= 1

    monkeypatch.setattr(overview_page, "overview_concurrently", counted)
    async with _small_pool(database_url, pool_size, pool_timeout=10) as sessions:
        slot = pool_slots(sessions.kw["bind"], queries.OVERVIEW_CONNECTIONS)
        held = [slot.acquire(blocking=False) for _ in range(slots + 1)]
        assert held == [True] * slots + [False]
        for _ in range(slots):
            slot.release()

        async def overview(scope: Any) -> domain.Overview:
            async with sessions() as session:
                await session.execute(select(1))
                return await queries.overview_on_pool(session, sessions, scope)

        async def hold() -> None:
            async with sessions() as session:
                await session.execute(select(1))
                await asyncio.sleep(0.05)

        requests = [scopes[i % len(scopes)] for i in range(16)]
        results = await asyncio.wait_for(
            asyncio.gather(*map(overview, requests), *(hold() for _ in range(4))), timeout=120
        )
    assert results[: len(requests)] == [expected[scope] for scope in requests]
    assert most == slots


async def test_without_the_slots_the_same_load_exhausts_the_pool(
    database_url: str, consumer_ids: list[int]
) -> None:
    """Why the slots: four requests each holding one of four connections and asking for three
    more wait for each other until the pool gives up. Shows the test above would catch it."""
    async with _small_pool(database_url, 4, pool_timeout=1) as sessions:
        everyone_holds_one = asyncio.Barrier(4)

        async def overview() -> domain.Overview:
            async with sessions() as session:
                await session.execute(select(1))
                await everyone_holds_one.wait()
                return await queries.overview_concurrently(session, sessions)

        outcomes = await asyncio.gather(*(overview() for _ in range(4)), return_exceptions=True)
    assert any(isinstance(outcome, PoolTimeoutError) for outcome in outcomes)
