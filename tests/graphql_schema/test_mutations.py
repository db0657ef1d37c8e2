"""Mutations through a real client: validation names the field, nothing is half-written,
scopes and tenants hold, secrets never come back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError
from sqlalchemy import select

from graphql_schema.ids import from_global_id
from graphql_schema.links import LinkSigner
from store.domain import TokenScope
from store.models import ConnectionRow
from tests.demo_server import Server
from tests.graphql_schema.test_access import EVERYTHING
from tests.store.steps_check import completed_steps

CREATE_CONSUMER = """
mutation($input: CreateConsumerInput!) { createConsumer(input: $input) { id externalId name email active issues { code } } }
"""
CREATE_CONNECTOR = """
mutation($input: CreateConnectorInput!) { createConnector(input: $input) { id slug name category } }
"""
CREATE_CONNECTION = """
mutation($input: CreateConnectionInput!) {
  createConnection(input: $input) {
    id name direction state status checkIntervalSeconds heartbeat { url hasCredentials }
  }
}
"""


async def errors_of(
    server: Server, token: str, document: str, variables: dict[str, Any]
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    body = response.json()
    assert body.get("data") is None or all(v is None for v in body["data"].values())
    return [
        {"message": e["message"], **({"extensions": e["extensions"]} if "extensions" in e else {})}
        for e in body["errors"]
    ]


async def snapshot(server: Server, token: str) -> dict[str, Any]:
    return await server.execute(token, EVERYTHING)


@pytest.fixture
async def writer(demo: Server) -> str:
    return await demo.token(TokenScope.WRITE)


async def _ids(demo: Server, token: str) -> dict[str, str]:
    data = await demo.execute(
        token,
        """{ consumers(search: "acme-corp") { nodes { id connections(first: 5) { nodes { id direction uses(first: 5) { nodes { id } } } } } }
           connectors(search: "xero") { nodes { id } } }""",
    )
    acme = data["consumers"]["nodes"][0]
    outbound = next(c for c in acme["connections"]["nodes"] if c["direction"] == "OUTBOUND")
    with_use = next(c for c in acme["connections"]["nodes"] if c["uses"]["nodes"])
    return {
        "acme": acme["id"],
        "outbound": outbound["id"],
        "use": with_use["uses"]["nodes"][0]["id"],
        "xero": data["connectors"]["nodes"][0]["id"],
    }


async def test_create_update_delete_consumer(demo: Server, writer: str) -> None:
    created = await demo.execute(
        writer,
        CREATE_CONSUMER,
        {"input": {"externalId": "initrode", "name": "Initrode", "email": "it@initrode.example"}},
    )
    consumer = created["createConsumer"]
    assert consumer == {
        "id": consumer["id"],
        "externalId": "initrode",
        "name": "Initrode",
        "email": "it@initrode.example",
        "active": False,
        "issues": [{"code": "NOTHING"}],
    }
    updated = await demo.execute(
        writer,
        'mutation($id: ID!) { updateConsumer(id: $id, input: {name: "Initrode Inc", email: null}) { name email } }',
        {"id": consumer["id"]},
    )
    assert updated == {"updateConsumer": {"name": "Initrode Inc", "email": None}}
    deleted = await demo.execute(
        writer, "mutation($id: ID!) { deleteConsumer(id: $id) }", {"id": consumer["id"]}
    )
    assert deleted == {"deleteConsumer": consumer["id"]}
    assert await demo.execute(
        writer, "query($id: ID!) { node(id: $id) { id } }", {"id": consumer["id"]}
    ) == {"node": None}


@pytest.mark.parametrize(
    ("document", "variables", "expected"),
    [
        (
            CREATE_CONSUMER,
            {"input": {"externalId": "acme-corp", "name": "Again"}},
            {
                "message": "externalId: 'acme-corp' is already used by another consumer",
                "extensions": {"code": "BAD_USER_INPUT", "field": "externalId"},
            },
        ),
        (
            CREATE_CONNECTOR,
            {
                "input": {
                    "slug": "ftp",
                    "name": "FTP",
                    "category": "files",
                    "heartbeat": {"url": "ftp://files.example.com"},
                }
            },
            {
                "message": "heartbeat.url: 'ftp://files.example.com' is not a valid URL; the scheme must be http or https",
                "extensions": {"code": "BAD_USER_INPUT", "field": "heartbeat.url"},
            },
        ),
        (
            CREATE_CONNECTOR,
            {
                "input": {
                    "slug": "internal",
                    "name": "Internal",
                    "category": "x",
                    "heartbeat": {"url": "http://10.0.0.1/health"},
                }
            },
            {
                "message": "heartbeat.url: refused 10.0.0.1 (a private address); if it is a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS",
                "extensions": {"code": "BAD_USER_INPUT", "field": "heartbeat.url"},
            },
        ),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    demo: Server, writer: str, document: str, variables: dict[str, Any], expected: dict[str, Any]
) -> None:
    before = await snapshot(demo, writer)
    assert await errors_of(demo, writer, document, variables) == [expected]
    assert await snapshot(demo, writer) == before


async def test_connection_validation_and_unknown_ids(demo: Server, writer: str) -> None:
    ids = await _ids(demo, writer)
    before = await snapshot(demo, writer)
    base = {"consumerId": ids["acme"], "connectorId": ids["xero"], "name": "Second Xero"}
    assert await errors_of(
        demo, writer, CREATE_CONNECTION, {"input": {**base, "checkIntervalSeconds": 0}}
    ) == [
        {
            "message": "checkIntervalSeconds: 0 is out of range; use 1..86400",
            "extensions": {"code": "BAD_USER_INPUT", "field": "checkIntervalSeconds"},
        }
    ]
    missing = "Q29uc3VtZXI6OTk5OTk"  # Consumer:99999
    assert await errors_of(
        demo, writer, CREATE_CONNECTION, {"input": {**base, "consumerId": missing}}
    ) == [{"message": f"Consumer '{missing}' does not exist"}]
    assert await errors_of(
        demo, writer, CREATE_CONNECTION, {"input": {**base, "connectorId": ids["acme"]}}
    ) == [{"message": f"id '{ids['acme']}' is not a Connector id"}]
    assert await snapshot(demo, writer) == before

    created = await demo.execute(
        writer, CREATE_CONNECTION, {"input": {**base, "checkIntervalSeconds": 60}}
    )
    assert created["createConnection"] | {"id": None} == {
        "id": None,
        "name": "Second Xero",
        "direction": "OUTBOUND",
        "state": "ACTIVE",
        "status": "UNKNOWN",
        "checkIntervalSeconds": 60,
        "heartbeat": {"url": f"{demo.base_url}/demo/healthy/acme-corp", "hasCredentials": False},
    }


async def test_read_tokens_cannot_write_and_tenants_cannot_touch_others(demo: Server) -> None:
    admin = await demo.token(TokenScope.ADMIN)
    ids = await _ids(demo, admin)
    reader = await demo.token(TokenScope.READ)
    assert await errors_of(
        demo, reader, CREATE_CONSUMER, {"input": {"externalId": "x", "name": "X"}}
    ) == [{"message": "this token cannot do that; it needs the write scope"}]
    globex_writer = await demo.token(TokenScope.WRITE, consumer="globex")
    before = await snapshot(demo, admin)
    for document, variables in (
        ("mutation($id: ID!) { deleteConsumer(id: $id) }", {"id": ids["acme"]}),
        ("mutation($id: ID!) { deleteConnection(id: $id) }", {"id": ids["outbound"]}),
        (
            'mutation($id: ID!) { reportUseRun(useId: $id, success: false, error: "x") { id } }',
            {"id": ids["use"]},
        ),
    ):
        errors = await errors_of(demo, globex_writer, document, variables)
        assert len(errors) == 1
        assert errors[0]["message"].endswith("does not exist")
    assert await errors_of(
        demo, globex_writer, CREATE_CONSUMER, {"input": {"externalId": "y", "name": "Y"}}
    ) == [{"message": "a token limited to one consumer cannot create consumers"}]
    assert await snapshot(demo, admin) == before


LIST_HAS_CREDENTIALS = """
{
  connections(first: 500) { nodes { id heartbeat { hasCredentials } } }
  consumers(first: 500) {
    nodes { connections(first: 500) { nodes { id heartbeat { hasCredentials } } } }
  }
}"""


def _with_credentials(connections: list[dict[str, Any]]) -> list[str]:
    return [
        connection["id"]
        for connection in connections
        if connection["heartbeat"] is not None and connection["heartbeat"]["hasCredentials"]
    ]


async def test_credentials_are_write_only(demo: Server, writer: str) -> None:
    ids = await _ids(demo, writer)
    # The demo's OAuth2 connections have credentials from the start.
    oauth2 = _with_credentials(
        (await demo.execute(writer, LIST_HAS_CREDENTIALS))["connections"]["nodes"]
    )
    assert len(oauth2) == 4 and ids["outbound"] not in oauth2
    canary = "canary-9c1f-credential"
    document = """
      mutation($id: ID!, $credentials: CredentialsInput) {
        setConnectionCredentials(id: $id, credentials: $credentials) { id heartbeat { hasCredentials } }
      }"""
    result = await demo.execute(
        writer,
        document,
        {"id": ids["outbound"], "credentials": {"kind": "BEARER", "token": canary}},
    )
    assert result["setConnectionCredentials"]["heartbeat"] == {"hasCredentials": True}
    assert canary not in str(result)
    # Pages read whether a connection has credentials from a column of their own statement.
    listed = await demo.execute(writer, LIST_HAS_CREDENTIALS)
    nested = [
        connection
        for consumer in listed["consumers"]["nodes"]
        for connection in consumer["connections"]["nodes"]
    ]
    expected = sorted([*oauth2, ids["outbound"]])
    assert sorted(_with_credentials(listed["connections"]["nodes"])) == expected
    assert sorted(_with_credentials(nested)) == expected
    assert len(nested) == len(listed["connections"]["nodes"]) > 1
    assert canary not in str(await snapshot(demo, writer))
    async with demo.database.sessions() as session:
        stored = list(await session.scalars(select(ConnectionRow.credentials_ciphertext)))
    assert any(stored)
    assert all(canary.encode() not in (value or b"") for value in stored)

    bad = await errors_of(
        demo,
        writer,
        document,
        {
            "id": ids["outbound"],
            "credentials": {"kind": "BASIC", "username": "u:x", "password": canary},
        },
    )
    assert canary not in str(bad)
    assert bad[0]["extensions"]["field"].startswith("credentials")

    cleared = await demo.execute(writer, document, {"id": ids["outbound"], "credentials": None})
    assert cleared["setConnectionCredentials"]["heartbeat"] == {"hasCredentials": False}
    assert sorted(
        _with_credentials(
            (await demo.execute(writer, LIST_HAS_CREDENTIALS))["connections"]["nodes"]
        )
    ) == sorted(oauth2)


async def test_use_runs_inbound_heartbeats_and_activation_steps(demo: Server, writer: str) -> None:
    ids = await _ids(demo, writer)
    reported = await demo.execute(
        writer,
        """mutation($id: ID!) { reportUseRun(useId: $id, success: false, error: "resource 42 not found") {
             status lastError connection { instanceHealth { failed } } } }""",
        {"id": ids["use"]},
    )
    assert reported["reportUseRun"]["status"] == "FAILED"
    assert reported["reportUseRun"]["lastError"] == "resource 42 not found"
    assert reported["reportUseRun"]["connection"]["instanceHealth"]["failed"] == 1

    inbound = await demo.execute(
        writer,
        "{ connections(filter: {direction: [INBOUND], state: [ACTIVE]}, first: 1) { nodes { id } } }",
    )
    inbound_id = inbound["connections"]["nodes"][0]["id"]
    beat = await demo.execute(
        writer,
        "mutation($id: ID!) { recordInboundHeartbeat(connectionId: $id) { status lastCheckedAt consecutiveFailures } }",
        {"id": inbound_id},
    )
    assert beat["recordInboundHeartbeat"]["status"] == "CONNECTED"
    assert beat["recordInboundHeartbeat"]["consecutiveFailures"] == 0
    assert (
        await errors_of(
            demo,
            writer,
            "mutation($id: ID!) { recordInboundHeartbeat(connectionId: $id) { id } }",
            {"id": ids["outbound"]},
        )
    )[0]["message"].endswith("is outbound; it is probed, not pushed to")

    stuck = await demo.execute(
        writer,
        "{ syncActivations(filter: {issue: [MAPPING_INCOMPLETE]}, first: 1) { nodes { id } } }",
    )
    activation_id = stuck["syncActivations"]["nodes"][0]["id"]
    advanced = await demo.execute(
        writer,
        """mutation($id: ID!) { updateSyncActivation(id: $id, steps: [
             {step: MAPPING, complete: true}, {step: CONFIGURATION, complete: false, detail: "waiting for a ledger"}
           ]) { steps { step complete detail } issue { code } } }""",
        {"id": activation_id},
    )
    assert advanced["updateSyncActivation"] == {
        "steps": [
            {"step": "CONNECTION", "complete": True, "detail": None},
            {"step": "MAPPING", "complete": True, "detail": None},
            {"step": "CONFIGURATION", "complete": False, "detail": "waiting for a ledger"},
        ],
        "issue": {"code": "CONFIGURATION_INCOMPLETE"},
    }
    _, row_id = from_global_id(activation_id)
    assert (await completed_steps(demo.database))[row_id] == 0b011  # connection and mapping


async def test_consumer_link_opens_the_consumer_page(demo: Server, writer: str) -> None:
    ids = await _ids(demo, writer)
    link = await demo.execute(
        writer,
        "mutation($id: ID!) { consumerLink(consumerId: $id, expiresInSeconds: 600) { url expiresAt } }",
        {"id": ids["acme"]},
    )
    url = link["consumerLink"]["url"]
    assert url.startswith(f"{demo.base_url}/consumers/acme-corp?expires=")
    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        tampered = await client.get(url.replace("acme-corp", "globex"))
        unsigned = await client.get(f"{demo.base_url}/consumers/acme-corp")
    assert page.status_code == 200
    assert "<h1>Acme Corp</h1>" in page.text
    assert "Acme Corp QuickBooks Online" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert (tampered.status_code, unsigned.status_code) == (403, 403)
    with pytest.raises(TransportQueryError, match="expiresInSeconds: 5 is out of range"):
        await demo.execute(
            writer,
            "mutation($id: ID!) { consumerLink(consumerId: $id, expiresInSeconds: 5) { url } }",
            {"id": ids["acme"]},
        )


def test_link_signatures_expire_and_bind_the_consumer() -> None:
    signer = LinkSigner(b"k" * 32)
    now = datetime(2026, 11, 22, tzinfo=UTC)
    path = signer.path("acme", now + timedelta(minutes=5))
    expires = path.split("expires=")[1].split("&")[0]
    signature = path.split("signature=")[1]
    assert signer.verify("acme", expires, signature, now)
    assert not signer.verify("acme", expires, signature, now + timedelta(minutes=6))
    assert not signer.verify("globex", expires, signature, now)
    assert not LinkSigner(b"x" * 32).verify("acme", expires, signature, now)
    assert not signer.verify("acme", "soon", signature, now)
