"""OAuth2 against a strict local provider: rotation, reuse detection, dead grants told apart
from outages, single-flight refreshes, and nothing secret in what comes back."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from healthgraph.database import Database
from probes.check import check_connection
from probes.oauth import OAuthClient, TokenAnswer, TokenRefusal, request_token
from probes.scheduler import Scheduler, SchedulerConfig
from probes.target import ProbeContext
from probes.token_broker import AccessToken, TokenBroker
from store import commands, oauth
from store.crypto import KeyRing, generate_key
from store.domain import ConnectionState, ConnectionStatus, FailureReason
from store.models import ConnectionRow
from store.scheduling import DueCheck, load_due_check
from tests.oauth_provider import CLIENT_ID, CLIENT_SECRET, OAuthProvider
from tests.outbound import LOOPBACK_OUTBOUND
from tests.probes.conftest import LOOPBACK
from tests.waiting import wait_until


@dataclass
class Provider:
    provider: OAuthProvider
    server: TestServer

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def client(self, **changes: object) -> OAuthClient:
        fields: dict[str, object] = {
            "token_url": self.url("/oauth/token"),
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "auth_method": self.provider.auth_method,
        }
        fields.update(changes)
        return OAuthClient(**fields)  # type: ignore[arg-type]


async def _provider(**options: object) -> Provider:
    provider = OAuthProvider(**options)  # type: ignore[arg-type]
    server = TestServer(provider.app(), host="127.0.0.1")
    await server.start_server()
    return Provider(provider, server)


@pytest.fixture
async def fake() -> AsyncIterator[Provider]:
    provider = await _provider()
    yield provider
    await provider.server.close()


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    async with ProbeContext.create(allow=LOOPBACK) as probe_context:
        yield probe_context


# --- the token endpoint ------------------------------------------------------------------------


async def test_a_refresh_rotates_the_token(fake: Provider, context: ProbeContext) -> None:
    seed = fake.provider.new_grant()
    answer = await request_token(
        context, fake.client(), grant_type="refresh_token", refresh_token=seed
    )
    assert isinstance(answer, TokenAnswer)
    grant = fake.provider.grant_of(seed)
    assert (answer.refresh_token, answer.expires_in) == (grant.refresh_token, 300.0)
    assert answer.refresh_token != seed
    assert "rt-" not in repr(answer) and "at-" not in repr(answer)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_the_client_authenticates_as_its_app_says(context: ProbeContext, method: str) -> None:
    fake = await _provider(auth_method=method)
    try:
        seed = fake.provider.new_grant()
        answer = await request_token(
            context, fake.client(), grant_type="refresh_token", refresh_token=seed
        )
        assert isinstance(answer, TokenAnswer)
        wrong = "client_secret_post" if method == "client_secret_basic" else "client_secret_basic"
        refused = await request_token(
            context,
            fake.client(auth_method=wrong),
            grant_type="refresh_token",
            refresh_token=fake.provider.grant_of(seed).refresh_token,
        )
        assert isinstance(refused, TokenRefusal)
        assert (refused.reason, refused.dead_grant) == (FailureReason.AUTH, True)
        assert refused.message == (
            f"token endpoint 127.0.0.1: invalid_client (bad client for "
            f"{'***' if wrong == 'client_secret_post' else 'None'})"
        )
    finally:
        await fake.server.close()


async def test_a_used_refresh_token_revokes_the_grant_and_says_so_without_echoing_it(
    fake: Provider, context: ProbeContext
) -> None:
    seed = fake.provider.new_grant()
    first = await request_token(
        context, fake.client(), grant_type="refresh_token", refresh_token=seed
    )
    assert isinstance(first, TokenAnswer)
    again = await request_token(
        context, fake.client(), grant_type="refresh_token", refresh_token=seed
    )
    assert again == TokenRefusal(
        FailureReason.AUTH,
        "token endpoint 127.0.0.1: invalid_grant (refresh token *** was already used)",
        dead_grant=True,
    )
    assert fake.provider.reuses == 1 and fake.provider.grant_of(seed).revoked


@pytest.mark.parametrize(
    ("fault", "reason", "message"),
    [
        (
            "503",
            FailureReason.HTTP_STATUS,
            "token endpoint 127.0.0.1: temporarily_unavailable (got {'grant_type': 'refresh_token', 'refresh_token': '***'})",
        ),
        (
            "429",
            FailureReason.RATE_LIMITED,
            "token endpoint 127.0.0.1: temporarily_unavailable (got {'grant_type': 'refresh_token', 'refresh_token': '***'})",
        ),
        (
            "garbage",
            FailureReason.HTTP_STATUS,
            "token endpoint 127.0.0.1: HTTP 200 without an access_token",
        ),
        (
            "hang",
            FailureReason.TIMEOUT,
            "token endpoint: no complete answer from 127.0.0.1:{port} within 0.5 s",
        ),
    ],
)
async def test_an_unavailable_endpoint_is_not_a_dead_grant(
    fake: Provider, context: ProbeContext, fault: str, reason: FailureReason, message: str
) -> None:
    seed = fake.provider.new_grant()
    fake.provider.fail_next(fault)
    answer = await request_token(
        context,
        fake.client(),
        grant_type="refresh_token",
        refresh_token=seed,
        timeout_seconds=0.5,
    )
    expected = message.replace("{port}", str(fake.server.port))
    assert answer == TokenRefusal(reason, expected, dead_grant=False)
    assert not fake.provider.grant_of(seed).revoked


async def test_client_credentials_need_no_refresh_token(
    fake: Provider, context: ProbeContext
) -> None:
    answer = await request_token(context, fake.client(), grant_type="client_credentials")
    assert isinstance(answer, TokenAnswer) and answer.refresh_token is None


# --- the broker, against a real database ------------------------------------------------------


@dataclass
class Graph:
    db: Database
    key_ring: KeyRing
    connection_ids: list[int]

    async def due(self, connection_id: int) -> DueCheck:
        async with self.db.sessions() as session:
            found = await load_due_check(session, connection_id)
        assert found is not None
        return found

    async def stored(self, connection_id: int) -> oauth.OAuthGrant:
        async with self.db.sessions() as session:
            grant = await oauth.load_grant(session, connection_id, self.key_ring)
        assert grant is not None
        return grant

    async def row(self, connection_id: int) -> ConnectionRow:
        async with self.db.sessions() as session:
            row = await session.scalar(
                select(ConnectionRow).where(ConnectionRow.id == connection_id)
            )
        assert row is not None
        return row


async def oauth_graph(db: Database, fake: Provider, count: int = 1, **credentials: str) -> Graph:
    """`count` OAuth2 connections of one consumer, each with a grant of its own."""
    key_ring = KeyRing([generate_key()])
    ids = []
    async with db.sessions.begin() as session:
        consumer = await commands.create_consumer(session, external_id="acme", name="Acme")
        connector = await commands.create_connector(
            session,
            slug="books",
            name="Books",
            category="accounting",
            heartbeat={"url": fake.url("/api/whoami"), "timeout_seconds": 5},
            outbound=LOOPBACK_OUTBOUND,
        )
        await commands.set_connector_oauth2(
            session,
            connector.id,
            app={"token_url": fake.url("/oauth/token"), "client_id": CLIENT_ID},
            client_secret=CLIENT_SECRET,
            key_ring=key_ring,
            outbound=LOOPBACK_OUTBOUND,
        )
        for n in range(count):
            connection = await commands.create_connection(
                session,
                consumer_id=consumer.id,
                connector_id=connector.id,
                name=f"Books {n}",
                check_interval_seconds=1,
                outbound=LOOPBACK_OUTBOUND,
            )
            secret = {"kind": "oauth2", "refresh_token": fake.provider.new_grant(), **credentials}
            await commands.set_connection_credentials(
                session, connection.id, secret=secret, key_ring=key_ring
            )
            ids.append(connection.id)
    return Graph(db, key_ring, ids)


async def test_the_first_token_is_refreshed_saved_then_reused(
    db: Database, fake: Provider, context: ProbeContext
) -> None:
    graph = await oauth_graph(db, fake)
    broker = TokenBroker(db.sessions, graph.key_ring)
    connection_id = graph.connection_ids[0]
    due = await graph.due(connection_id)
    first = await broker.access_token(due, context)
    assert isinstance(first, AccessToken) and first.refreshed
    stored = await graph.stored(connection_id)
    (grant,) = fake.provider.grants.values()
    # Saved before use: the stored refresh token is the provider's current one.
    assert (stored.refresh_token, stored.access_token, stored.generation) == (
        grant.refresh_token,
        first.token,
        2,
    )
    again = await broker.access_token(due, context)
    assert again == AccessToken(first.token, refreshed=False)
    assert grant.refreshes == 1


async def test_concurrent_refreshes_run_once_in_a_process_and_across_holders(
    db: Database, fake: Provider, context: ProbeContext
) -> None:
    """Twenty checks at once in each of three brokers (three processes' worth): one refresh,
    no reuse."""
    graph = await oauth_graph(db, fake)
    due = await graph.due(graph.connection_ids[0])
    brokers = [TokenBroker(db.sessions, graph.key_ring) for _ in range(3)]
    tokens = await asyncio.gather(
        *(broker.access_token(due, context) for broker in brokers for _ in range(20))
    )
    assert {type(t) for t in tokens} == {AccessToken}
    assert len({t.token for t in tokens if isinstance(t, AccessToken)}) == 1
    (grant,) = fake.provider.grants.values()
    assert (grant.refreshes, fake.provider.reuses, grant.revoked) == (1, 0, False)


async def test_a_revoked_grant_is_auth_and_failed_and_says_to_reconnect(
    db: Database, fake: Provider, context: ProbeContext
) -> None:
    graph = await oauth_graph(db, fake)
    connection_id = graph.connection_ids[0]
    broker = TokenBroker(db.sessions, graph.key_ring)
    scheduler = Scheduler(
        db.sessions,
        context,
        worker_id="w1",
        key_ring=graph.key_ring,
        config=SchedulerConfig(jitter_ratio=0),
        tokens=broker,
    )
    assert await scheduler.run_once() == 1
    assert (await graph.row(connection_id)).status is ConnectionStatus.CONNECTED
    (grant,) = fake.provider.grants.values()
    fake.provider.revoke(grant)
    async with db.sessions.begin() as session:
        await session.execute(
            ConnectionRow.__table__.update().values(next_check_at=datetime.now(UTC))
        )
    assert await scheduler.run_once() == 1
    row = await graph.row(connection_id)
    assert (row.state, row.status, row.failure_reason) == (
        ConnectionState.FAILED,
        ConnectionStatus.CONNECTION_FAILURE,
        FailureReason.AUTH,
    )
    assert row.last_error == (
        "the OAuth2 grant is no longer valid (token endpoint 127.0.0.1: invalid_grant (grant "
        "revoked; token ***)); the consumer must reconnect"
    )
    # Dead: no more refreshes until new credentials; the check says so at once.
    requests = fake.provider.token_requests
    due = await graph.due(connection_id)
    outcome = await check_connection(due, context, graph.key_ring, tokens=broker)
    assert (outcome.failure_reason, fake.provider.token_requests) == (
        FailureReason.AUTH,
        requests,
    )
    # New credentials bring it back.
    async with db.sessions.begin() as session:
        await commands.set_connection_credentials(
            session,
            connection_id,
            secret={"kind": "oauth2", "refresh_token": fake.provider.new_grant()},
            key_ring=graph.key_ring,
        )
    outcome = await check_connection(
        await graph.due(connection_id), context, graph.key_ring, tokens=broker
    )
    assert outcome.success


async def test_an_outage_of_the_token_endpoint_changes_no_state(
    db: Database, fake: Provider, context: ProbeContext
) -> None:
    graph = await oauth_graph(db, fake)
    fake.provider.fail_next("503")
    scheduler = Scheduler(
        db.sessions,
        context,
        worker_id="w1",
        key_ring=graph.key_ring,
        tokens=TokenBroker(db.sessions, graph.key_ring),
    )
    assert await scheduler.run_once() == 1
    row = await graph.row(graph.connection_ids[0])
    assert (row.state, row.failure_reason) == (ConnectionState.ACTIVE, FailureReason.HTTP_STATUS)
    stored = await graph.stored(graph.connection_ids[0])
    assert stored.dead_reason is None and stored.generation == 1


async def test_a_401_on_a_stored_token_refreshes_once_and_retries(
    db: Database, fake: Provider, context: ProbeContext
) -> None:
    """A token the API no longer takes (revoked early) though it has not expired."""
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    graph = await oauth_graph(db, fake, access_token="at-unknown", access_token_expires_at=later)
    broker = TokenBroker(db.sessions, graph.key_ring)
    due = await graph.due(graph.connection_ids[0])
    outcome = await check_connection(due, context, graph.key_ring, tokens=broker)
    assert outcome.success
    (grant,) = fake.provider.grants.values()
    assert (grant.refreshes, fake.provider.api_requests) == (1, 2)


async def test_short_lived_tokens_stay_green_and_are_never_reused(
    db: Database, context: ProbeContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Tokens that expire every 2 s, five connections checked every second for two minutes:
    every check succeeds, each token is refreshed before use and never used twice."""
    fake = await _provider(access_seconds=2)
    try:
        graph = await oauth_graph(db, fake, count=5)
        scheduler = Scheduler(
            db.sessions,
            context,
            worker_id="w1",
            key_ring=graph.key_ring,
            config=SchedulerConfig(jitter_ratio=0, idle_poll_seconds=0.1),
            tokens=TokenBroker(db.sessions, graph.key_ring),
        )
        stop = asyncio.Event()
        caplog.set_level(logging.INFO)
        task = asyncio.create_task(scheduler.run(stop))
        await asyncio.sleep(120)
        stop.set()
        await task
        for connection_id in graph.connection_ids:
            row = await graph.row(connection_id)
            assert (row.status, row.state, row.failure_reason) == (
                ConnectionStatus.CONNECTED,
                ConnectionState.ACTIVE,
                None,
            )
        grants = fake.provider.grants.values()
        assert fake.provider.reuses == 0 and not any(g.revoked for g in grants)
        assert all(g.refreshes >= 60 for g in grants), [g.refreshes for g in grants]
        assert fake.provider.results["ok"] == sum(g.refreshes for g in grants)
        assert "rt-" not in caplog.text and "at-" not in caplog.text
    finally:
        await fake.server.close()


async def test_a_lease_left_by_a_dead_holder_expires(
    db: Database, fake: Provider, context: ProbeContext
) -> None:
    """A holder that died mid-refresh: the next one waits out the lease, then refreshes."""
    graph = await oauth_graph(db, fake)
    connection_id = graph.connection_ids[0]
    long_ago = datetime.now(UTC) - timedelta(seconds=oauth.REFRESH_LEASE_SECONDS + 1)
    async with db.sessions.begin() as session:
        assert await oauth.take_refresh_lease(
            session, connection_id, holder="dead-worker", now=long_ago, generation=1
        )
    granted = await TokenBroker(db.sessions, graph.key_ring).access_token(
        await graph.due(connection_id), context
    )
    assert isinstance(granted, AccessToken) and granted.refreshed
    await wait_until(lambda: _no_lease(graph, connection_id), 5, "the lease given back")


async def _no_lease(graph: Graph, connection_id: int) -> bool:
    async with graph.db.sessions() as session:
        return not await oauth.refresh_leased(session, connection_id, now=datetime.now(UTC))


async def test_the_lease_of_a_holder_killed_on_this_machine_is_taken_over_at_once(
    db: Database, fake: Provider, context: ProbeContext
) -> None:
    """A holder whose process is gone (kill -9 mid-refresh) is not waited out for the lease."""
    graph = await oauth_graph(db, fake)
    connection_id = graph.connection_ids[0]
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    holder = f"{socket.gethostname()}:{dead.pid}:1"
    async with db.sessions.begin() as session:
        assert await oauth.take_refresh_lease(
            session, connection_id, holder=holder, now=datetime.now(UTC), generation=1
        )
    started = asyncio.get_running_loop().time()
    granted = await TokenBroker(db.sessions, graph.key_ring).access_token(
        await graph.due(connection_id), context
    )
    assert isinstance(granted, AccessToken) and granted.refreshed
    assert asyncio.get_running_loop().time() - started < 5  # not the 30 s lease


async def test_a_live_holders_lease_is_waited_for(
    db: Database, fake: Provider, context: ProbeContext
) -> None:
    """Another live process refreshing: the broker waits for its answer and uses it."""
    graph = await oauth_graph(db, fake)
    connection_id = graph.connection_ids[0]
    other = TokenBroker(db.sessions, graph.key_ring)
    mine = TokenBroker(db.sessions, graph.key_ring)
    holder = f"{socket.gethostname()}:1:1"  # pid 1: alive on every machine
    async with db.sessions.begin() as session:
        assert await oauth.take_refresh_lease(
            session, connection_id, holder=holder, now=datetime.now(UTC), generation=1
        )
    waiting = asyncio.create_task(mine.access_token(await graph.due(connection_id), context))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    async with db.sessions.begin() as session:
        await oauth.release_refresh_lease(session, connection_id, holder=holder)
    first = await other.access_token(await graph.due(connection_id), context)
    granted = await asyncio.wait_for(waiting, 10)
    assert isinstance(first, AccessToken) and isinstance(granted, AccessToken)
    (grant,) = fake.provider.grants.values()
    assert (grant.refreshes, fake.provider.reuses) == (1, 0)
