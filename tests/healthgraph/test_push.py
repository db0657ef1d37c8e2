"""Push endpoints: inbound heartbeats and use runs, with the API's tokens and tenants."""

from __future__ import annotations

from typing import Any

import httpx

from store.domain import TokenScope
from tests.demo_server import Server


async def _post(demo: Server, path: str, token: str | None, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=demo.base_url) as client:
        return await client.post(path, json=body, headers=headers)


async def test_inbound_heartbeat_and_use_run(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    data = await demo.execute(
        writer,
        """{ inbound: connections(filter: {direction: [INBOUND], state: [ACTIVE]}, first: 1) { nodes { id } }
             used: connections(filter: {direction: [OUTBOUND]}, first: 50) { nodes { uses(first: 1) { nodes { id } } } } }""",
    )
    inbound = data["inbound"]["nodes"][0]["id"]
    use = next(n["uses"]["nodes"][0]["id"] for n in data["used"]["nodes"] if n["uses"]["nodes"])

    beat = await _post(demo, f"/push/heartbeat/{inbound}", writer)
    assert beat.status_code == 200
    assert beat.json()["status"] == "CONNECTED"
    run = await _post(
        demo, f"/push/use-run/{use}", writer, {"success": False, "error": "quota exceeded"}
    )
    assert (run.status_code, run.json()["status"]) == (200, "FAILED")
    node = await demo.execute(
        writer, "query($id: ID!) { node(id: $id) { ... on Use { status lastError } } }", {"id": use}
    )
    assert node == {"node": {"status": "FAILED", "lastError": "quota exceeded"}}


async def test_push_refusals(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    reader = await demo.token(TokenScope.READ)
    tenant = await demo.token(TokenScope.WRITE, consumer="globex")
    data = await demo.execute(
        writer,
        """{ inbound: connections(filter: {direction: [INBOUND], state: [ACTIVE]}, first: 20) { nodes { id consumer { externalId } } }
             outbound: connections(filter: {direction: [OUTBOUND]}, first: 1) { nodes { id } } }""",
    )
    inbound = next(
        n["id"] for n in data["inbound"]["nodes"] if n["consumer"]["externalId"] != "globex"
    )
    outbound = data["outbound"]["nodes"][0]["id"]
    cases = [
        # The demo lets this machine read anonymously; pushing still needs a write token.
        (f"/push/heartbeat/{inbound}", None, None, 403),
        (f"/push/heartbeat/{inbound}", reader, None, 403),
        (f"/push/heartbeat/{inbound}", tenant, None, 404),
        ("/push/heartbeat/not-an-id", writer, None, 400),
        (f"/push/heartbeat/{outbound}", writer, None, 409),
        (f"/push/use-run/{outbound}", writer, {"success": True}, 400),
    ]
    for path, token, body, status in cases:
        response = await _post(demo, path, token, body)
        assert response.status_code == status, (path, response.text)
    assert (await _post(demo, f"/push/heartbeat/{inbound}", reader)).json() == {
        "error": "this token cannot do that; it needs the write scope"
    }
    assert (
        (await _post(demo, f"/push/heartbeat/{outbound}", writer))
        .json()["error"]
        .endswith("is outbound; it is probed, not pushed to")
    )


async def test_use_run_body_is_validated(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    data = await demo.execute(
        writer, "{ connections(first: 50) { nodes { uses(first: 1) { nodes { id } } } } }"
    )
    use = next(
        n["uses"]["nodes"][0]["id"] for n in data["connections"]["nodes"] if n["uses"]["nodes"]
    )
    for body, message in (
        ({"success": "yes"}, "success: expected true or false"),
        ({"success": True, "error": 5}, "error: expected a string or null"),
        (
            {"success": True, "colour": "red"},
            'body: expected {"success": true|false, "error": "..."}',
        ),
    ):
        response = await _post(demo, f"/push/use-run/{use}", writer, body)
        assert (response.status_code, response.json()) == (400, {"error": message})
