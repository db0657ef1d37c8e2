"""The other side of the demo: inbound connections calling in and apps reporting use runs.

Without it every inbound connection of the demo would miss its heartbeat and every use would
stay UNKNOWN. A few are left silent or failing on purpose, so the views show red too.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from healthgraph.database import Database
from healthgraph.demo.oauth import DemoOAuthProvider
from store import commands, queries
from store.domain import ConnectionState, Direction
from store.events import Broadcaster
from store.filters import ConnectionFilter, UseFilter
from store.pagination import MAX_PAGE_SIZE, PageRequest

PERIOD_SECONDS = 10.0
SILENT_EVERY = 4  # every 4th inbound connection never calls in: MISSED_HEARTBEAT
FAILING_EVERY = 6  # every 6th use fails: the connection is up, the use is not (seed 1)
USE_ERROR = "requested a resource that does not exist"
REVOKE_AFTER_ROUNDS = 3  # the revoked grant shows green first, then FAILED with AUTH


async def report_once(database: Database, broadcaster: Broadcaster) -> None:
    now = datetime.now(UTC)
    async with database.sessions.begin() as session:
        inbound = await queries.list_connections(
            session,
            ConnectionFilter(directions=(Direction.INBOUND,), states=(ConnectionState.ACTIVE,)),
            PageRequest(first=MAX_PAGE_SIZE),
        )
        calling = [c.id for c in inbound.items if c.id % SILENT_EVERY]
        for connection_id in calling:
            await commands.record_inbound_heartbeat(session, connection_id, at=now)
        uses = await queries.list_uses(session, UseFilter(), PageRequest(first=MAX_PAGE_SIZE))
        for use in uses.items:
            failing = use.id % FAILING_EVERY == 0
            await commands.report_use_run(
                session, use.id, success=not failing, error=USE_ERROR if failing else None, at=now
            )
    await broadcaster.publish(calling)


async def simulate(
    database: Database,
    broadcaster: Broadcaster,
    stop: asyncio.Event,
    provider: DemoOAuthProvider | None = None,
) -> None:
    """Report every PERIOD_SECONDS until `stop` is set; after REVOKE_AFTER_ROUNDS, the last
    consumer that connected through the demo's OAuth2 provider disconnects the app there."""
    rounds = 0
    while not stop.is_set():
        await report_once(database, broadcaster)
        rounds += 1
        if provider is not None and rounds == REVOKE_AFTER_ROUNDS and provider.seeds:
            provider.revoke(provider.seeds[-1])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PERIOD_SECONDS)
