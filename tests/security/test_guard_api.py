"""The outbound-address guard through the public API: every way a client can name a heartbeat
target (create and update a connector's template, create and update a connection, a redirect
at check time) refuses non-public addresses, whatever their spelling, unless allowlisted.

tests/probes/test_guard.py and test_blocked.py prove the guard itself; these prove that no
mutation goes around it. No DNS: the names used are under `.localhost`, which the guard maps
to loopback by definition; the autouse network audit fails a test that connects elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from healthgraph.app import create_app
from healthgraph.settings import Settings
from store.crypto import generate_key
from store.domain import TokenScope
from tests.demo_server import Server
from tests.probes.conftest import HttpServer
from tests.servers import running

FIX = "if it is a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS"

# (url, what the refusal says about it)
REFUSED = [
    ("http://127.0.0.1/health", "refused 127.0.0.1 (a loopback address)"),
    ("http://127.9.9.9:8080/", "refused 127.9.9.9 (a loopback address)"),
    ("http://[::1]/health", "refused ::1 (a loopback address)"),
    ("http://0.0.0.0/", "refused 0.0.0.0 (the unspecified address)"),
    ("http://10.1.2.3/", "refused 10.1.2.3 (a private address)"),
    ("http://172.16.0.1/", "refused 172.16.0.1 (a private address)"),
    ("http://172.31.255.254/", "refused 172.31.255.254 (a private address)"),
    ("http://192.168.1.1/", "refused 192.168.1.1 (a private address)"),
    (
        "http://169.254.169.254/latest/meta-data/",
        "refused 169.254.169.254 (the cloud metadata address (link-local))",
    ),
    ("http://169.254.10.10/", "refused 169.254.10.10 (a link-local address)"),
    ("http://[fe80::1]/", "refused fe80::1 (a link-local address)"),
    (
        "http://[::ffff:127.0.0.1]/",
        "refused ::ffff:127.0.0.1 (a loopback address, embedded in IPv6)",
    ),
    ("http://[::ffff:10.0.0.1]/", "refused ::ffff:10.0.0.1 (a private address, embedded in IPv6)"),
    (
        "http://2130706433/",
        "refused 2130706433 (it resolves to 127.0.0.1, a loopback address)",
    ),
    (
        "http://0177.0.0.1/",
        "refused 0177.0.0.1 (it resolves to 127.0.0.1, a loopback address)",
    ),
    (
        "http://0x7f000001/",
        "refused 0x7f000001 (it resolves to 127.0.0.1, a loopback address)",
    ),
    (
        "http://0xa9fea9fe/",
        "refused 0xa9fea9fe (it resolves to 169.254.169.254, the cloud metadata address "
        "(link-local))",
    ),
    ("http://012.0.0.1/", "refused 012.0.0.1 (it resolves to 10.0.0.1, a private address)"),
    ("http://localhost:8000/", "refused localhost (it resolves to 127.0.0.1, a loopback address)"),
    (
        "https://billing.internal.localhost/v1/health",
        "refused billing.internal.localhost (it resolves to 127.0.0.1, a loopback address)",
    ),
    (
        "http://user:pw@10.9.8.7:8080/",
        "refused 10.9.8.7 (a private address)",
    ),
    # A template placeholder is checked with a stand-in value (on a connector) or with the
    # consumer's own id (on a connection): it cannot smuggle a name in.
    (
        "http://{external_id}.localhost/",
        "refused {host}.localhost (it resolves to 127.0.0.1, a loopback address)",
    ),
]

CREATE_CONNECTOR = """
mutation($input: CreateConnectorInput!) { createConnector(input: $input) { id slug } }
"""
UPDATE_CONNECTOR = """
mutation($id: ID!, $url: String!) { updateConnector(id: $id, input: {heartbeat: {url: $url}}) { id } }
"""
CREATE_CONNECTION = """
mutation($input: CreateConnectionInput!) { createConnection(input: $input) { id heartbeat { url } } }
"""
UPDATE_CONNECTION = """
mutation($id: ID!, $url: String!) { updateConnection(id: $id, input: {heartbeat: {url: $url}}) { id } }
"""
# A connector's template is not a field of its own: it shows through its connections.
READ_BACK = """
{ connectors(first: 50) { nodes { id slug name } }
  connections(first: 50) { nodes { id name heartbeat { url } } } }
"""


@dataclass
class Api:
    server: Server
    admin: str
    consumer: str
    connector: str
    connection: str

    client: httpx.AsyncClient

    async def post(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers={"Authorization": f"Bearer {self.admin}"},
        )
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body


async def api_on(database_url: str, allow: tuple[str, ...]) -> AsyncIterator[Api]:
    # Not the demo: it allowlists loopback for its own targets. The default policy, plus `allow`.
    settings = Settings(
        database_url=database_url, secret_keys=(generate_key(),), allow_targets=allow
    )
    app = create_app(settings)
    async with running(app) as base_url:
        server = Server(base_url, app.state.database)
        admin = await server.token(TokenScope.ADMIN)
        made = await server.execute(
            admin,
            """mutation {
                 consumer: createConsumer(input: {externalId: "acme", name: "Acme"}) { id }
                 connector: createConnector(input: {slug: "books", name: "Books", category: "accounting",
                   heartbeat: {url: "https://api.books.example/health"}}) { id }
               }""",
        )
        connection = await server.execute(
            admin,
            """mutation($consumer: ID!, $connector: ID!) {
                 createConnection(input: {consumerId: $consumer, connectorId: $connector, name: "Acme Books"}) { id }
               }""",
            {"consumer": made["consumer"]["id"], "connector": made["connector"]["id"]},
        )
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            yield Api(
                server,
                admin,
                made["consumer"]["id"],
                made["connector"]["id"],
                connection["createConnection"]["id"],
                client,
            )


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async for value in api_on(database_url, ()):
        yield value


def attempts(api: Api, url: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every mutation that sets a heartbeat URL, aimed at `url`: (name, document, variables)."""
    return [
        (
            "createConnector",
            CREATE_CONNECTOR,
            {"input": {"slug": "x", "name": "X", "category": "c", "heartbeat": {"url": url}}},
        ),
        ("updateConnector", UPDATE_CONNECTOR, {"id": api.connector, "url": url}),
        (
            "createConnection",
            CREATE_CONNECTION,
            {
                "input": {
                    "consumerId": api.consumer,
                    "connectorId": api.connector,
                    "name": "Second",
                    "heartbeat": {"url": url},
                }
            },
        ),
        ("updateConnection", UPDATE_CONNECTION, {"id": api.connection, "url": url}),
    ]


async def test_every_mutation_refuses_every_non_public_spelling_and_saves_nothing(
    api: Api,
) -> None:
    before = await api.server.execute(api.admin, READ_BACK)
    for url, refusal in REFUSED:
        for name, document, variables in attempts(api, url):
            body = await api.post(document, variables)
            assert body["data"] is None, (name, url)
            filled = refusal.replace("{host}", "acme" if "Connection" in name else "x")
            assert body["errors"] == [
                {
                    "message": f"heartbeat.url: {filled}; {FIX}",
                    "locations": body["errors"][0]["locations"],
                    "path": [name],
                    "extensions": {"code": "BAD_USER_INPUT", "field": "heartbeat.url"},
                }
            ], (name, url)
    assert await api.server.execute(api.admin, READ_BACK) == before


async def test_allowlisted_ranges_and_names_are_admitted_and_nothing_else(
    database_url: str,
) -> None:
    allow = ("10.0.0.0/8", "*.svc.localhost")
    async for api in api_on(database_url, allow):
        for url in ("http://10.1.2.3/health", "http://012.0.0.1/", "http://billing.svc.localhost/"):
            for name, document, variables in attempts(api, url):
                if name == "createConnector":
                    variables["input"]["slug"] = f"x{abs(hash(url)) % 10**6}"
                if name == "createConnection":
                    variables["input"]["name"] = f"Second {url}"
                body = await api.post(document, variables)
                assert "errors" not in body, (name, url, body)
        for url, refusal in (
            ("http://192.168.1.1/", "refused 192.168.1.1 (a private address)"),
            ("http://127.0.0.1/", "refused 127.0.0.1 (a loopback address)"),
            (
                "http://svc.localhost/",  # the wildcard admits subdomains, not the parent
                "refused svc.localhost (it resolves to 127.0.0.1, a loopback address)",
            ),
            (
                "http://169.254.169.254/",
                "refused 169.254.169.254 (the cloud metadata address (link-local))",
            ),
        ):
            for name, document, variables in attempts(api, url):
                body = await api.post(document, variables)
                assert [e["message"] for e in body["errors"]] == [
                    f"heartbeat.url: {refusal}; {FIX}"
                ], (name, url)


CHECK_NOW = """
mutation($id: ID!) { checkConnectionNow(id: $id) { status failureReason lastError } }
"""


async def test_a_redirect_to_a_refused_address_is_not_followed_on_check_now(
    database_url: str, http_server: HttpServer
) -> None:
    # Only the test's own server is admitted; it answers with redirects elsewhere.
    async for api in api_on(database_url, ("127.0.0.1/32",)):
        for target, refusal in (
            ("http://10.0.0.1/", "refused 10.0.0.1 (a private address)"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "refused 169.254.169.254 (the cloud metadata address (link-local))",
            ),
            ("http://[::1]:1/", "refused ::1 (a loopback address)"),
            (
                "http://0x7f000002/",
                "refused 0x7f000002 (it resolves to 127.0.0.2, a loopback address)",
            ),
        ):
            url = http_server.url(f"/redirect?to={target}")
            body = await api.post(UPDATE_CONNECTION, {"id": api.connection, "url": url})
            assert "errors" not in body, body
            checked = await api.server.execute(api.admin, CHECK_NOW, {"id": api.connection})
            assert checked == {
                "checkConnectionNow": {
                    "status": "CONNECTION_FAILURE",
                    "failureReason": "BLOCKED",
                    "lastError": f"{refusal}; {FIX}",
                }
            }, target
