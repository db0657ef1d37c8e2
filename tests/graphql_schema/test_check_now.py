"""checkConnectionNow: the probe runs at once against the demo's own targets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError
from prometheus_client.parser import text_string_to_metric_families

from healthgraph.demo import demo_catalog
from store.domain import Direction, TokenScope
from tests.demo_server import Server

SPEC = demo_catalog("http://127.0.0.1")
CHECK_NOW = """
mutation($id: ID!) {
  checkConnectionNow(id: $id) {
    id name status state failureReason lastError lastCheckedAt lastSuccessAt consecutiveFailures
    checks(first: 5) { totalCount nodes { success failureReason httpStatus error } }
  }
}
"""


def _behaviour(name: str) -> str:
    connection = next(x for c in SPEC.consumers for x in c.connections if x.name == name)
    url = connection.heartbeat.get("url", "/demo/healthy/")
    return str(url).split("/demo/")[1].split("/")[0]


async def _connection_ids(demo: Server, token: str) -> dict[str, str]:
    data = await demo.execute(
        token, "{ connections(first: 500) { nodes { id name direction state } } }"
    )
    return {n["name"]: n["id"] for n in data["connections"]["nodes"] if n["state"] == "ACTIVE"}


async def test_check_now_classifies_the_demo_targets(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    ids = await _connection_ids(demo, writer)
    outbound = {
        x.name: _behaviour(x.name)
        for c in SPEC.consumers
        for x in c.connections
        if x.direction is Direction.OUTBOUND and x.name in ids
    }
    by_behaviour = {behaviour: name for name, behaviour in outbound.items()}

    results: dict[str, dict[str, Any]] = {}
    for behaviour in ("healthy", "failing", "unauthorized"):
        data = await demo.execute(writer, CHECK_NOW, {"id": ids[by_behaviour[behaviour]]})
        results[behaviour] = data["checkConnectionNow"]

    healthy = results["healthy"]
    assert (
        healthy["status"],
        healthy["state"],
        healthy["failureReason"],
        healthy["lastError"],
    ) == (
        "CONNECTED",
        "ACTIVE",
        None,
        None,
    )
    assert healthy["lastCheckedAt"] == healthy["lastSuccessAt"] is not None
    assert healthy["checks"] == {
        "totalCount": 1,
        "nodes": [{"success": True, "failureReason": None, "httpStatus": 200, "error": None}],
    }
    failing = results["failing"]
    assert (
        failing["status"],
        failing["state"],
        failing["failureReason"],
        failing["consecutiveFailures"],
    ) == (
        "CONNECTION_FAILURE",
        "ACTIVE",
        "HTTP_STATUS",
        1,
    )
    assert failing["checks"]["nodes"][0]["httpStatus"] == 500
    unauthorized = results["unauthorized"]
    assert (unauthorized["status"], unauthorized["state"], unauthorized["failureReason"]) == (
        "CONNECTION_FAILURE",
        "FAILED",
        "AUTH",
    )
    issues = await demo.execute(writer, "{ overview { failedConnections } }")
    assert issues["overview"]["failedConnections"] == 1 + sum(
        1 for c in SPEC.consumers for x in c.connections if x.state and x.state.value == "FAILED"
    )


async def test_check_now_refuses_inbound_connections_and_read_tokens(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    reader = await demo.token(TokenScope.READ)
    data = await demo.execute(
        writer, "{ connections(filter: {direction: [INBOUND]}, first: 1) { nodes { id } } }"
    )
    inbound = data["connections"]["nodes"][0]["id"]
    with pytest.raises(TransportQueryError, match="is inbound: it calls in, it is not probed"):
        await demo.execute(writer, CHECK_NOW, {"id": inbound})
    ids = await _connection_ids(demo, writer)
    with pytest.raises(TransportQueryError, match="needs the write scope"):
        await demo.execute(reader, CHECK_NOW, {"id": next(iter(ids.values()))})


async def test_check_now_counts_in_the_self_metrics(demo: Server) -> None:
    """No scheduler runs in this app: every check counted is one of ours."""
    writer = await demo.token(TokenScope.WRITE)
    ids = await _connection_ids(demo, writer)
    names = {_behaviour(name): name for name in ids if _behaviour(name) in {"healthy", "failing"}}
    for behaviour in ("healthy", "failing", "failing"):
        await demo.execute(writer, CHECK_NOW, {"id": ids[names[behaviour]]})
    async with httpx.AsyncClient(base_url=demo.base_url) as client:
        exposition = (await client.get("/metrics")).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    checks = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "healthgraph_checks_total" and value
    }
    assert checks == {
        (("reason", "none"), ("result", "success")): 1.0,
        (("reason", "HTTP_STATUS"), ("result", "failure")): 2.0,
    }
    assert samples[("healthgraph_probe_duration_seconds_count", (("kind", "http"),))] == 3.0
