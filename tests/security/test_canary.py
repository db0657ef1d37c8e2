"""A canary secret, set as credentials, never leaves: not in a GraphQL response (data or error),
the CSV export, the consumer page, /metrics, a log line, `healthgraph export`, or the output
of any command, whatever the probe met (401, 5xx, a body that echoes the Authorization header,
a refused redirect, a closed port).

tests/probes/test_secrets.py proves the probe results are clean; these follow the canary
through every path of the running service and its command line.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp.test_utils import TestServer

from store.crypto import generate_key
from store.domain import TokenScope
from tests.graphql_schema.test_access import EVERYTHING
from tests.probes.conftest import HttpServer
from tests.security.conftest import Served
from tests.servers import free_port

CANARY = "CANARY-5e1d-sekrit-credential"
FORMS = (
    CANARY,
    base64.b64encode(f"svc:{CANARY}".encode()).decode(),  # inside a Basic header
    CANARY.replace("-", "%2D"),  # URL-encoded, as a query parameter might be
    base64.b64encode(CANARY.encode()).decode(),
)
CREDENTIALS = [
    {"kind": "BEARER", "token": CANARY},
    {"kind": "BASIC", "username": "svc", "password": CANARY},
    {"kind": "HEADER", "name": "X-Api-Key", "value": CANARY},
    {"kind": "QUERY", "name": "api_key", "value": CANARY},
]


# The test's own target server (aiohttp) logs the requests it receives: that is the remote
# side, which is meant to see the credentials (a query credential is in its access log).
TARGET_SIDE_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web")


def assert_clean(where: str, text: str) -> None:
    for form in FORMS:
        assert form not in text, f"the canary ({form}) leaked through {where}"


def targets(http_server: HttpServer, closed_port: int) -> dict[str, dict[str, Any]]:
    return {
        "auth": {"url": http_server.url("/status/401")},
        "unavailable": {"url": http_server.url("/status/503")},
        "echo": {
            "url": http_server.url("/echo-auth-json"),
            "jsonPath": "$.seen",
            "jsonEquals": "x",
        },
        "redirect": {"url": http_server.url("/redirect?to=http://10.0.0.1/")},
        "closed": {"url": f"http://127.0.0.1:{closed_port}/"},
        "healthy": {"url": http_server.url("/echo")},
    }


CONNECTION_FIELDS = """
  id name state status failureReason lastError latencyMs consecutiveFailures
  heartbeat { kind method url expectedStatus timeoutSeconds hasCredentials }
  checks(first: 20) { nodes { success failureReason httpStatus error } }
  usedFor { kind label count } instanceHealth { status }
"""


async def test_the_canary_never_leaves_the_running_service(
    served: Served,
    http_server: HttpServer,
    closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: what an operator could see
    writer = await served.token(TokenScope.ADMIN)
    headers = {"Authorization": f"Bearer {writer}"}
    seen: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=served.base_url, headers=headers, timeout=60) as client:

        async def graphql(document: str, variables: dict[str, Any] | None = None) -> Any:
            response = await client.post(
                "/graphql", json={"query": document, "variables": variables}
            )
            seen.append((f"POST /graphql {document.split('(')[0].strip()[:40]}", response.text))
            return response.json()

        ids = await graphql(
            """{ consumers(search: "acme-corp") { nodes { id } } connectors(search: "xero") { nodes { id } } }"""
        )
        consumer = ids["data"]["consumers"]["nodes"][0]["id"]
        connector = ids["data"]["connectors"]["nodes"][0]["id"]
        made: list[str] = []
        for target, heartbeat in targets(http_server, closed_port).items():
            for credentials in CREDENTIALS:
                created = await graphql(
                    """mutation($input: CreateConnectionInput!) { createConnection(input: $input) { id } }""",
                    {
                        "input": {
                            "consumerId": consumer,
                            "connectorId": connector,
                            "name": f"canary {target} {credentials['kind']}",
                            "checkIntervalSeconds": 60,
                            "heartbeat": heartbeat,
                        }
                    },
                )
                connection = created["data"]["createConnection"]["id"]
                made.append(connection)
                await graphql(
                    """mutation($id: ID!, $c: CredentialsInput) {
                         setConnectionCredentials(id: $id, credentials: $c) { heartbeat { hasCredentials } } }""",
                    {"id": connection, "c": credentials},
                )
                checked = await graphql(
                    f"mutation($id: ID!) {{ checkConnectionNow(id: $id) {{ {CONNECTION_FIELDS} }} }}",
                    {"id": connection},
                )
                result = checked["data"]["checkConnectionNow"]
                assert result["heartbeat"]["hasCredentials"] is True
                assert result["status"] == (
                    "CONNECTED" if target == "healthy" else "CONNECTION_FAILURE"
                )
        # Refused credentials: the error names the field, never the value.
        for bad in (
            {"kind": "BASIC", "username": "svc:x", "password": CANARY},
            {"kind": "HEADER", "name": "X Bad Name", "value": CANARY},
            {"kind": "QUERY", "value": CANARY},
            {"kind": "BEARER", "token": CANARY + "\n"},
            {"kind": "BEARER", "token": CANARY, "password": CANARY},
        ):
            refused = await graphql(
                """mutation($id: ID!, $c: CredentialsInput) {
                     setConnectionCredentials(id: $id, credentials: $c) { id } }""",
                {"id": made[0], "c": bad},
            )
            assert refused["data"] is None
            assert refused["errors"][0]["extensions"]["field"].startswith("credentials"), refused

        # Read everything back, every way there is.
        await graphql(EVERYTHING)
        await graphql(f"{{ connections(first: 500) {{ nodes {{ {CONNECTION_FIELDS} }} }} }}")
        for connection in made:
            await graphql(
                f"query($id: ID!) {{ node(id: $id) {{ ... on Connection {{ {CONNECTION_FIELDS} }} }} }}",
                {"id": connection},
            )
        for path in (
            "/export/consumers.csv",
            "/export/consumers.csv?view=syncs",
            "/metrics",
            "/readyz",
        ):
            response = await client.get(path)
            assert response.status_code == 200, path
            seen.append((f"GET {path}", response.text))
        link = await graphql(
            "mutation($id: ID!) { consumerLink(consumerId: $id) { url } }", {"id": consumer}
        )
        page = await client.get(link["data"]["consumerLink"]["url"])
        assert "canary auth BEARER" in page.text  # the page does list the connections
        seen.append(("the consumer page", page.text))
        sync = await graphql(
            'mutation($c: ID!) { createSync(input: {name: "Canary sync", requiredConnectorIds: [$c]}) { id } }',
            {"c": connector},
        )
        activation = await graphql(
            "mutation($s: ID!, $c: ID!) { createSyncActivation(syncId: $s, consumerId: $c) { id } }",
            {"s": sync["data"]["createSync"]["id"], "c": consumer},
        )
        link = await graphql(
            "mutation($id: ID!) { syncActivationLink(activationId: $id) { url } }",
            {"id": activation["data"]["createSyncActivation"]["id"]},
        )
        page = await client.get(link["data"]["syncActivationLink"]["url"])
        assert "canary auth BEARER" in page.text  # the required connections, with their errors
        seen.append(("the sync page", page.text))

    metrics = dict(seen)["GET /metrics"]
    assert 'reason="AUTH"' in metrics and 'reason="BLOCKED"' in metrics  # the failures are there
    assert len(seen) > 60
    for where, text in seen:
        assert_clean(where, text)
    ours = [r for r in caplog.records if not r.name.startswith(TARGET_SIDE_LOGGERS)]
    assert len(ours) > 100  # DEBUG from the service, its probes and its drivers
    for record in ours:
        assert_clean(f"a log line of {record.name}", record.getMessage())
        assert_clean(f"a log record of {record.name}", repr(record.args) + str(record.exc_text))


def run(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "healthgraph.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


async def test_the_canary_never_leaves_through_the_command_line(
    tmp_path: Path, http_server: HttpServer
) -> None:
    # The embedded SQLite file only: what the commands print does not depend on the backend
    # (the service test above covers both), and three interpreters plus a `serve` cost seconds.
    database_url = f"sqlite:///{tmp_path / 'healthgraph.db'}"
    secret_file = tmp_path / "password"
    secret_file.write_text(CANARY + "\n")
    catalog = {
        "use_kinds": [{"kind": "hypersync", "label": "Hypersyncs"}],
        "connectors": [
            {
                "slug": "books",
                "name": "Books",
                "category": "accounting",
                "heartbeat": {"kind": "http", "url": http_server.url("/status/401")},
            }
        ],
        "consumers": [
            {
                "external_id": "acme",
                "name": "Acme",
                "connections": [
                    {
                        "name": "bearer from env",
                        "connector": "books",
                        "check_interval_seconds": 1,
                        "credentials": {"kind": "bearer", "token_env": "ACME_TOKEN"},
                    },
                    {
                        "name": "basic from file",
                        "connector": "books",
                        "check_interval_seconds": 1,
                        "heartbeat": {"url": http_server.url("/redirect?to=http://10.0.0.1/")},
                        "credentials": {
                            "kind": "basic",
                            "username": "svc",
                            "password_file": str(secret_file),
                        },
                    },
                    {
                        "name": "query from env",
                        "connector": "books",
                        "check_interval_seconds": 1,
                        "heartbeat": {
                            "url": http_server.url("/echo-auth-json"),
                            "json_path": "$.seen",
                            "json_equals": "x",
                        },
                        "credentials": {"kind": "query", "name": "key", "value_env": "ACME_TOKEN"},
                    },
                ],
            }
        ],
    }
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(catalog))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "HEALTHGRAPH_DATABASE_URL": database_url,
        "HEALTHGRAPH_SECRET_KEYS": generate_key(),
        "HEALTHGRAPH_LOG_LEVEL": "DEBUG",
        "HEALTHGRAPH_ALLOW_TARGETS": "127.0.0.1/32",
        "ACME_TOKEN": CANARY,
    }
    outputs: list[tuple[str, str]] = []
    for args in (["apply", "catalog.yaml"], ["export"]):
        done = run(args, env, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
        outputs.append((f"healthgraph {' '.join(args)}", done.stdout + done.stderr))
    exported = yaml.safe_load(done.stdout)  # `export`'s: the credentials only by reference
    credentials = [c["credentials"] for c in exported["consumers"][0]["connections"]]
    assert credentials == [
        {"kind": "bearer", "token_env": "ACME_TOKEN"},
        {"kind": "basic", "username": "svc", "password_file": str(secret_file)},
        {"kind": "query", "name": "key", "value_env": "ACME_TOKEN"},
    ]

    # The scheduler checks all three every second for a while, logging at DEBUG.
    port = free_port()
    log = tmp_path / "serve.log"  # a file, not a pipe: DEBUG output would fill a pipe and block
    with log.open("w") as sink:
        # Started and awaited off the loop: the loop serves the targets `serve` checks.
        serve = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "healthgraph.cli", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            metrics = await _metrics_once_checked(port, expected=3, process=serve)
        finally:
            serve.terminate()
            await asyncio.to_thread(serve.wait, 30)
    logged = log.read_text()
    assert "probes.scheduler" in logged
    outputs.append(("healthgraph serve", logged))
    outputs.append(("/metrics of healthgraph serve", metrics))
    assert 'reason="AUTH"' in metrics and 'reason="BLOCKED"' in metrics
    assert 'reason="ASSERTION"' in metrics
    for where, text in outputs:
        assert_clean(where, text)


async def _metrics_once_checked(port: int, expected: int, process: subprocess.Popen[str]) -> str:
    """/metrics of the served process once `expected` connections carry a failure reason."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        while True:
            try:
                text = (await client.get("/metrics")).text
            except httpx.TransportError:
                text = ""
            failing = [
                line
                for line in text.splitlines()
                if line.startswith("healthgraph_connection_failure_reason{")
            ]
            if len(failing) >= expected:
                return text
            assert process.poll() is None, f"serve exited with {process.returncode}"
            assert time.monotonic() < deadline, f"no checks within 60 s:\n{text[-2000:]}"
            await asyncio.sleep(0.2)


async def test_oauth2_tokens_and_client_secrets_never_leave_the_running_service(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """Refresh tokens, access tokens and the client secret (sent in the form, echoed back in
    the provider's error bodies) appear in no response, export, metric or log line, whatever
    the token endpoint answered: tokens, a revoked grant, a 503."""
    from healthgraph.catalog.export import dump_yaml, export_catalog
    from tests.oauth_provider import CLIENT_ID, CLIENT_SECRET, OAuthProvider

    caplog.set_level(logging.DEBUG)
    provider = OAuthProvider(auth_method="client_secret_post", access_seconds=3600)
    server = TestServer(provider.app(), host="127.0.0.1")
    await server.start_server()
    admin = await served.token(TokenScope.ADMIN)
    seen: list[tuple[str, str]] = []
    try:
        async with httpx.AsyncClient(
            base_url=served.base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=60
        ) as client:

            async def graphql(document: str, variables: dict[str, Any] | None = None) -> Any:
                response = await client.post(
                    "/graphql", json={"query": document, "variables": variables}
                )
                seen.append((f"POST /graphql {document.split('(')[0].strip()[:40]}", response.text))
                return response.json()

            ids = await graphql('{ consumers(search: "acme-corp") { nodes { id } } }')
            consumer = ids["data"]["consumers"]["nodes"][0]["id"]
            made = await graphql(
                """mutation($input: CreateConnectorInput!) { createConnector(input: $input) {
                     id oauth2 { tokenUrl clientId hasClientSecret } } }""",
                {
                    "input": {
                        "slug": "canary-oauth",
                        "name": "Canary OAuth",
                        "category": "testing",
                        "heartbeat": {"url": str(server.make_url("/api/whoami"))},
                        "oauth2": {
                            "tokenUrl": str(server.make_url("/oauth/token")),
                            "clientId": CLIENT_ID,
                            "clientSecret": CLIENT_SECRET,
                            "authMethod": "client_secret_post",
                        },
                    }
                },
            )
            connector = made["data"]["createConnector"]["id"]
            for scenario in ("healthy", "revoked", "unavailable"):
                created = await graphql(
                    """mutation($input: CreateConnectionInput!) { createConnection(input: $input) { id } }""",
                    {
                        "input": {
                            "consumerId": consumer,
                            "connectorId": connector,
                            "name": f"oauth canary {scenario}",
                            "checkIntervalSeconds": 3600,
                        }
                    },
                )
                connection = created["data"]["createConnection"]["id"]
                seed = provider.new_grant()
                await graphql(
                    """mutation($id: ID!, $c: CredentialsInput) {
                         setConnectionCredentials(id: $id, credentials: $c) { id } }""",
                    {"id": connection, "c": {"kind": "OAUTH2", "refreshToken": seed}},
                )
                if scenario == "revoked":
                    provider.revoke(provider.grant_of(seed))
                if scenario == "unavailable":
                    provider.fail_next("503")
                checked = await graphql(
                    f"mutation($id: ID!) {{ checkConnectionNow(id: $id) {{ {CONNECTION_FIELDS} }} }}",
                    {"id": connection},
                )
                result = checked["data"]["checkConnectionNow"]
                assert (result["status"], result["failureReason"]) == {
                    "healthy": ("CONNECTED", None),
                    "revoked": ("CONNECTION_FAILURE", "AUTH"),
                    "unavailable": ("CONNECTION_FAILURE", "HTTP_STATUS"),
                }[scenario]
            await graphql(EVERYTHING)
            await graphql(f"{{ connections(first: 500) {{ nodes {{ {CONNECTION_FIELDS} }} }} }}")
            for path in ("/export/consumers.csv", "/metrics"):
                response = await client.get(path)
                seen.append((f"GET {path}", response.text))
        async with served.database.sessions() as session:
            seen.append(("healthgraph export", dump_yaml(await export_catalog(session))))
    finally:
        await server.close()
    secrets = provider.issued() | {CLIENT_SECRET}
    assert len(secrets) >= 6  # seeds, rotated refresh tokens, access tokens, the client secret
    assert "Connection failed (Canary OAuth)" in dict(seen)["GET /export/consumers.csv"]
    records = [r for r in caplog.records if not r.name.startswith(TARGET_SIDE_LOGGERS)]
    texts = [
        *seen,
        *((f"log {r.name}", r.getMessage() + repr(r.args) + str(r.exc_text)) for r in records),
    ]
    for where, text in texts:
        for secret in secrets:
            assert secret not in text, f"an OAuth2 secret leaked through {where}"
