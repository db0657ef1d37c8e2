"""GET /export/consumers.csv: the same filters as the API, the issue column, tenant-scoped."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from healthgraph import csv_export
from healthgraph.csv_export import CONSUMER_COLUMNS, SYNC_COLUMNS
from healthgraph.demo import demo_catalog
from store.domain import ConnectionState, TokenScope
from tests.demo_server import Server

SPEC = demo_catalog("http://demo")


async def fetch(
    demo: Server, token: str | None, params: dict[str, str] | list[tuple[str, str]]
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=demo.base_url) as client:
        return await client.get("/export/consumers.csv", params=params, headers=headers)


def rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_by_connections_has_every_consumer_and_the_issue_column(
    demo: Server, reader: str
) -> None:
    response = await fetch(demo, reader, {})
    assert response.text.splitlines()[0] == ",".join(CONSUMER_COLUMNS)
    assert (
        response.headers["content-disposition"]
        == 'attachment; filename="consumers-by-connections.csv"'
    )
    table = rows(response)
    assert [r["consumer_id"] for r in table] == [c.external_id for c in SPEC.consumers]
    by_id = {r["consumer_id"]: r for r in table}
    for consumer in SPEC.consumers:
        row = by_id[consumer.external_id]
        assert row["connections"] == str(len(consumer.connections))
        assert row["active"] == (
            "true"
            if any(x.state is ConnectionState.ACTIVE for x in consumer.connections)
            else "false"
        )
        failed = [x for x in consumer.connections if x.state is ConnectionState.FAILED]
        if not consumer.connections:
            assert row["issue"] == "Nothing: no connection process was initiated"
        elif failed:
            names = {c.slug: c.name for c in SPEC.connectors}
            assert row["issue"] == "; ".join(
                f"Connection failed ({names[x.connector]})" for x in failed
            )
        else:
            assert row["issue"] == ""


async def test_filters_match_the_api(demo: Server, reader: str) -> None:
    inactive = rows(await fetch(demo, reader, {"active": "false"}))
    assert all(r["active"] == "false" for r in inactive)
    nothing = rows(await fetch(demo, reader, {"issue": "NOTHING"}))
    assert [r["consumer_id"] for r in nothing] == [
        c.external_id for c in SPEC.consumers if not c.connections
    ]
    xero = rows(await fetch(demo, reader, [("connector", "xero"), ("search", "a")]))
    assert {r["consumer_id"] for r in xero} == {
        c.external_id
        for c in SPEC.consumers
        if any(x.connector == "xero" for x in c.connections)
        and ("a" in c.name.lower() or "a" in c.external_id)
    }


async def test_by_syncs(demo: Server, reader: str) -> None:
    response = await fetch(demo, reader, {"view": "syncs"})
    assert response.text.splitlines()[0] == ",".join(SYNC_COLUMNS)
    table = rows(response)
    assert len(table) == sum(len(s.activations) for s in SPEC.syncs)
    assert {r["issue_code"] for r in table} == {
        "",
        "CONNECTION_FAILED",
        "NO_CONNECTION",
        "MAPPING_INCOMPLETE",
        "CONFIGURATION_INCOMPLETE",
    }
    assert all((r["issue_code"] == "") == (r["active"] == "true") for r in table)
    mapping = rows(await fetch(demo, reader, {"view": "syncs", "issue": "MAPPING_INCOMPLETE"}))
    assert {(r["mapping_step"], r["issue"]) for r in mapping} == {
        ("false", "Mapping incomplete: some mappings were not correctly set")
    }
    one = rows(await fetch(demo, reader, {"view": "syncs", "sync": "Tickets to CRM"}))
    assert {r["sync"] for r in one} == {"Tickets to CRM"}
    assert len(one) == len(next(s for s in SPEC.syncs if s.name == "Tickets to CRM").activations)


async def test_bad_parameters_are_named(demo: Server, reader: str) -> None:
    for params, message in (
        ({"view": "pivot"}, "view: 'pivot' is not connections or syncs"),
        ({"active": "yes"}, "active: 'yes' is not true or false"),
        (
            {"issue": "MAPPING_INCOMPLETE"},
            "issue: 'MAPPING_INCOMPLETE' is not one of CONNECTION_FAILED, NOTHING",
        ),
        ({"connector": "dropbox"}, "connector: 'dropbox' is not a connector slug"),
        ({"view": "syncs", "sync": "Nope"}, "sync: 'Nope' is not a sync name"),
        (
            {"colour": "red"},
            "colour: unknown parameter; use active, connector, issue, search, sync, view",
        ),
    ):
        response = await fetch(demo, reader, params)
        assert (response.status_code, response.text) == (400, f"{message}\n")


async def test_csv_is_authenticated_and_tenant_scoped(demo: Server) -> None:
    scoped = await demo.token(TokenScope.READ, consumer="globex")
    assert [r["consumer_id"] for r in rows(await fetch(demo, scoped, {}))] == ["globex"]
    assert {r["consumer_id"] for r in rows(await fetch(demo, scoped, {"view": "syncs"}))} <= {
        "globex"
    }
    bad = await fetch(demo, "hg_not-a-token", {})
    assert bad.status_code == 401


async def test_small_batches_read_ahead_give_the_same_file(
    demo: Server, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many batches, each read while the previous one is written: same rows, same order."""
    whole = {view: await fetch(demo, reader, {"view": view}) for view in ("connections", "syncs")}
    monkeypatch.setattr(csv_export, "BATCH_SIZE", 3)
    for view, expected in whole.items():
        batched = await fetch(demo, reader, {"view": view})
        assert batched.text == expected.text
        assert len(rows(batched)) > 3 * 3


async def test_a_client_leaving_mid_stream_stops_the_read_ahead(
    demo: Server, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = await fetch(demo, reader, {"view": "syncs"})
    monkeypatch.setattr(csv_export, "BATCH_SIZE", 2)
    headers = {"Authorization": f"Bearer {reader}"}
    async with httpx.AsyncClient(base_url=demo.base_url) as client:
        for _ in range(5):  # more walk-outs than the pool has connections
            async with client.stream(
                "GET", "/export/consumers.csv", params={"view": "syncs"}, headers=headers
            ) as response:
                assert response.status_code == 200
                async for _line in response.aiter_lines():
                    break
    assert (await fetch(demo, reader, {"view": "syncs"})).text == expected.text
