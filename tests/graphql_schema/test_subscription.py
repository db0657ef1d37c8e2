"""connectionStatusChanged over graphql-transport-ws with a real `gql` websocket client."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from healthgraph.app import create_app
from healthgraph.settings import Settings
from store.crypto import generate_key
from store.domain import TokenScope
from store.engine import create_engine
from store.migrate import upgrade_database
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.demo_server import Server
from tests.servers import free_port, running

SUBSCRIPTION = """
subscription($filter: ConnectionFilterInput) {
  connectionStatusChanged(filter: $filter) { id name status direction consumer { externalId } }
}
"""


async def _first_events(
    server: Server, token: str, variables: dict[str, Any], trigger: Any, count: int = 1
) -> list[dict[str, Any]]:
    transport = WebsocketsTransport(
        url=server.base_url.replace("http", "ws") + "/graphql",
        headers={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    events: list[dict[str, Any]] = []
    async with Client(transport=transport) as session:

        async def collect() -> None:
            async for event in session.subscribe(
                GraphQLRequest(SUBSCRIPTION, variable_values=variables)
            ):
                events.append(event["connectionStatusChanged"])
                if len(events) == count:
                    return

        task = asyncio.create_task(collect())
        # The change must happen after the subscription is in place, or it is not seen.
        assert server.services is not None
        await asyncio.wait_for(server.services.broadcaster.wait_for_subscribers(1), timeout=10)
        await trigger()
        await asyncio.wait_for(task, timeout=10)
    return events


async def _inbound(server: Server, token: str, consumer: str | None = None) -> dict[str, Any]:
    data = await server.execute(
        token,
        "{ connections(filter: {direction: [INBOUND], state: [ACTIVE]}, first: 50) { nodes { id name consumer { externalId } } } }",
    )
    nodes = data["connections"]["nodes"]
    return next(n for n in nodes if consumer is None or n["consumer"]["externalId"] == consumer)


async def test_a_change_made_through_the_api_reaches_the_subscriber(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    inbound = await _inbound(demo, writer)

    async def beat() -> None:
        await demo.execute(
            writer,
            "mutation($id: ID!) { recordInboundHeartbeat(connectionId: $id) { id } }",
            {"id": inbound["id"]},
        )

    events = await _first_events(demo, writer, {"filter": {"direction": ["INBOUND"]}}, beat)
    assert events == [
        {
            "id": inbound["id"],
            "name": inbound["name"],
            "status": "CONNECTED",
            "direction": "INBOUND",
            "consumer": {"externalId": inbound["consumer"]["externalId"]},
        }
    ]


async def test_filters_and_tenants_decide_what_a_subscriber_sees(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    first = await _inbound(demo, writer)
    others = await demo.execute(
        writer,
        "{ connections(filter: {direction: [INBOUND], state: [ACTIVE]}, first: 50) { nodes { id consumer { externalId } } } }",
    )
    second = next(
        n
        for n in others["connections"]["nodes"]
        if n["consumer"]["externalId"] != first["consumer"]["externalId"]
    )
    tenant = await demo.token(TokenScope.READ, consumer=second["consumer"]["externalId"])

    async def beat_both() -> None:
        for connection in (first, second):
            await demo.execute(
                writer,
                "mutation($id: ID!) { recordInboundHeartbeat(connectionId: $id) { id } }",
                {"id": connection["id"]},
            )

    # The tenant's subscription sees only its own connection although both changed.
    events = await _first_events(demo, tenant, {}, beat_both)
    assert [e["id"] for e in events] == [second["id"]]


async def test_websocket_without_a_valid_token_is_refused(database_url: str) -> None:
    async with running(create_app(Settings(database_url=database_url))) as base:
        url = base.replace("http", "ws") + "/graphql"
        for headers in ({}, {"Authorization": "Bearer hg_wrong"}):
            with pytest.raises(websockets.InvalidStatus) as caught:
                async with websockets.connect(
                    url, subprotocols=["graphql-transport-ws"], additional_headers=headers
                ):
                    pass
            assert caught.value.response.status_code == 403


@pytest.fixture
async def postgres_demo() -> AsyncIterator[tuple[Server, str]]:
    """The demo on PostgreSQL only: cross-process fan-out is LISTEN/NOTIFY's job."""
    url = await create_postgres_database()
    engine = create_engine(url)
    await upgrade_database(engine)
    await engine.dispose()
    port = free_port()
    settings = Settings(database_url=url, port=port, secret_keys=(generate_key(),))
    app = create_app(settings, demo=True)
    try:
        async with running(app, port) as base:
            yield Server(base, app.state.database, app.state.services), url
    finally:
        await drop_postgres_database(url)


async def test_a_change_written_by_another_process_reaches_the_subscriber(
    postgres_demo: tuple[Server, str],
) -> None:
    demo, database_url = postgres_demo
    writer = await demo.token(TokenScope.WRITE)
    inbound = await _inbound(demo, writer)
    row_id = int(
        __import__("base64").urlsafe_b64decode(inbound["id"] + "==").decode().split(":")[1]
    )
    script = f"""
import asyncio
from datetime import UTC, datetime
from healthgraph.database import open_database
from store import commands
from store.events import PostgresBroadcaster

async def main():
    database = await open_database({database_url!r})
    async with database.sessions.begin() as session:
        await commands.record_inbound_heartbeat(session, {row_id}, at=datetime.now(UTC))
    broadcaster = PostgresBroadcaster({database_url!r}, listen=False)
    await broadcaster.start()
    await broadcaster.publish([{row_id}])
    await broadcaster.stop()
    await database.close()

asyncio.run(main())
"""

    async def other_process() -> None:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    events = await _first_events(demo, writer, {}, other_process)
    assert [(e["id"], e["status"]) for e in events] == [(inbound["id"], "CONNECTED")]
