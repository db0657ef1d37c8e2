"""Webhook endpoints, mutes and outages over GraphQL, with a real client against the demo: the
secret shown once, deliveries listed, a consumer's token kept to its own endpoints and events,
bad input named field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from store.dispatch import dispatch_events
from store.domain import CheckOutcome, ConnectionState, Direction, FailureReason, TokenScope
from store.models import ConnectionRow, ConnectorRow, ConsumerRow, WebhookEndpointRow
from store.outages import OutageRules
from store.scheduling import record_unclaimed_outcomes
from tests.demo_server import Server
from tests.graphql_schema.test_mutations import errors_of

ENDPOINT_FIELDS = (
    "id url events allEvents description enabled disabledReason failingSince lastDeliveredAt"
)
CREATE = f"""
mutation($input: CreateWebhookEndpointInput!) {{
  createWebhookEndpoint(input: $input) {{ secret endpoint {{ {ENDPOINT_FIELDS} }} }}
}}
"""
LIST = f"{{ webhookEndpoints {{ totalCount nodes {{ {ENDPOINT_FIELDS} }} }} }}"
DELIVERIES = """
query { webhookEndpoints { nodes { url deliveries(first: 10) { totalCount nodes {
  id eventId eventType state attempts lastResponseStatus nextAttemptAt } } } } }
"""


async def _create(demo: Server, token: str, **fields: Any) -> dict[str, Any]:
    made = await demo.execute(token, CREATE, {"input": {"url": "http://127.0.0.1:9/h", **fields}})
    result: dict[str, Any] = made["createWebhookEndpoint"]
    return result


async def test_an_endpoint_shows_its_secret_once_and_never_again(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    made = await _create(
        demo, writer, events=["CONNECTION_AUTH_FAILED", "CONNECTOR_OUTAGE_STARTED"], description="x"
    )
    secret = made["secret"]
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 44
    endpoint = made["endpoint"]
    assert {k: v for k, v in endpoint.items() if k != "id"} == {
        "url": "http://127.0.0.1:9/h",
        "events": ["CONNECTION_AUTH_FAILED", "CONNECTOR_OUTAGE_STARTED"],
        "allEvents": False,
        "description": "x",
        "enabled": True,
        "disabledReason": None,
        "failingSince": None,
        "lastDeliveredAt": None,
    }
    listed = await demo.execute(writer, LIST)
    assert listed["webhookEndpoints"] == {"totalCount": 1, "nodes": [endpoint]}
    rotated = await demo.execute(
        writer,
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { id } } }",
        {"id": endpoint["id"]},
    )
    new = rotated["rotateWebhookSecret"]["secret"]
    assert new.startswith("whsec_") and new != secret
    # Nowhere else: not in the listing, not in the stored row.
    introspected = await demo.execute(writer, LIST)
    assert secret not in str(introspected) and new not in str(introspected)
    async with demo.database.sessions() as session:
        row = await session.scalar(select(WebhookEndpointRow))
        assert row is not None
        assert secret.encode() not in row.secret_ciphertext
        assert row.previous_secret_ciphertext is not None


async def test_leaving_events_out_means_all_of_them(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    endpoint = (await _create(demo, writer))["endpoint"]
    assert endpoint["allEvents"] is True
    assert endpoint["events"] == [
        "CONNECTION_FAILED",
        "CONNECTION_RECOVERED",
        "CONNECTION_AUTH_FAILED",
        "USE_FAILED",
        "USE_RECOVERED",
        "CONNECTOR_OUTAGE_STARTED",
        "CONNECTOR_OUTAGE_ENDED",
    ]


async def test_bad_endpoints_are_refused_naming_the_field_and_change_nothing(
    demo: Server,
) -> None:
    writer = await demo.token(TokenScope.WRITE)
    cases = [
        ({"url": "ftp://example.com/x"}, "url: must be an http or https URL with a host"),
        (
            {"url": "http://169.254.169.254/latest/meta-data"},
            "url: refused 169.254.169.254 (the cloud metadata address (link-local)); if it is "
            "a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS",
        ),
        (
            {"url": "https://user:pw@example.com/x"},
            "url: must not carry a user or password; events are signed instead",
        ),
        ({"url": "https://example.com/x", "events": []}, None),
    ]
    for fields, message in cases:
        errors = await errors_of(demo, writer, CREATE, {"input": fields})
        if message is None:
            assert errors[0]["message"] == (
                "events: must name at least one event type; leave it out for all of them"
            )
        else:
            assert [e["message"] for e in errors] == [message], fields
    reader = await demo.token(TokenScope.READ)
    errors = await errors_of(demo, reader, CREATE, {"input": {"url": "https://example.com/x"}})
    assert errors[0]["message"] == "this token cannot do that; it needs the write scope"
    assert (await demo.execute(writer, LIST))["webhookEndpoints"]["totalCount"] == 0


async def test_a_consumers_token_manages_only_its_own_endpoints(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    tenant = await demo.token(TokenScope.WRITE, consumer="acme-corp")
    other = await demo.token(TokenScope.WRITE, consumer="globex")
    everyones = (await _create(demo, writer, description="all"))["endpoint"]
    acmes = (await _create(demo, tenant, description="acme"))["endpoint"]
    assert [
        n["description"] for n in (await demo.execute(tenant, LIST))["webhookEndpoints"]["nodes"]
    ] == ["acme"]
    assert (await demo.execute(other, LIST))["webhookEndpoints"] == {"totalCount": 0, "nodes": []}
    assert (await demo.execute(writer, LIST))["webhookEndpoints"]["totalCount"] == 2
    for endpoint in (everyones, acmes):
        errors = await errors_of(
            demo,
            other,
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }",
            {"id": endpoint["id"]},
        )
        assert errors[0]["message"] == f"WebhookEndpoint {endpoint['id']!r} does not exist"
    async with demo.database.sessions() as session:
        stored = {
            row.description: row.consumer_id
            for row in await session.scalars(select(WebhookEndpointRow))
        }
        acme = await session.scalar(
            select(ConsumerRow.id).where(ConsumerRow.external_id == "acme-corp")
        )
    assert stored == {"all": None, "acme": acme}


async def test_update_disable_and_enable_again(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    endpoint = (await _create(demo, writer))["endpoint"]
    update = f"""
    mutation($id: ID!, $input: UpdateWebhookEndpointInput!) {{
      updateWebhookEndpoint(id: $id, input: $input) {{ {ENDPOINT_FIELDS} }}
    }}"""
    changed = await demo.execute(
        writer,
        update,
        {"id": endpoint["id"], "input": {"events": ["USE_FAILED"], "enabled": False}},
    )
    assert changed["updateWebhookEndpoint"]["events"] == ["USE_FAILED"]
    assert changed["updateWebhookEndpoint"]["enabled"] is False
    again = await demo.execute(
        writer, update, {"id": endpoint["id"], "input": {"enabled": True, "events": None}}
    )
    assert again["updateWebhookEndpoint"]["allEvents"] is True
    assert again["updateWebhookEndpoint"]["enabled"] is True
    errors = await errors_of(demo, writer, update, {"id": endpoint["id"], "input": {"url": None}})
    assert errors[0]["message"] == "url: must not be null; leave it out to keep the URL"


async def _ids(demo: Server) -> tuple[dict[str, int], dict[str, int]]:
    async with demo.database.sessions() as session:
        connectors = dict((await session.execute(select(ConnectorRow.slug, ConnectorRow.id))).all())
        connections = dict(
            (await session.execute(select(ConnectionRow.name, ConnectionRow.id))).all()
        )
    return connectors, connections


async def test_deliveries_are_listed_newest_first_and_redelivered(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    await _create(demo, writer)
    _, connections = await _ids(demo)
    now = datetime.now(UTC)
    async with demo.database.sessions.begin() as session:
        await record_unclaimed_outcomes(
            session,
            outcomes=[
                (
                    connections["Acme Corp QuickBooks Online"],
                    CheckOutcome(False, now, failure_reason=FailureReason.AUTH, error="401"),
                )
            ],
            jitter=lambda _: 0.0,
        )
    async with demo.database.sessions.begin() as session:
        await dispatch_events(session, now=now, rules=OutageRules())
    listed = await demo.execute(writer, DELIVERIES)
    (endpoint,) = listed["webhookEndpoints"]["nodes"]
    (delivery,) = endpoint["deliveries"]["nodes"]
    assert endpoint["deliveries"]["totalCount"] == 1
    assert {k: v for k, v in delivery.items() if k not in ("id", "eventId", "nextAttemptAt")} == {
        "eventType": "CONNECTION_AUTH_FAILED",
        "state": "PENDING",
        "attempts": 0,
        "lastResponseStatus": None,
    }
    assert delivery["eventId"].startswith("evt_")
    redelivered = await demo.execute(
        writer,
        "mutation($id: ID!) { redeliverWebhookEvent(id: $id) { id state } }",
        {"id": delivery["id"]},
    )
    # Still pending: tried at once, the same delivery.
    assert redelivered["redeliverWebhookEvent"] == {"id": delivery["id"], "state": "PENDING"}
    tenant = await demo.token(TokenScope.WRITE, consumer="globex")
    errors = await errors_of(
        demo,
        tenant,
        "mutation($id: ID!) { redeliverWebhookEvent(id: $id) { id } }",
        {"id": delivery["id"]},
    )
    assert errors[0]["message"] == f"WebhookDelivery {delivery['id']!r} does not exist"


MUTE = """
mutation($id: ID!, $until: DateTime!, $reason: String!) {
  muteConnection(id: $id, until: $until, reason: $reason) { mutedUntil muteReason }
}"""


async def test_mutes_show_on_what_they_silence_and_end_on_unmute(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    found = await demo.execute(
        writer,
        '{ consumers(search: "acme-corp") { nodes { id connections(first: 5) { nodes { id name '
        "connector { id } } } } } }",
    )
    consumer = found["consumers"]["nodes"][0]
    connection = consumer["connections"]["nodes"][0]
    until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    muted = await demo.execute(
        writer, MUTE, {"id": connection["id"], "until": until.isoformat(), "reason": "migration"}
    )
    assert muted["muteConnection"] == {"mutedUntil": until.isoformat(), "muteReason": "migration"}
    later = until + timedelta(hours=1)
    await demo.execute(
        writer,
        "mutation($id: ID!, $until: DateTime!) { muteConsumer(id: $id, until: $until, "
        'reason: "maintenance") { mutedUntil muteReason } }',
        {"id": consumer["id"], "until": later.isoformat()},
    )
    shown = await demo.execute(
        writer,
        "query($id: ID!) { node(id: $id) { ... on Connection { mutedUntil muteReason "
        "connector { mutedUntil } consumer { mutedUntil muteReason } } } }",
        {"id": connection["id"]},
    )
    # The consumer's mute ends last: it is the one shown on the connection.
    assert shown["node"] == {
        "mutedUntil": later.isoformat(),
        "muteReason": "maintenance",
        "connector": {"mutedUntil": None},
        "consumer": {"mutedUntil": later.isoformat(), "muteReason": "maintenance"},
    }
    await demo.execute(
        writer, "mutation($id: ID!) { unmuteConsumer(id: $id) { id } }", {"id": consumer["id"]}
    )
    unmuted = await demo.execute(
        writer,
        "mutation($id: ID!) { unmuteConnection(id: $id) { mutedUntil muteReason } }",
        {"id": connection["id"]},
    )
    assert unmuted["unmuteConnection"] == {"mutedUntil": None, "muteReason": None}


async def test_mutes_are_refused_naming_the_problem(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    tenant = await demo.token(TokenScope.WRITE, consumer="acme-corp")
    found = await demo.execute(
        writer,
        "{ connections(first: 100) { nodes { id consumer { externalId } connector { id } } } }",
    )
    nodes = found["connections"]["nodes"]
    own = next(n for n in nodes if n["consumer"]["externalId"] == "acme-corp")
    foreign = next(n for n in nodes if n["consumer"]["externalId"] != "acme-corp")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    far = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    cases = [
        (writer, own["id"], past, "x", "until: must be in the future"),
        (writer, own["id"], far, "x", "until: must be within a year from now"),
        (writer, own["id"], soon, "", "reason: must not be empty"),
        (tenant, foreign["id"], soon, "x", f"Connection {foreign['id']!r} does not exist"),
    ]
    for token, target, until, reason, message in cases:
        errors = await errors_of(
            demo, token, MUTE, {"id": target, "until": until, "reason": reason}
        )
        assert errors[0]["message"] == message
    errors = await errors_of(
        demo,
        tenant,
        "mutation($id: ID!, $until: DateTime!) { muteConnector(id: $id, until: $until, "
        'reason: "x") { id } }',
        {"id": own["connector"]["id"], "until": soon},
    )
    assert errors[0]["message"] == "a token limited to one consumer cannot change Connectors"


async def test_an_outage_shows_on_its_connector_and_the_overview(demo: Server) -> None:
    reader = await demo.token(TokenScope.READ)
    connectors, _ = await _ids(demo)
    async with demo.database.sessions() as session:
        ids = list(
            await session.scalars(
                select(ConnectionRow.id).where(
                    ConnectionRow.connector_id == connectors["quickbooks"],
                    ConnectionRow.state == ConnectionState.ACTIVE,
                    ConnectionRow.direction == Direction.OUTBOUND,
                )
            )
        )
    now = datetime.now(UTC)
    async with demo.database.sessions.begin() as session:
        await record_unclaimed_outcomes(
            session,
            outcomes=[
                (cid, CheckOutcome(False, now, failure_reason=FailureReason.TIMEOUT, error="slow"))
                for cid in ids
            ],
            jitter=lambda _: 0.0,
        )
    async with demo.database.sessions.begin() as session:
        report = await dispatch_events(session, now=now, rules=OutageRules(min_connections=2))
    assert report.outages_started == [connectors["quickbooks"]]
    seen = await demo.execute(
        reader,
        '{ connectors(search: "quickbooks") { nodes { slug outage { failingConnections '
        "totalConnections reasons { reason connections } connector { slug } } } } "
        "overview { outages { connector { slug } failingConnections } } }",
    )
    outage = {
        "failingConnections": len(ids),
        "totalConnections": len(ids),
        "reasons": [{"reason": "TIMEOUT", "connections": len(ids)}],
        "connector": {"slug": "quickbooks"},
    }
    by_slug = {n["slug"]: n["outage"] for n in seen["connectors"]["nodes"]}
    assert by_slug["quickbooks"] == outage
    assert seen["overview"]["outages"] == [
        {"connector": {"slug": "quickbooks"}, "failingConnections": len(ids)}
    ]
    tenant = await demo.token(TokenScope.READ, consumer="acme-corp")
    hidden = await demo.execute(tenant, "{ overview { outages { startedAt } } }")
    assert hidden["overview"]["outages"] == []
