"""PostgreSQL dies under a running `healthgraph api` + `healthgraph worker`, and comes back.

A private cluster (never the shared server) is stopped with `pg_ctl -m immediate` — as in a
crash — while the worker checks 20 connections every second, then started again.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from store.engine import create_engine
from store.migrate import upgrade_database
from tests.faults.conftest import (
    PrivateCluster,
    Service,
    Target,
    read_token,
    run_healthgraph,
    seed_connections,
)
from tests.waiting import wait_until

CONNECTIONS = 20
QUERY = "{ connections(first: 100) { totalCount nodes { name status lastCheckedAt } } }"


async def checks(cluster: PrivateCluster) -> set[tuple[int, datetime]]:
    """Every committed check as (connection, time), read on a connection of its own."""
    connection = await asyncpg.connect(cluster.url.replace("postgresql://", "postgres://"))
    try:
        rows = await connection.fetch("SELECT connection_id, checked_at FROM checks")
    finally:
        await connection.close()
    return {(row["connection_id"], row["checked_at"]) for row in rows}


async def graphql(client: httpx.AsyncClient, api: Service, token: str) -> httpx.Response:
    return await client.post(
        f"{api.base_url}/graphql",
        json={"query": QUERY},
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.mark.postgres
async def test_a_postgres_restart_is_survived_without_losing_a_written_check(
    private_postgres: PrivateCluster,
    target: Target,
    services: Callable[..., Awaitable[Service]],
) -> None:
    url = private_postgres.url
    upgrade = run_healthgraph(url, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    await seed_connections(url, [target.url(n) for n in range(CONNECTIONS)], interval_seconds=1)
    token = await read_token(url)

    api = await services(url, "api")
    worker = await services(url, "worker")
    await api.wait_ready()
    await worker.wait_ready()

    async def two_rounds() -> bool:
        return len(await checks(private_postgres)) >= 2 * CONNECTIONS

    await wait_until(two_rounds, 30, "two rounds of checks before the stop")

    async with httpx.AsyncClient(timeout=30) as client:
        before = await graphql(client, api, token)
        assert before.status_code == 200
        assert before.json()["data"]["connections"]["totalCount"] == CONNECTIONS
        written = await checks(private_postgres)
        private_postgres.stop("immediate")
        stopped_at = time.monotonic()

        # Not ready, said at once and plainly.
        ready = await client.get(f"{api.base_url}/readyz")
        assert (ready.status_code, ready.json()) == (
            503,
            {"status": "unavailable", "database": "unreachable"},
        )
        # A query while the database is away: a clear error, neither a hang nor internals.
        started = time.monotonic()
        down = await graphql(client, api, token)
        elapsed = time.monotonic() - started
        assert elapsed < 10  # an answer, not a hang on the dead connection
        assert (down.status_code, down.headers.get("retry-after"), down.text) == (
            503,
            "5",
            '{"errors":[{"message":"the database is unavailable; try again shortly"}]}',
        )

        await asyncio.sleep(3)  # the worker meets the outage: it must not exit
        assert worker.process.returncode is None, worker.log()
        assert api.process.returncode is None, api.log()
        private_postgres.start()
        restarted_at = time.monotonic()
        down_seconds = restarted_at - stopped_at

        async def ready_again() -> bool:
            return (await client.get(f"{api.base_url}/readyz")).status_code == 200

        await wait_until(ready_again, 15, "/readyz 200 after the restart", step=0.2)
        restarted = datetime.now(UTC)

        async def resumed() -> bool:
            fresh = {c for c, at in await checks(private_postgres) if at > restarted}
            return len(fresh) == CONNECTIONS

        # By itself: every connection is checked again, nobody restarted the worker.
        await wait_until(resumed, 30, "every connection checked again after the restart")
        again = await graphql(client, api, token)
        assert again.status_code == 200, again.text
        assert again.json()["data"]["connections"]["totalCount"] == CONNECTIONS

    assert await worker.stop() == 0
    found = re.search(r"stopped after (\d+) checks", worker.log())
    assert found, worker.log()
    final = await checks(private_postgres)
    # Every check committed before the crash survived it, and every check the worker counted
    # as written is in the table.
    assert written <= final
    assert len(final) == int(found.group(1))
    # The worker saw the outage, said so in one line each time (no stack trace), and carried on.
    assert "cannot claim due checks (ConnectionRefusedError" in worker.log()
    assert "Traceback" not in worker.log()
    assert down_seconds >= 3


@pytest.mark.postgres
async def test_a_query_while_postgres_is_down_says_the_database_is_unavailable(
    private_postgres: PrivateCluster, services: Callable[..., Awaitable[Service]]
) -> None:
    url = private_postgres.url
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    token = await read_token(url)
    api = await services(url, "api")
    await api.wait_ready()
    private_postgres.stop("immediate")
    async with httpx.AsyncClient(timeout=30) as client:
        down = await graphql(client, api, token)
    # What a GraphQL client can act on: a JSON error body, 503, and when to try again.
    json = down.headers.get("content-type") == "application/json"
    assert (
        down.status_code,
        down.headers.get("content-type"),
        down.json() if json else down.text,
    ) == (
        503,
        "application/json",
        {"errors": [{"message": "the database is unavailable; try again shortly"}]},
    )
    assert down.headers.get("retry-after") == "5"
