"""Rotating refresh tokens against real processes: three PostgreSQL workers sharing 500 OAuth2
connections never use a refresh token twice, and `kill -9` of `serve` right after the provider
answered a refresh leaves the connection working, or FAILED with AUTH and a clear message,
never looping."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from healthgraph.database import Database, open_database
from store import commands
from store.crypto import KeyRing
from store.domain import ConnectionState, ConnectionStatus, FailureReason
from store.engine import create_engine
from store.migrate import upgrade_database
from store.models import ConnectionRow
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.faults.conftest import KEY, Service
from tests.oauth_provider import CLIENT_ID, CLIENT_SECRET, OAuthProvider
from tests.outbound import LOOPBACK_OUTBOUND
from tests.waiting import wait_until

Start = Callable[..., Awaitable[Service]]


async def _served(provider: OAuthProvider) -> TestServer:
    server = TestServer(provider.app(), host="127.0.0.1")
    await server.start_server()
    return server


async def _seed(
    database: Database, server: TestServer, provider: OAuthProvider, count: int
) -> None:
    """`count` OAuth2 connections checked every second, each with its own grant."""
    key_ring = KeyRing([KEY])
    async with database.sessions.begin() as session:
        consumer = await commands.create_consumer(session, external_id="acme", name="Acme")
        connector = await commands.create_connector(
            session,
            slug="books",
            name="Books",
            category="accounting",
            heartbeat={"url": str(server.make_url("/api/whoami")), "timeout_seconds": 10},
            outbound=LOOPBACK_OUTBOUND,
        )
        await commands.set_connector_oauth2(
            session,
            connector.id,
            app={"token_url": str(server.make_url("/oauth/token")), "client_id": CLIENT_ID},
            client_secret=CLIENT_SECRET,
            key_ring=key_ring,
            outbound=LOOPBACK_OUTBOUND,
        )
        for n in range(count):
            connection = await commands.create_connection(
                session,
                consumer_id=consumer.id,
                connector_id=connector.id,
                name=f"books {n}",
                check_interval_seconds=1,
                outbound=LOOPBACK_OUTBOUND,
            )
            await commands.set_connection_credentials(
                session,
                connection.id,
                secret={"kind": "oauth2", "refresh_token": provider.new_grant()},
                key_ring=key_ring,
            )


async def _statuses(database: Database) -> dict[tuple[ConnectionState, ConnectionStatus], int]:
    async with database.sessions() as session:
        rows = await session.execute(
            select(ConnectionRow.state, ConnectionRow.status, func.count()).group_by(
                ConnectionRow.state, ConnectionRow.status
            )
        )
        return {(state, status): count for state, status, count in rows}


@pytest.fixture
async def postgres() -> AsyncIterator[str]:
    url = await create_postgres_database()
    engine = create_engine(url)
    await upgrade_database(engine)
    await engine.dispose()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


async def test_three_postgresql_workers_never_reuse_a_refresh_token(
    postgres: str, services: Start
) -> None:
    """500 connections whose 2-second tokens are refreshed at (nearly) every 1-second check,
    by three workers at once for 20 s: thousands of rotations, not one token used twice."""
    provider = OAuthProvider(access_seconds=2)
    server = await _served(provider)
    database = await open_database(postgres, upgrade_embedded=False)
    try:
        await _seed(database, server, provider, 500)
        workers = [await services(postgres, "worker") for _ in range(3)]
        for worker in workers:
            await worker.wait_ready()
        await asyncio.sleep(20)
        for worker in workers:
            assert await worker.stop() == 0, worker.log()
        grants = list(provider.grants.values())
        refreshes = sum(g.refreshes for g in grants)
        assert (provider.reuses, [g.id for g in grants if g.revoked]) == (0, [])
        assert refreshes >= 500 * 5, refreshes  # every grant rotated again and again
        assert all(g.refreshes >= 3 for g in grants), sorted(g.refreshes for g in grants)[:5]
        assert await _statuses(database) == {
            (ConnectionState.ACTIVE, ConnectionStatus.CONNECTED): 500
        }
        for worker in workers:
            assert "refresh token" not in worker.log() and "rt-" not in worker.log()
    finally:
        await database.close()
        await server.close()


async def test_kill_9_right_after_a_refresh_is_answered_never_loops(
    tmp_path: Path, services: Start
) -> None:
    """The provider answers a refresh, then `serve` is killed at once. If its new tokens were
    committed, the connection works after the restart; if not, the old refresh token is
    refused as reused and the connection is FAILED with AUTH, saying why: never a refresh
    that loops."""
    url = f"sqlite:///{tmp_path / 'healthgraph.db'}"
    provider = OAuthProvider(access_seconds=3600)
    holder: dict[str, Service] = {}
    answered = asyncio.Event()

    def kill_serve() -> None:
        if "serve" in holder and not answered.is_set():
            answered.set()
            holder["serve"].process.send_signal(signal.SIGKILL)

    provider.after_refresh = kill_serve
    server = await _served(provider)
    database = await open_database(url)
    try:
        await _seed(database, server, provider, 1)
        holder["serve"] = await services(url, "serve")
        await asyncio.wait_for(answered.wait(), 60)
        assert await asyncio.wait_for(holder["serve"].process.wait(), 10) == -signal.SIGKILL
        (grant,) = provider.grants.values()
        assert grant.refreshes == 1  # the provider rotated: the stored seed is now used up

        restarted = await services(url, "serve")
        await restarted.wait_ready()

        async def settled() -> bool:
            statuses = await _statuses(database)
            return bool(
                statuses.get((ConnectionState.ACTIVE, ConnectionStatus.CONNECTED))
                or statuses.get((ConnectionState.FAILED, ConnectionStatus.CONNECTION_FAILURE))
            )

        await wait_until(settled, 60, "the connection checked after the restart")
        async with database.sessions() as session:
            row = await session.scalar(select(ConnectionRow))
        assert row is not None
        if row.state is ConnectionState.ACTIVE:
            # Committed before the kill: the rotated token works, no reuse ever happened.
            assert (provider.reuses, grant.revoked) == (0, False)
        else:
            assert (row.failure_reason, provider.reuses) == (FailureReason.AUTH, 1)
            assert row.last_error is not None and "the consumer must reconnect" in row.last_error
        requests = provider.token_requests
        await asyncio.sleep(4)  # four more 1-second checks
        assert provider.token_requests == requests  # no refresh loop either way
        assert await restarted.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM
    finally:
        await database.close()
        await server.close()
