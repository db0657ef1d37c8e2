"""`healthgraph serve` is API and scheduler in one: the demo turns green and red by itself."""

from __future__ import annotations

import asyncio
import time

from healthgraph.app import create_app
from healthgraph.settings import Settings
from store.crypto import generate_key
from store.domain import TokenScope
from tests.demo_server import Server
from tests.servers import free_port, running

STATUSES = (
    "{ overview { connectionsByStatus { connected connectionFailure unknown } failedConnections } }"
)


async def test_serve_checks_the_demo_by_itself(database_url: str) -> None:
    port = free_port()
    settings = Settings(database_url=database_url, port=port, secret_keys=(generate_key(),))
    app = create_app(settings, demo=True, scheduler=True)
    async with running(app, port) as base:
        server = Server(base, app.state.database)
        token = await server.token(TokenScope.READ)
        before = (await server.execute(token, STATUSES))["overview"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = (await server.execute(token, STATUSES))["overview"]
            counts = now["connectionsByStatus"]
            # Every outbound ACTIVE/FAILED connection is due at once; slow ones take 2 s.
            if (
                counts["connected"]
                and counts["connectionFailure"]
                and now["failedConnections"] > before["failedConnections"]
            ):
                break
            await asyncio.sleep(0.5)
        detail = await server.execute(
            token,
            "{ connections(filter: {status: [CONNECTION_FAILURE]}, first: 100) { nodes { failureReason } } }",
        )
        # The demo's remote sides: inbound connections call in, apps report use runs. They act
        # on their own clock, which the checks above may beat: wait for them too.
        while True:
            remote = await server.execute(
                token,
                """{ inbound: connections(filter: {direction: [INBOUND], status: [CONNECTED]}) { totalCount }
                     all: connections(first: 500) { nodes { instanceHealth { status } } } }""",
            )
            healths = {n["instanceHealth"]["status"] for n in remote["all"]["nodes"]}
            inbound = remote["inbound"]["totalCount"]
            if (inbound and healths >= {"HEALTHY", "DEGRADED"}) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    assert counts["connected"] > 0
    assert counts["connectionFailure"] > 0
    # The 401 target moved its connections to FAILED (authentication failed).
    assert now["failedConnections"] > before["failedConnections"]
    reasons = {n["failureReason"] for n in detail["connections"]["nodes"]}
    assert {"HTTP_STATUS", "AUTH"} <= reasons
    assert remote["inbound"]["totalCount"] > 0
    assert {n["instanceHealth"]["status"] for n in remote["all"]["nodes"]} >= {
        "HEALTHY",
        "DEGRADED",
    }
