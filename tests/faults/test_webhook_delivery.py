"""Webhooks under real processes: `kill -9` of `serve` between a connection's failure and its
delivery loses nothing (the event was committed with the failure), and three PostgreSQL
workers share 1,000 events so that each reaches the receiver exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from healthgraph.database import Database, open_database
from store import commands
from store.commands import mutes
from store.commands.webhooks import create_webhook_endpoint
from store.crypto import KeyRing
from store.domain import ConnectionState, MuteScope
from store.engine import create_engine
from store.migrate import upgrade_database
from store.models import WebhookEventRow
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.faults.conftest import KEY, Service
from tests.outbound import LOOPBACK_OUTBOUND
from tests.waiting import wait_until
from tests.webhook_receiver import Receiver

Start = Callable[..., Awaitable[Service]]


async def _endpoint(database: Database, url: str) -> str:
    async with database.sessions.begin() as session:
        _, secret = await create_webhook_endpoint(
            session,
            url=url,
            events=None,
            description=None,
            consumer_id=None,
            outbound=LOOPBACK_OUTBOUND,
            key_ring=KeyRing([KEY]),
        )
    return secret


async def _failing_target() -> TestServer:
    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=500, text="upstream broken")

    app = web.Application()
    app.router.add_get("/health", broken)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@dataclass
class FailingConnection:
    """A SQLite database with one connection whose heartbeat answers 500 and one endpoint
    (all events) on a receiver."""

    url: str
    database: Database
    receiver: Receiver
    connection_id: int


@pytest.fixture
async def failing(tmp_path: Path) -> AsyncIterator[Callable[[int], Awaitable[FailingConnection]]]:
    opened: list[Callable[[], Awaitable[object]]] = []

    async def make(check_interval_seconds: int) -> FailingConnection:
        url = f"sqlite:///{tmp_path / 'healthgraph.db'}"
        engine = create_engine(url)
        await upgrade_database(engine)
        await engine.dispose()
        target = await _failing_target()
        opened.append(target.close)
        receiver = await Receiver("").start()
        opened.append(receiver.close)
        database = await open_database(url)
        opened.append(database.close)
        async with database.sessions.begin() as session:
            consumer = await commands.create_consumer(session, external_id="acme", name="Acme")
            connector = await commands.create_connector(
                session,
                slug="books",
                name="Books",
                category="accounting",
                heartbeat={"url": str(target.make_url("/health"))},
                outbound=LOOPBACK_OUTBOUND,
            )
            connection = await commands.create_connection(
                session,
                consumer_id=consumer.id,
                connector_id=connector.id,
                name="Acme Books",
                state=ConnectionState.ACTIVE,
                check_interval_seconds=check_interval_seconds,
                outbound=LOOPBACK_OUTBOUND,
            )
        receiver.secret = await _endpoint(database, receiver.url)
        return FailingConnection(url, database, receiver, connection.id)

    try:
        yield make
    finally:
        for close in reversed(opened):
            await close()


async def _events(database: Database) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(WebhookEventRow)) or 0)


async def test_kill_9_between_the_failure_and_its_delivery_loses_nothing(
    failing: Callable[[int], Awaitable[FailingConnection]], services: Start
) -> None:
    world = await failing(600)
    database, receiver = world.database, world.receiver
    # The failure is held for a minute (an outage might show): kill -9 meanwhile.
    serve = await services(world.url, "serve", HEALTHGRAPH_OUTAGE_HOLD_SECONDS="60")
    await wait_until(lambda: _has_events(database), 30, "the failure's event committed")
    serve.process.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(serve.process.wait(), 10) == -signal.SIGKILL
    assert receiver.requests == 0

    restarted = await services(world.url, "serve", HEALTHGRAPH_OUTAGE_HOLD_SECONDS="0")
    await restarted.wait_ready()
    await wait_until(lambda: _received(receiver, 1), 30, "the event after the restart")
    await asyncio.sleep(2)  # nothing more follows
    (item,) = receiver.received
    assert (item.type, item.body["data"]["connection"]["name"]) == (
        "connection.failed",
        "Acme Books",
    )
    assert item.body["data"]["connection"]["last_error"].startswith("HTTP 500")
    assert receiver.refused == []
    await restarted.stop()


async def _has_events(database: Database) -> bool:
    return await _events(database) > 0


async def _received(receiver: Receiver, count: int) -> bool:
    return len(receiver.received) >= count


@pytest.fixture
async def postgres() -> AsyncIterator[str]:
    url = await create_postgres_database()
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


async def test_three_postgresql_workers_deliver_1000_events_once_each(
    postgres: str, services: Start
) -> None:
    receiver = await Receiver("").start()
    database = await open_database(postgres, upgrade_embedded=False)
    try:
        receiver.secret = await _endpoint(database, receiver.url)
        async with database.sessions.begin() as session:
            consumer = await commands.create_consumer(session, external_id="acme", name="Acme")
            connector = await commands.create_connector(
                session,
                slug="books",
                name="Books",
                category="accounting",
                heartbeat={"url": "https://books.example/health"},
                outbound=LOOPBACK_OUTBOUND,
            )
            connection = await commands.create_connection(
                session,
                consumer_id=consumer.id,
                connector_id=connector.id,
                name="Acme Books",
                state=ConnectionState.PENDING,  # never probed: only the use events flow
                outbound=LOOPBACK_OUTBOUND,
            )
            await commands.upsert_use_kind(session, kind="hypersync", label="Hypersyncs")
            uses = [
                await commands.create_use(
                    session, connection_id=connection.id, kind="hypersync", name=f"sync {n}"
                )
                for n in range(1000)
            ]
            now = datetime.now(UTC)
            for use in uses:  # 1,000 use.failed events, in this one transaction
                await commands.report_use_run(session, use.id, success=False, error="x", at=now)
        assert await _events(database) == 1000
        workers = [await services(postgres, "worker") for _ in range(3)]
        for worker in workers:
            await worker.wait_ready()
        await wait_until(lambda: _received(receiver, 1000), 120, "1,000 deliveries")
        await asyncio.sleep(3)  # a second delivery of any would show by now
        for worker in workers:
            assert await worker.stop() == 0, worker.log()
    finally:
        await database.close()
        await receiver.close()
    counts = receiver.counts()
    assert (len(counts), max(counts.values()), receiver.refused) == (1000, 1, [])
    assert sorted({item.type for item in receiver.received}) == ["use.failed"]


async def test_a_mute_holds_across_a_restart_and_its_end_tells_the_failure(
    failing: Callable[[int], Awaitable[FailingConnection]], services: Start
) -> None:
    world = await failing(1)
    database, receiver, connection_id = world.database, world.receiver, world.connection_id
    async with database.sessions.begin() as session:
        await mutes.mute(
            session,
            MuteScope.CONNECTION,
            connection_id,
            until=datetime.now(UTC) + timedelta(hours=1),
            reason="customer migrating",
        )
    serve = await services(world.url, "serve", HEALTHGRAPH_OUTAGE_HOLD_SECONDS="0")
    await serve.wait_ready()
    await wait_until(lambda: _has_events(database), 30, "the failure's event committed")
    serve.process.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(serve.process.wait(), 10) == -signal.SIGKILL

    restarted = await services(world.url, "serve", HEALTHGRAPH_OUTAGE_HOLD_SECONDS="0")
    await restarted.wait_ready()
    async with httpx.AsyncClient(timeout=10) as client:
        metrics = (await client.get(f"{restarted.base_url}/metrics")).text
    assert f'healthgraph_connection_muted{{connection_id="{connection_id}"}} 1' in (
        metrics.splitlines()
    )
    # Checks go on failing every second; the muted failure is told to nobody.
    await wait_until(lambda: _dispatched_all(database), 30, "the event dispatched")
    await asyncio.sleep(2)
    assert receiver.requests == 0

    async with database.sessions.begin() as session:
        assert await mutes.unmute(session, MuteScope.CONNECTION, connection_id) == 1
    await wait_until(lambda: _received(receiver, 1), 30, "the failure told after the mute")
    await asyncio.sleep(2)  # once, not once per failed check
    assert [(item.type, item.body["data"]["connection"]["name"]) for item in receiver.received] == [
        ("connection.failed", "Acme Books")
    ]
    await restarted.stop()


async def _dispatched_all(database: Database) -> bool:
    async with database.sessions() as session:
        waiting = await session.scalar(
            select(func.count())
            .select_from(WebhookEventRow)
            .where(WebhookEventRow.dispatched_at.is_(None))
        )
    return await _has_events(database) and waiting == 0
