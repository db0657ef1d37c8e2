"""Every view of the seed pages answered by one query document from docs/queries/."""

from __future__ import annotations

from collections import Counter

import httpx

from healthgraph.demo import demo_catalog
from store.domain import ConnectionState, Direction, Health, TokenScope, health_rollup
from tests.demo_server import Server, view
from tests.link_pages import read_page

SPEC = demo_catalog("http://demo")
CONNECTIONS = [(c, x) for c in SPEC.consumers for x in c.connections]


async def test_connected_accounts_table_for_each_direction(demo: Server, reader: str) -> None:
    for direction in (Direction.OUTBOUND, Direction.INBOUND):
        expected = [x.name for _, x in CONNECTIONS if x.direction is direction]
        names: list[str] = []
        after = None
        while True:
            result = await demo.execute(
                reader,
                view("connected_accounts"),
                {"direction": direction.value, "first": 20, "after": after},
            )
            page = result["connections"]
            assert page["totalCount"] == len(expected)
            names += [node["name"] for node in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert names == expected

    first = (
        await demo.execute(
            reader, view("connected_accounts"), {"direction": "OUTBOUND", "first": 1}
        )
    )["connections"]["nodes"][0]
    consumer, connection = next((c, x) for c, x in CONNECTIONS if x.direction is Direction.OUTBOUND)
    kinds = Counter(u.kind for u in connection.uses)
    labels = {k.kind: k.label for k in SPEC.use_kinds}
    assert first == {
        "id": first["id"],
        "name": connection.name,
        "connector": {
            "name": next(c.name for c in SPEC.connectors if c.slug == connection.connector)
        },
        "consumer": {"name": consumer.name, "externalId": consumer.external_id},
        "status": "UNKNOWN",
        "lastCheckedAt": None,
        "failureReason": None,
        "usedFor": [
            {"kind": kind, "label": labels[kind], "count": count}
            for kind, count in sorted(kinds.items(), key=lambda item: labels[item[0]])
        ],
        "usedForSummary": ", ".join(
            f"{labels[kind]} ({count})"
            for kind, count in sorted(kinds.items(), key=lambda item: labels[item[0]])
        ),
        "instanceHealth": {
            "healthy": 0,
            "failed": 0,
            "unknown": len(connection.uses),
            "total": len(connection.uses),
            "status": "UNKNOWN",
        },
    }


async def test_drill_down_lists_the_uses_of_a_connection(demo: Server, reader: str) -> None:
    table = await demo.execute(
        reader, view("connected_accounts"), {"direction": "OUTBOUND", "first": 200}
    )
    _, connection = max(CONNECTIONS, key=lambda pair: len(pair[1].uses))
    row = next(n for n in table["connections"]["nodes"] if n["name"] == connection.name)

    result = await demo.execute(reader, view("connection_uses"), {"id": row["id"]})
    node = result["node"]
    assert node["name"] == connection.name
    assert node["uses"]["totalCount"] == len(connection.uses)
    assert [(u["kind"], u["name"], u["status"]) for u in node["uses"]["nodes"]] == [
        (u.kind, u.name, "UNKNOWN") for u in connection.uses
    ]


async def test_overview(demo: Server, reader: str) -> None:
    overview = (await demo.execute(reader, view("overview")))["overview"]
    states = Counter(x.state for _, x in CONNECTIONS)
    assert overview["consumers"] == len(SPEC.consumers)
    assert overview["activeConsumers"] == sum(
        1 for c in SPEC.consumers if any(x.state is ConnectionState.ACTIVE for x in c.connections)
    )
    assert (
        overview["activeConnections"],
        overview["pendingConnections"],
        overview["failedConnections"],
    ) == (
        states[ConnectionState.ACTIVE],
        states[ConnectionState.PENDING],
        states[ConnectionState.FAILED],
    )
    assert overview["connectionsByStatus"] == {
        "connected": 0,
        "connectionFailure": 0,
        "unknown": len(CONNECTIONS),
    }
    by_slug = {u["connector"]["slug"]: u for u in overview["connectors"]}
    assert set(by_slug) == {c.slug for c in SPEC.connectors}
    for slug, usage in by_slug.items():
        mine = [x for _, x in CONNECTIONS if x.connector == slug]
        assert usage["activeConnections"] == sum(
            1 for x in mine if x.state is ConnectionState.ACTIVE
        )
        assert usage["pendingConnections"] == sum(
            1 for x in mine if x.state is ConnectionState.PENDING
        )
        assert usage["failedConnections"] == sum(
            1 for x in mine if x.state is ConnectionState.FAILED
        )
    assert overview["activeSyncs"] == sum(s["activeActivations"] for s in overview["syncs"]) > 0
    for usage in overview["syncs"]:
        spec = next(s for s in SPEC.syncs if s.name == usage["sync"]["name"])
        assert usage["activations"] == len(spec.activations)
        assert usage["activationRate"] == usage["activeActivations"] / len(spec.activations)
        assert usage["stepFunnel"] == [
            {
                "step": step,
                "complete": sum(1 for a in spec.activations if dict(a.steps)[step_enum]),
                "incomplete": sum(1 for a in spec.activations if not dict(a.steps)[step_enum]),
            }
            for step_enum in (s for s, _ in spec.activations[0].steps)
            for step in [step_enum.value]
        ]


def _per_category(connections: list[tuple[str, str, ConnectionState | None]]) -> list[dict]:
    """The categories view from (consumer, connector slug, state) triples and SPEC."""
    category = {c.slug: c.category for c in SPEC.connectors}
    rows = []
    for name in sorted(set(category.values())):
        mine = [(who, state) for who, slug, state in connections if category[slug] == name]
        states = Counter(state for _, state in mine)
        rows.append(
            {
                "category": name,
                "connectors": sum(1 for c in SPEC.connectors if c.category == name),
                "activeConnections": states[ConnectionState.ACTIVE],
                "pendingConnections": states[ConnectionState.PENDING],
                "failedConnections": states[ConnectionState.FAILED],
                "activeConsumers": len(
                    {who for who, state in mine if state is ConnectionState.ACTIVE}
                ),
            }
        )
    return rows


async def test_unified_apis_overview_and_drill_down(demo: Server, reader: str) -> None:
    demo_connections = [(c.external_id, x.connector, x.state) for c, x in CONNECTIONS]
    result = await demo.execute(reader, view("unified_apis"))
    assert result["overview"]["categories"] == _per_category(demo_connections)
    assert result["connectors"]["totalCount"] == len(SPEC.connectors)
    # Asked for through a fragment, the categories are counted all the same.
    fragment = await demo.execute(
        reader,
        "{ overview { ...Apis } } fragment Apis on Overview { categories { category activeConsumers } }",
    )
    assert fragment["overview"]["categories"] == [
        {"category": c["category"], "activeConsumers": c["activeConsumers"]}
        for c in result["overview"]["categories"]
    ]

    # Invoicing: Stripe has a FAILED connection, Zoho Invoice a PENDING one.
    invoicing = await demo.execute(reader, view("unified_apis"), {"category": ["invoicing"]})
    assert invoicing["overview"] == result["overview"]
    nodes = invoicing["connectors"]["nodes"]
    expected = []
    for connector in (c for c in SPEC.connectors if c.category == "invoicing"):
        mine = [(c, x) for c, x in CONNECTIONS if x.connector == connector.slug]
        failed = [(c, x) for c, x in mine if x.state is ConnectionState.FAILED]
        enabled = [x for _, x in mine if x.state is not ConnectionState.DISABLED]
        # Never checked (no scheduler here): every status UNKNOWN, FAILED ones failed.
        health = health_rollup(len(enabled), len(failed), len(enabled) - len(failed), 0)
        expected.append(
            {
                "id": next(n["id"] for n in nodes if n["slug"] == connector.slug),
                "slug": connector.slug,
                "name": connector.name,
                "category": "invoicing",
                "health": health.value,
                "connections": {
                    "totalCount": len(failed),
                    "nodes": [
                        {
                            "name": x.name,
                            "consumer": {"externalId": c.external_id, "name": c.name},
                            "failureReason": None,
                        }
                        for c, x in failed
                    ],
                },
            }
        )
    assert invoicing["connectors"] == {"totalCount": len(expected), "nodes": expected}
    assert [n["health"] for n in nodes] == [Health.DEGRADED.value, Health.UNKNOWN.value]
    assert [n["connections"]["totalCount"] for n in nodes] == [1, 0]

    # A consumer active on several accounting connectors counts once among its active
    # consumers: one more ACTIVE connection of Acme's changes the connections, not them.
    writer = await demo.token(TokenScope.WRITE)
    acme = next(c for c in SPEC.consumers if c.external_id == "acme-corp")
    assert [(x.connector, x.state) for x in acme.connections] == [
        ("quickbooks", ConnectionState.ACTIVE),
        ("stripe", ConnectionState.ACTIVE),
        ("quickbooks-oauth", ConnectionState.ACTIVE),
    ]
    ids = await demo.execute(
        writer,
        '{ consumers(search: "acme-corp") { nodes { id } } connectors(search: "xero") { nodes { id } } }',
    )
    await demo.execute(
        writer,
        "mutation($input: CreateConnectionInput!) { createConnection(input: $input) { id } }",
        {
            "input": {
                "consumerId": ids["consumers"]["nodes"][0]["id"],
                "connectorId": ids["connectors"]["nodes"][0]["id"],
                "name": "Acme Xero",
            }
        },
    )
    after = await demo.execute(reader, view("unified_apis"))
    categories = _per_category([*demo_connections, ("acme-corp", "xero", ConnectionState.ACTIVE)])
    assert after["overview"]["categories"] == categories
    before = result["overview"]["categories"][0]
    assert (categories[0]["category"], categories[0]["activeConsumers"]) == (
        "accounting",
        before["activeConsumers"],
    )
    assert categories[0]["activeConnections"] == before["activeConnections"] + 1


async def test_consumers_by_connections_filters_search_and_issues(
    demo: Server, reader: str
) -> None:
    everyone = (await demo.execute(reader, view("consumers_by_connections"), {"first": 100}))[
        "consumers"
    ]
    assert everyone["totalCount"] == len(SPEC.consumers)
    by_id = {n["externalId"]: n for n in everyone["nodes"]}

    lonely = [c.external_id for c in SPEC.consumers if not c.connections]
    for external_id in lonely:
        assert by_id[external_id]["issues"] == [
            {
                "code": "NOTHING",
                "message": "Nothing: no connection process was initiated",
                "connector": None,
            }
        ]
        assert by_id[external_id]["active"] is False
    failed = [(c, x) for c, x in CONNECTIONS if x.state is ConnectionState.FAILED]
    for consumer, connection in failed:
        connector_name = next(c.name for c in SPEC.connectors if c.slug == connection.connector)
        assert {
            "code": "CONNECTION_FAILED",
            "message": f"Connection failed ({connector_name})",
            "connector": {"name": connector_name},
        } in by_id[consumer.external_id]["issues"]

    active = await demo.execute(
        reader, view("consumers_by_connections"), {"active": True, "first": 100}
    )
    assert {n["externalId"] for n in active["consumers"]["nodes"]} == {
        c.external_id
        for c in SPEC.consumers
        if any(x.state is ConnectionState.ACTIVE for x in c.connections)
    }
    nothing = await demo.execute(reader, view("consumers_by_connections"), {"issue": ["NOTHING"]})
    assert [n["externalId"] for n in nothing["consumers"]["nodes"]] == lonely
    searched = await demo.execute(reader, view("consumers_by_connections"), {"search": "ACME"})
    assert [n["externalId"] for n in searched["consumers"]["nodes"]] == ["acme-corp"]

    overview = (await demo.execute(reader, view("overview")))["overview"]
    xero = next(
        u["connector"]["id"] for u in overview["connectors"] if u["connector"]["slug"] == "xero"
    )
    with_xero = await demo.execute(
        reader, view("consumers_by_connections"), {"connectorIds": [xero]}
    )
    assert {n["externalId"] for n in with_xero["consumers"]["nodes"]} == {
        c.external_id for c, x in CONNECTIONS if x.connector == "xero"
    }


async def test_consumers_by_syncs_filters_and_issue_column(demo: Server, reader: str) -> None:
    result = await demo.execute(reader, view("consumers_by_syncs"), {"first": 100})
    rows = result["syncActivations"]["nodes"]
    assert len(rows) == sum(len(s.activations) for s in SPEC.syncs)
    codes = Counter(row["issue"]["code"] if row["issue"] else None for row in rows)
    assert set(codes) == {
        None,
        "CONNECTION_FAILED",
        "NO_CONNECTION",
        "MAPPING_INCOMPLETE",
        "CONFIGURATION_INCOMPLETE",
    }
    assert all((row["issue"] is None) == row["active"] for row in rows)

    mapping = await demo.execute(
        reader, view("consumers_by_syncs"), {"issue": ["MAPPING_INCOMPLETE"]}
    )
    assert mapping["syncActivations"]["totalCount"] == codes["MAPPING_INCOMPLETE"]
    assert all(
        row["steps"][1] == {"step": "MAPPING", "complete": False, "detail": None}
        for row in mapping["syncActivations"]["nodes"]
    )

    overview = (await demo.execute(reader, view("overview")))["overview"]
    invoices = next(
        s["sync"]["id"] for s in overview["syncs"] if s["sync"]["name"] == "Invoices to accounting"
    )
    one_sync = await demo.execute(reader, view("consumers_by_syncs"), {"syncIds": [invoices]})
    assert {row["sync"]["name"] for row in one_sync["syncActivations"]["nodes"]} == {
        "Invoices to accounting"
    }
    stripe = next(
        u["connector"]["id"] for u in overview["connectors"] if u["connector"]["slug"] == "stripe"
    )
    by_connector = await demo.execute(
        reader, view("consumers_by_syncs"), {"connectorIds": [stripe]}
    )
    assert {row["sync"]["name"] for row in by_connector["syncActivations"]["nodes"]} == {
        s.name for s in SPEC.syncs if "stripe" in s.requires
    }
    first_consumer = rows[0]["consumer"]["externalId"]
    searched = await demo.execute(reader, view("consumers_by_syncs"), {"search": first_consumer})
    assert {row["consumer"]["externalId"] for row in searched["syncActivations"]["nodes"]} == {
        first_consumer
    }


async def test_sync_link_opens_each_activation_with_its_steps_connections_and_issue(
    demo: Server, reader: str
) -> None:
    """Every activation of the demo, through its link: the page says what the "by syncs" row
    says, in the same words, and lists each required connector with the consumer's
    connections to it (never checked here, so none CONNECTED) or Missing."""
    writer = await demo.token(TokenScope.WRITE)
    rows = (await demo.execute(reader, view("consumers_by_syncs"), {"first": 100}))[
        "syncActivations"
    ]["nodes"]
    assert len(rows) == sum(len(s.activations) for s in SPEC.syncs)
    connector_names = {c.slug: c.name for c in SPEC.connectors}
    seen = Counter()
    async with httpx.AsyncClient() as client:
        for row in rows:
            link = (await demo.execute(writer, view("sync_link"), {"activationId": row["id"]}))[
                "syncActivationLink"
            ]
            external_id = row["consumer"]["externalId"]
            assert link["url"].startswith(f"{demo.base_url}/consumers/{external_id}/syncs/")
            response = await client.get(link["url"])
            assert response.status_code == 200
            page = read_page(response.text)

            consumer = next(c for c in SPEC.consumers if c.external_id == external_id)
            sync = next(s for s in SPEC.syncs if s.name == row["sync"]["name"])
            assert (page.title, page.h1) == (f"{consumer.name}: {sync.name}", sync.name)
            assert page.sections[""].paragraphs == [(f"Sync activation of {consumer.name}", None)]
            issue = row["issue"]
            assert page.sections["What might have failed"].paragraphs == [
                (issue["message"], "down") if issue else ("Nothing: the sync is active", "up")
            ]
            assert page.sections["Steps"].rows == [
                [
                    (step["step"].title(), None),
                    ("Complete", "up") if step["complete"] else ("Incomplete", "down"),
                    (step["detail"] or "", None),
                ]
                for step in row["steps"]
            ]
            expected = []
            for slug in sync.requires:
                mine = [x for x in consumer.connections if x.connector == slug]
                connector = (connector_names[slug], None)
                if not mine:
                    expected.append([connector, ("", None), ("Missing", "down"), *[("", None)] * 2])
                for x in mine:
                    status = (
                        ("Authentication failed", "down")
                        if x.state is ConnectionState.FAILED
                        else ("Not checked yet", "unknown")
                    )
                    expected.append(
                        [connector, (x.name, None), status, ("never", None), (" ", None)]
                    )
            assert page.sections["Required connections"].rows == expected
            seen[issue["code"] if issue else None] += 1
            seen.update(cells[2][0] for cells in expected)
    # Every issue and every kind of requirement row was on some page.
    assert set(seen) >= {
        None,
        "CONNECTION_FAILED",
        "NO_CONNECTION",
        "MAPPING_INCOMPLETE",
        "CONFIGURATION_INCOMPLETE",
        "Missing",
        "Authentication failed",
        "Not checked yet",
    }
