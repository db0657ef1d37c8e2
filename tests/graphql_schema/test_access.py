"""Tokens, scopes and tenant isolation: a consumer-scoped token sees its consumer, nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError

from healthgraph.app import create_app
from healthgraph.settings import Settings
from store.crypto import generate_key
from store.domain import TokenScope
from store.engine import create_engine
from store.migrate import upgrade_database
from store.tokens import create_token, revoke_token
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.demo_server import Server, view
from tests.servers import running

EVERYTHING = """
query Everything {
  overview {
    consumers activeConsumers activeConnections pendingConnections failedConnections
    connectors { connector { slug } activeConnections pendingConnections failedConnections }
    categories {
      category connectors activeConnections pendingConnections failedConnections activeConsumers
    }
    syncs { sync { name } activations activeActivations stepFunnel { step complete incomplete } }
  }
  consumers(first: 500) {
    totalCount
    nodes {
      id externalId issues { code }
      connections(first: 500) { totalCount nodes { id name consumer { externalId } uses(first: 50) { nodes { id } } } }
      syncActivations(first: 500) { totalCount nodes { id consumer { externalId } } }
    }
  }
  connectors(first: 500) {
    totalCount
    nodes { slug connections(first: 500) { totalCount nodes { id consumer { externalId } } } }
  }
  connections(first: 500) {
    totalCount
    nodes { id consumer { externalId } uses(first: 50) { nodes { id connection { consumer { externalId } } } } }
  }
  syncs(first: 500) {
    nodes { name activations(first: 500) { totalCount nodes { id consumer { externalId } } } }
  }
  syncActivations(first: 500) { totalCount nodes { id consumer { externalId } } }
}
"""


def external_ids(value: Any) -> set[str]:
    """Every consumer external id anywhere in a response."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "externalId":
                found.add(item)
            else:
                found |= external_ids(item)
    elif isinstance(value, list):
        for item in value:
            found |= external_ids(item)
    return found


async def test_consumer_scoped_token_sees_only_its_consumer_everywhere(demo: Server) -> None:
    admin = await demo.token(TokenScope.ADMIN)
    everyone = await demo.execute(admin, EVERYTHING)
    assert len(external_ids(everyone)) > 10  # the walk does reach every consumer

    target = "acme-corp"
    scoped = await demo.token(TokenScope.READ, consumer=target)
    mine = await demo.execute(scoped, EVERYTHING)

    assert external_ids(mine) == {target}
    assert mine["consumers"]["totalCount"] == 1
    acme = next(n for n in everyone["consumers"]["nodes"] if n["externalId"] == target)
    acme_connection_ids = {c["id"] for c in acme["connections"]["nodes"]}
    assert {c["id"] for c in mine["connections"]["nodes"]} == acme_connection_ids
    assert mine["connections"]["totalCount"] == len(acme_connection_ids)
    assert mine["overview"]["consumers"] == 1
    assert mine["overview"]["activeConnections"] + mine["overview"]["pendingConnections"] + mine[
        "overview"
    ]["failedConnections"] <= len(acme_connection_ids)
    # Connectors: only those the tenant is connected to, and only its own connections under them.
    assert {c["slug"] for c in mine["connectors"]["nodes"]} == {
        n["connector"]["slug"]
        for n in (
            await demo.execute(
                admin,
                "{ connections(first: 500) { nodes { consumer { externalId } connector { slug } } } }",
            )
        )["connections"]["nodes"]
        if n["consumer"]["externalId"] == target
    }
    assert (
        sum(s["activations"] for s in mine["overview"]["syncs"])
        == mine["syncActivations"]["totalCount"]
    )
    # Per Unified API too: Acme's ACTIVE QuickBooks (by API key and by OAuth2) and Stripe
    # connections, and no one else's; Acme counts once among accounting's active consumers.
    assert mine["overview"]["categories"] == [
        {
            "category": category,
            "connectors": connectors,
            "activeConnections": active,
            "pendingConnections": 0,
            "failedConnections": 0,
            "activeConsumers": consumers,
        }
        for category, connectors, active, consumers in [
            ("accounting", 4, 2, 1),
            ("crm", 1, 0, 0),
            ("invoicing", 2, 1, 1),
            ("storage", 1, 0, 0),
            ("ticketing", 1, 0, 0),
        ]
    ]
    assert sum(c["activeConsumers"] for c in everyone["overview"]["categories"]) > 2


async def test_node_hides_other_consumers_objects(demo: Server) -> None:
    admin = await demo.token(TokenScope.ADMIN)
    everyone = await demo.execute(admin, EVERYTHING)
    scoped = await demo.token(TokenScope.READ, consumer="acme-corp")
    other = next(n for n in everyone["consumers"]["nodes"] if n["externalId"] == "globex")
    own = next(n for n in everyone["consumers"]["nodes"] if n["externalId"] == "acme-corp")
    foreign_ids = [other["id"], other["connections"]["nodes"][0]["id"]]
    foreign_ids += [u["id"] for c in other["connections"]["nodes"] for u in c["uses"]["nodes"]][:1]
    foreign_ids += [a["id"] for a in other["syncActivations"]["nodes"]][:1]
    node = "query($id: ID!) { node(id: $id) { id } }"
    for foreign in foreign_ids:
        assert await demo.execute(scoped, node, {"id": foreign}) == {"node": None}
        assert await demo.execute(admin, node, {"id": foreign}) == {"node": {"id": foreign}}
    assert await demo.execute(scoped, node, {"id": own["id"]}) == {"node": {"id": own["id"]}}


async def test_expired_revoked_and_malformed_tokens_are_refused(
    demo: Server, tmp_path: Path
) -> None:
    async with demo.database.sessions.begin() as session:
        expired, _ = await create_token(
            session, scope=TokenScope.ADMIN, expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        revoked, grant = await create_token(session, scope=TokenScope.ADMIN)
        await revoke_token(session, grant.token_id)
    async with httpx.AsyncClient(base_url=demo.base_url) as client:
        for header in (
            f"Bearer {expired}",
            f"Bearer {revoked}",
            "Bearer hg_nope",
            "Basic abc",
            "Bearer",
        ):
            response = await client.post(
                "/graphql",
                json={"query": "{ overview { consumers } }"},
                headers={"Authorization": header},
            )
            assert response.status_code == 401, header
            assert response.json() == {
                "errors": [
                    {"message": "authentication required: send Authorization: Bearer <token>"}
                ]
            }
            assert response.headers["www-authenticate"] == 'Bearer realm="healthgraph"'


async def test_anonymous_requests_need_a_token_unless_allowed(database_url: str) -> None:
    query = {"query": "{ overview { consumers } }"}
    async with (
        running(create_app(Settings(database_url=database_url))) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        refused = await client.post("/graphql", json=query)
        graphiql = await client.get("/graphql", headers={"Accept": "text/html"})
    assert refused.status_code == 401
    assert graphiql.status_code == 200
    assert "graphiql" in graphiql.text.lower()

    settings = Settings(database_url=database_url, anonymous_read=True, graphiql=False)
    async with running(create_app(settings)) as base, httpx.AsyncClient(base_url=base) as client:
        allowed = await client.post("/graphql", json=query)
        no_ide = await client.get("/graphql", headers={"Accept": "text/html"})
    assert (allowed.status_code, allowed.json()) == (200, {"data": {"overview": {"consumers": 0}}})
    assert no_ide.status_code != 200 or "graphiql" not in no_ide.text.lower()


async def test_seed_views_run_with_a_scoped_token(demo: Server) -> None:
    scoped = await demo.token(TokenScope.READ, consumer="acme-corp")
    result = await demo.execute(scoped, view("consumers_by_syncs"))
    assert external_ids(result) <= {"acme-corp"}
    outbound = await demo.execute(scoped, view("connected_accounts"), {"direction": "OUTBOUND"})
    assert external_ids(outbound) == {"acme-corp"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ consumers(first: 501) { totalCount } }", "first: 501 is out of range; use 0..500"),
        (
            '{ consumers(after: "garbage") { totalCount } }',
            "cursor 'garbage' is not valid; pass a cursor returned by this API",
        ),
        ('{ node(id: "not-an-id") { id } }', "id 'not-an-id' is not an id returned by this API"),
        (
            '{ consumers(filter: {connectorIds: ["Q29uc3VtZXI6MQ"]}) { totalCount } }',
            "id 'Q29uc3VtZXI6MQ' is not a Connector id",
        ),
        (
            "{ consumers { nodes { nope } } }",
            "Cannot query field 'nope' on type 'Consumer'. Did you mean 'name'?",
        ),
    ],
)
async def test_bad_arguments_get_a_clear_error(
    demo: Server, reader: str, query: str, message: str
) -> None:
    async with httpx.AsyncClient(base_url=demo.base_url) as client:
        response = await client.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {reader}"}
        )
    errors = response.json()["errors"]
    assert [e["message"] for e in errors] == [message]
    assert "Traceback" not in json.dumps(response.json())


async def test_depth_alias_and_token_limits(demo: Server, reader: str) -> None:
    deep = "{ connections { nodes { consumer { connections { nodes { consumer { connections { nodes { consumer { connections { nodes { consumer { name } } } } } } } } } } } } }"
    aliases = "{ " + " ".join(f"a{i}: overview {{ consumers }}" for i in range(31)) + " }"
    tokens = "{ overview { " + " ".join(["consumers"] * 2100) + " } }"
    for query, fragment in (
        (deep, "exceeds maximum operation depth of 10"),
        (aliases, "31 aliases found. Allowed: 30"),
        (tokens, "Document contains more than 2000 tokens. Parsing aborted."),
    ):
        with pytest.raises(TransportQueryError) as caught:
            await demo.execute(reader, query)
        assert fragment in str(caught.value)


async def test_internal_errors_are_masked() -> None:
    """The database vanishing mid-service: clients get "Unexpected error.", never SQL or a trace."""
    url = await create_postgres_database()
    dropped = False
    try:
        engine = create_engine(url)
        await upgrade_database(engine)
        await engine.dispose()
        settings = Settings(database_url=url, anonymous_read=True, secret_keys=(generate_key(),))
        async with (
            running(create_app(settings)) as base,
            httpx.AsyncClient(base_url=base) as client,
        ):
            ok = await client.post("/graphql", json={"query": "{ consumers { totalCount } }"})
            await drop_postgres_database(url)
            dropped = True
            broken = await client.post("/graphql", json={"query": "{ consumers { totalCount } }"})
    finally:
        if not dropped:
            await drop_postgres_database(url)
    assert ok.json() == {"data": {"consumers": {"totalCount": 0}}}
    body = broken.json()
    assert [e["message"] for e in body["errors"]] == ["Unexpected error."]
    text = json.dumps(body).lower()
    for leak in ("select", "sqlalchemy", "asyncpg", "traceback", "hg_test_"):
        assert leak not in text
