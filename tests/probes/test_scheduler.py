"""The scheduler against real local servers, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, text

from healthgraph.database import Database
from probes import ProbeContext, ProbeResult, ProbeTarget
from probes.check import check_connection
from probes.scheduler import Scheduler, SchedulerConfig, random_jitter
from store.crypto import KeyRing, generate_key
from store.domain import (
    CheckOutcome,
    ConnectionState,
    ConnectionStatus,
    Direction,
    FailureReason,
    StatusChange,
)
from store.models import CheckRow, ConnectionRow
from store.scheduling import DueCheck
from tests.probes.conftest import CANARY, HttpServer
from tests.store.test_scheduling import Graph, make_graph
from tests.waiting import wait_until

FAST = SchedulerConfig(
    idle_poll_seconds=0.05,
    flush_interval_seconds=0.05,
    sweep_interval_seconds=0.05,
    error_pause_seconds=0.1,
)


def no_jitter(interval: int) -> float:
    return 0.0


@pytest.fixture
async def graph(db: Database) -> Graph:
    return await make_graph(db)


@pytest.fixture
def key_ring() -> KeyRing:
    return KeyRing([generate_key()])


def scheduler(
    graph: Graph,
    context: ProbeContext,
    key_ring: KeyRing | None = None,
    **options: object,
) -> Scheduler:
    options.setdefault("jitter", no_jitter)
    return Scheduler(
        graph.db.sessions,
        context,
        worker_id="test:1",
        key_ring=key_ring,
        **options,  # type: ignore[arg-type]
    )


async def due(graph: Graph, url: str | None, **options: Any) -> int:
    """A connection due now (the store tests' default due time is a fixed instant)."""
    options.setdefault("next_check_at", datetime.now(UTC) - timedelta(seconds=1))
    return await graph.connection(heartbeat={"url": url, **options.pop("heartbeat", {})}, **options)


async def all_checks(graph: Graph) -> list[CheckRow]:
    async with graph.db.sessions() as session:
        return list(await session.scalars(select(CheckRow).order_by(CheckRow.id)))


async def test_healthy_failing_and_unauthorised_targets(
    graph: Graph, http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    now = datetime.now(UTC)
    healthy = await due(
        graph, http_server.url("/status/200"), next_check_at=now - timedelta(seconds=1)
    )
    broken = await due(graph, http_server.url("/status/500"))
    denied = await due(graph, http_server.url("/status/401"))
    await graph.connection(
        heartbeat={"url": http_server.url("/status/200")}, next_check_at=now + timedelta(hours=1)
    )
    published: list[list[StatusChange]] = []

    async def on_changes(changes: list[StatusChange]) -> None:
        published.append(changes)

    worker = scheduler(graph, loopback_context, on_changes=on_changes)
    assert await worker.run_once() == 3
    assert worker.checks_done == 3

    row = await graph.row(healthy)
    assert (row.state, row.status, row.failure_reason, row.last_error) == (
        ConnectionState.ACTIVE,
        ConnectionStatus.CONNECTED,
        None,
        None,
    )
    assert row.latency_ms is not None and row.latency_ms > 0
    # On the cadence of the due time it was claimed at (a second ago), not of the check.
    assert row.next_check_at == now - timedelta(seconds=1) + timedelta(seconds=60)
    assert (row.claimed_by, row.lease_expires_at) == (None, None)

    row = await graph.row(broken)
    assert (row.state, row.status, row.failure_reason, row.last_error) == (
        ConnectionState.ACTIVE,
        ConnectionStatus.CONNECTION_FAILURE,
        FailureReason.HTTP_STATUS,
        "HTTP 500 Internal Server Error; expected 200",
    )
    row = await graph.row(denied)
    assert (row.state, row.status, row.failure_reason) == (
        ConnectionState.FAILED,
        ConnectionStatus.CONNECTION_FAILURE,
        FailureReason.AUTH,
    )

    history = {c.connection_id: (c.success, c.http_status) for c in await all_checks(graph)}
    assert history == {healthy: (True, 200), broken: (False, 500), denied: (False, 401)}
    assert [sorted(c.connection_id for c in batch) for batch in published] == [
        [healthy, broken, denied]
    ]
    assert sorted(http.path for http in http_server.seen) == [
        "/status/200",
        "/status/401",
        "/status/500",
    ]

    assert await worker.run_once() == 0  # nothing due for another minute


async def test_credentials_reach_the_server_and_nothing_else(
    graph: Graph,
    http_server: HttpServer,
    loopback_context: ProbeContext,
    key_ring: KeyRing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The server echoes the Authorization header and the assertion fails on that value.
    bearer = await due(
        graph,
        http_server.url("/echo-auth-json"),
        heartbeat={"json_path": "$.seen", "json_equals": "nope"},
        ciphertext=key_ring.encrypt({"kind": "bearer", "token": CANARY}),
    )
    query = await due(
        graph,
        http_server.url("/status/500?page=1"),
        ciphertext=key_ring.encrypt({"kind": "query", "name": "api_key", "value": CANARY}),
    )
    header = await due(
        graph,
        http_server.url("/status/401"),
        ciphertext=key_ring.encrypt({"kind": "header", "name": "X-Api-Key", "value": CANARY}),
    )

    async def raising_probe(target: ProbeTarget, context: ProbeContext) -> ProbeResult:
        assert target.credentials is not None
        raise RuntimeError(f"bug while holding {target.credentials.secrets()[0]}")

    assert await scheduler(graph, loopback_context, key_ring).run_once() == 3
    seen = {request.path: request for request in http_server.seen}
    assert seen["/echo-auth-json"].headers["Authorization"] == f"Bearer {CANARY}"
    assert seen["/status/500"].query == {"page": "1", "api_key": CANARY}
    assert seen["/status/401"].headers["X-Api-Key"] == CANARY
    assert (await graph.row(bearer)).failure_reason == FailureReason.ASSERTION

    # A probe that raises with the secret in its message: masked in the log too.
    async with graph.db.sessions.begin() as session:
        await session.execute(
            ConnectionRow.__table__.update().values(next_check_at=datetime.now(UTC))
        )
    assert await scheduler(graph, loopback_context, key_ring, probe=raising_probe).run_once() == 3
    assert "RuntimeError: bug while holding ***" in caplog.text

    for connection_id in (bearer, query, header):
        row = await graph.row(connection_id)
        assert row.last_error is not None
        assert CANARY not in row.last_error
    errors = [c.error or "" for c in await all_checks(graph)]
    assert len(errors) == 6
    assert not [e for e in errors if CANARY in e]
    # Everything this process logged, except the local target's own access log.
    ours = [r for r in caplog.records if r.name != "aiohttp.access"]
    assert [r.name for r in ours if CANARY in r.getMessage()] == []
    assert [r.name for r in ours if r.exc_text and CANARY in r.exc_text] == []


async def test_a_probe_that_raises_is_a_failed_check_and_the_others_go_on(
    graph: Graph, http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    fine = await due(graph, http_server.url("/status/200"))
    buggy = await due(graph, http_server.url("/status/204"))

    async def probe(target: ProbeTarget, context: ProbeContext) -> ProbeResult:
        if target.spec.url and target.spec.url.endswith("/204"):
            raise ZeroDivisionError("division by zero")
        from probes import run_probe

        return await run_probe(target, context)

    assert await scheduler(graph, loopback_context, probe=probe).run_once() == 2
    assert (await graph.row(fine)).status == ConnectionStatus.CONNECTED
    row = await graph.row(buggy)
    assert (row.status, row.failure_reason, row.last_error) == (
        ConnectionStatus.CONNECTION_FAILURE,
        FailureReason.CONNECT,
        "the probe failed unexpectedly (ZeroDivisionError); see the worker log",
    )


async def test_configuration_errors_are_failed_checks_that_say_why(
    graph: Graph, loopback_context: ProbeContext, key_ring: KeyRing
) -> None:
    no_url = await due(graph, None)
    other_key = await due(
        graph,
        "http://127.0.0.1:9/",
        ciphertext=KeyRing([generate_key()]).encrypt({"kind": "bearer", "token": CANARY}),
    )
    bad_secret = await due(
        graph,
        "http://127.0.0.1:9/",
        ciphertext=key_ring.encrypt({"kind": "carrier-pigeon"}),
    )
    assert await scheduler(graph, loopback_context, key_ring).run_once() == 3
    messages = {
        connection_id: (row.failure_reason, row.last_error)
        for connection_id in (no_url, other_key, bad_secret)
        if (row := await graph.row(connection_id))
    }
    assert messages == {
        no_url: (FailureReason.CONNECT, "cannot run the check: the heartbeat has no URL"),
        other_key: (
            FailureReason.CONNECT,
            "cannot run the check: stored credentials cannot be decrypted with any key of the "
            "ring; was a key removed before `healthgraph keys rotate` ran?",
        ),
        bad_secret: (
            FailureReason.CONNECT,
            "cannot run the check: stored credentials.kind: must be one of bearer, basic, "
            "header, query, oauth2",
        ),
    }


async def test_check_connection_for_check_now(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    due = DueCheck(
        connection_id=1,
        external_id="acme/eu",
        heartbeat={"url": http_server.url("/echo?consumer={external_id}")},
        credentials_ciphertext=None,
        check_interval_seconds=60,
        failure_threshold=1,
        due_at=None,
        lease_expires_at=None,
    )
    outcome = await check_connection(due, loopback_context, None)
    assert (outcome.success, outcome.http_status, outcome.failure_reason) == (True, 200, None)
    assert http_server.seen[-1].query == {"consumer": "acme/eu"}


# --- limits ------------------------------------------------------------------------------------


@pytest.fixture
async def counting_server() -> AsyncIterator[tuple[str, list[int]]]:
    """Answers after 50 ms; records how many requests it was serving at its busiest."""
    busy = [0]
    peak = [0]

    async def slow(request: web.Request) -> web.Response:
        busy[0] += 1
        peak[0] = max(peak[0], busy[0])
        try:
            await asyncio.sleep(0.05)
            return web.Response(text="ok")
        finally:
            busy[0] -= 1

    app = web.Application()
    app.router.add_get("/slow", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}/slow", peak
    await server.close()


async def test_per_host_and_global_concurrency_are_bounded(
    graph: Graph, counting_server: tuple[str, list[int]], loopback_context: ProbeContext
) -> None:
    url, peak = counting_server
    for _ in range(24):
        await due(graph, url)
    config = SchedulerConfig(per_host_concurrency=3, concurrency=8, claim_batch=24)
    assert await scheduler(graph, loopback_context, config=config).run_once() == 24
    assert peak[0] == 3

    async with graph.db.sessions.begin() as session:
        await session.execute(
            ConnectionRow.__table__.update().values(next_check_at=datetime.now(UTC))
        )
    peak[0] = 0
    config = SchedulerConfig(per_host_concurrency=20, concurrency=2, claim_batch=24)
    assert await scheduler(graph, loopback_context, config=config).run_once() == 24
    assert peak[0] == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"concurrency": -5}, "concurrency must be at least 1"),
        ({"per_host_concurrency": 0}, "per_host_concurrency must be at least 1"),
        ({"lease_seconds": 0}, "lease_seconds must be positive"),
        ({"claim_ahead_seconds": -1}, "claim_ahead_seconds must be in [0, lease_seconds)"),
        ({"claim_ahead_seconds": 60}, "claim_ahead_seconds must be in [0, lease_seconds)"),
        ({"jitter_ratio": 1}, "jitter_ratio must be in [0, 1)"),
    ],
)
def test_a_scheduler_config_out_of_range_names_the_setting(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        SchedulerConfig(**options)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("config", "probe_processes", "budget"),
    [
        (SchedulerConfig(), 0, 200),  # probing in the worker's own process
        (SchedulerConfig(), 1, 400),  # and 200 more for each process a check passes through
        (SchedulerConfig(), 3, 800),
        (SchedulerConfig(concurrency=50), 0, 50),  # a budget that was set stays
        (SchedulerConfig(concurrency=50), 2, 50),
    ],
)
def test_the_default_budget_grows_with_the_probe_processes(
    config: SchedulerConfig, probe_processes: int, budget: int
) -> None:
    assert config.sized_for(probe_processes).probes_in_flight == budget


def test_an_unsized_config_probes_200_at_once() -> None:
    assert SchedulerConfig().probes_in_flight == 200


def test_jitter_stays_within_ten_percent() -> None:
    jitter = random_jitter(0.1)
    values = [jitter(600) for _ in range(2000)]
    assert all(-60 <= v <= 60 for v in values)
    assert min(values) < -50 and max(values) > 50  # spread, not constant


# --- the long-running loop -------------------------------------------------------------------


async def test_run_keeps_checking_until_stopped_and_releases_nothing_it_finished(
    graph: Graph, http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    ids = [await due(graph, http_server.url("/status/200"), interval=1) for _ in range(5)]
    stop = asyncio.Event()
    worker = scheduler(graph, loopback_context, config=FAST)
    task = asyncio.create_task(worker.run(stop))

    async def checked_repeatedly() -> bool:
        return len(await all_checks(graph)) >= 15  # each connection about three times

    await wait_until(checked_repeatedly)
    stop.set()
    await asyncio.wait_for(task, 10)
    for connection_id in ids:
        row = await graph.row(connection_id)
        assert (row.status, row.claimed_by) == (ConnectionStatus.CONNECTED, None)
    assert worker.checks_done == len(await all_checks(graph))


async def test_a_check_claimed_ahead_of_its_time_starts_at_its_time(
    graph: Graph, http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    due_at = datetime.now(UTC) + timedelta(seconds=2)
    connection_id = await due(graph, http_server.url("/status/200"), next_check_at=due_at)
    started: list[datetime] = []

    async def timed_probe(target: ProbeTarget, context: ProbeContext) -> ProbeResult:
        started.append(datetime.now(UTC))
        from probes import run_probe

        return await run_probe(target, context)

    stop = asyncio.Event()
    config = SchedulerConfig(
        idle_poll_seconds=0.05, flush_interval_seconds=0.05, claim_ahead_seconds=5
    )
    worker = scheduler(graph, loopback_context, config=config, probe=timed_probe)
    task = asyncio.create_task(worker.run(stop))

    async def claimed() -> bool:
        return (await graph.row(connection_id)).claimed_by is not None

    await wait_until(claimed)
    claimed_at = datetime.now(UTC)

    async def checked() -> bool:
        return (await graph.row(connection_id)).last_checked_at is not None

    await wait_until(checked)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert claimed_at < due_at  # claimed early...
    assert len(started) == 1 and started[0] >= due_at  # ...and probed no earlier than due
    row = await graph.row(connection_id)
    assert row.last_checked_at is not None and row.last_checked_at >= started[0]
    # The cadence of the due time: 60 s on from it, not from when it was claimed.
    assert row.next_check_at == due_at + timedelta(seconds=60)


async def test_a_database_error_is_logged_and_the_results_written_when_it_clears(
    graph: Graph,
    http_server: HttpServer,
    loopback_context: ProbeContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = [await due(graph, http_server.url("/status/200")) for _ in range(3)]
    # A real failure: the history table is gone while the scheduler runs.
    async with graph.db.sessions.begin() as session:
        await session.execute(text("ALTER TABLE checks RENAME TO checks_away"))
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler(graph, loopback_context, config=FAST).run(stop))

    async def failing() -> bool:
        return "cannot write 3 results" in caplog.text

    await wait_until(failing)
    assert not task.done()
    async with graph.db.sessions.begin() as session:
        await session.execute(text("ALTER TABLE checks_away RENAME TO checks"))

    async def written() -> bool:
        return len(await all_checks(graph)) == 3

    await wait_until(written)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert sorted(c.connection_id for c in await all_checks(graph)) == ids
    for connection_id in ids:
        assert (await graph.row(connection_id)).status == ConnectionStatus.CONNECTED


SLOW_HISTORY_TRIGGERS = {
    # About a second of work inside the writer's transaction, on each backend.
    "sqlite": [
        "CREATE TRIGGER slow_history AFTER INSERT ON checks BEGIN SELECT count(*) FROM ("
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4000000) "
        "SELECT n FROM r); END"
    ],
    "postgresql": [
        "CREATE FUNCTION slow_history() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$",
        "CREATE TRIGGER slow_history AFTER INSERT ON checks "
        "FOR EACH STATEMENT EXECUTE FUNCTION slow_history()",
    ],
}


async def test_a_write_under_way_when_the_scheduler_stops_finishes_first(
    graph: Graph,
    http_server: HttpServer,
    loopback_context: ProbeContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Cancelled inside its transaction, the writer left SQLite's write lock held, and the last
    # flush failed with "database is locked" after busy_timeout: its results were lost.
    connection_id = await due(graph, http_server.url("/status/200"))
    async with graph.db.sessions.begin() as session:
        for statement in SLOW_HISTORY_TRIGGERS[graph.db.engine.dialect.name]:
            await session.execute(text(statement))
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler(graph, loopback_context, config=FAST).run(stop))

    async def probed() -> bool:
        return len(http_server.seen) == 1

    await wait_until(probed)
    await asyncio.sleep(0.3)  # the result is being written (flushed every 0.05 s)
    stop.set()
    await asyncio.wait_for(task, 20)
    assert "cannot write" not in caplog.text
    assert [c.connection_id for c in await all_checks(graph)] == [connection_id]
    row = await graph.row(connection_id)
    assert (row.status, row.claimed_by, row.lease_expires_at) == (
        ConnectionStatus.CONNECTED,
        None,
        None,
    )


async def test_stopping_gives_back_the_claims_of_probes_still_running(
    graph: Graph, loopback_context: ProbeContext, silent_port: int
) -> None:
    connection_id = await due(
        graph, f"http://127.0.0.1:{silent_port}/", heartbeat={"timeout_seconds": 30}
    )
    stop = asyncio.Event()
    config = SchedulerConfig(idle_poll_seconds=0.05, shutdown_grace_seconds=0.2)
    task = asyncio.create_task(scheduler(graph, loopback_context, config=config).run(stop))

    async def claimed() -> bool:
        return (await graph.row(connection_id)).claimed_by is not None

    await wait_until(claimed)
    stop.set()
    await asyncio.wait_for(task, 10)
    row = await graph.row(connection_id)
    assert (row.claimed_by, row.lease_expires_at, row.last_checked_at) == (None, None, None)
    async with graph.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CheckRow)) == 0


async def test_an_outcome_is_a_check_outcome() -> None:
    with pytest.raises(ValueError, match="failure_reason"):
        CheckOutcome(success=False, checked_at=datetime.now(UTC))
    with pytest.raises(ValueError, match="aware"):
        CheckOutcome(success=True, checked_at=datetime(2026, 1, 1))


async def test_a_probe_whose_lease_ran_out_while_it_waited_is_not_run(
    graph: Graph, http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    first = await due(graph, http_server.url("/status/200"))
    second = await due(graph, http_server.url("/status/200"))
    now = [datetime.now(UTC)]

    async def slow_probe(target: ProbeTarget, context: ProbeContext) -> ProbeResult:
        now[0] += timedelta(seconds=61)  # the first probe outlasts the 60 s lease
        from probes import run_probe

        return await run_probe(target, context)

    config = SchedulerConfig(per_host_concurrency=1)
    worker = scheduler(
        graph, loopback_context, config=config, probe=slow_probe, clock=lambda: now[0]
    )
    assert await worker.run_once() == 1
    assert (await graph.row(first)).status == ConnectionStatus.CONNECTED
    row = await graph.row(second)
    # Left claimed: it is due again for any worker once the lease has run out.
    assert (row.status, row.claimed_by) == (ConnectionStatus.UNKNOWN, "test:1")
    assert len(http_server.seen) == 1


async def test_run_once_also_counts_missed_inbound_heartbeats(
    graph: Graph, loopback_context: ProbeContext
) -> None:
    inbound = await graph.connection(
        direction=Direction.INBOUND, next_check_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert await scheduler(graph, loopback_context).run_once() == 0  # no probe ran
    row = await graph.row(inbound)
    assert (row.status, row.failure_reason) == (
        ConnectionStatus.CONNECTION_FAILURE,
        FailureReason.MISSED_HEARTBEAT,
    )


async def test_prune_applies_the_configured_retention(
    graph: Graph, loopback_context: ProbeContext
) -> None:
    connection_id = await graph.connection()
    now = datetime.now(UTC)
    async with graph.db.sessions.begin() as session:
        await session.execute(
            CheckRow.__table__.insert(),
            [
                {
                    "connection_id": connection_id,
                    "checked_at": now - timedelta(days=d),
                    "success": True,
                }
                for d in (1, 8, 9, 10)
            ],
        )
    config = SchedulerConfig(retention=timedelta(days=7), keep_latest=2)
    assert await scheduler(graph, loopback_context, config=config).prune() == 2
    kept = sorted(c.checked_at for c in await all_checks(graph))
    assert kept == [now - timedelta(days=8), now - timedelta(days=1)]
