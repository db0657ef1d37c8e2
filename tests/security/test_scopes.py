"""Token scopes beyond tests/graphql_schema/test_access.py: a read token changes nothing through
any mutation (fuzzed with real ids), only `createApiToken` (admin scope) mints a token through
the API and only its payload shows one, and /metrics keeps its own credential when one is
configured."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
from graphql import GraphQLObjectType
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from healthgraph.app import create_app
from healthgraph.settings import Settings
from store.crypto import generate_key
from store.domain import TokenScope
from tests.demo_server import Server
from tests.graphql_schema.test_access import EVERYTHING
from tests.security.conftest import Served
from tests.security.test_fuzz import SCHEMA, TYPE_SCHEMA, with_real_ids
from tests.servers import running

MUTATIONS = st.one_of(
    *(
        result.ok().as_strategy(mode)
        for result in SCHEMA.get_all_operations()
        if result.ok().label.startswith("Mutation.")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    )
)
DENIED = "this token cannot do that; it needs the write scope"


async def test_a_read_token_changes_nothing_whatever_mutation_it_sends(served: Served) -> None:
    admin = await served.token(TokenScope.ADMIN)
    reader = await served.token(TokenScope.READ)
    before = await served.execute(admin, EVERYTHING)
    loop = asyncio.get_running_loop()
    messages: list[str] = []
    answered: list[dict[str, Any]] = []
    transport = httpx.ASGITransport(app=served.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://scopes", headers={"Authorization": f"Bearer {reader}"}
    ) as client:

        @settings(
            max_examples=80,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=MUTATIONS, data=st.data())
        def one(case: Any, data: st.DataObject) -> None:
            document = with_real_ids(case.body, data.draw)
            send = client.post("/graphql", json={"query": document})
            response = asyncio.run_coroutine_threadsafe(send, loop).result(timeout=60)
            body = response.json()
            if any(value is not None for value in (body.get("data") or {}).values()):
                answered.append(body)
            messages.extend(error["message"] for error in body.get("errors") or [])

        await asyncio.to_thread(one)
    assert answered == []
    assert DENIED in messages  # the documents did get as far as the permission check
    assert "Unexpected error." not in messages
    assert await served.execute(admin, EVERYTHING) == before


def test_only_create_api_token_mints_or_reveals_a_token() -> None:
    # Below admin scope both are refused (tests/graphql_schema/test_api_tokens.py); no other
    # output field can return a token or its hash (CredentialsInput.token is write-only input).
    # The one other secret shown is a webhook endpoint's signing secret, in the payload of
    # the two mutations that make it (createWebhookEndpoint, rotateWebhookSecret).
    mutation = TYPE_SCHEMA.mutation_type
    assert mutation is not None
    assert sorted(name for name in mutation.fields if "token" in name.lower()) == [
        "createApiToken",
        "revokeApiToken",
    ]
    revealing = sorted(
        f"{type_name}.{field_name}"
        for type_name, graphql_type in TYPE_SCHEMA.type_map.items()
        if not type_name.startswith("__") and isinstance(graphql_type, GraphQLObjectType)
        for field_name in graphql_type.fields
        if field_name.lower() in ("token", "hash", "tokenhash", "secret", "grant")
    )
    assert revealing == ["CreateApiTokenPayload.token", "WebhookSecretPayload.secret"]
    assert sorted(
        name
        for name, field in mutation.fields.items()
        if getattr(field.type, "of_type", None) is TYPE_SCHEMA.type_map["WebhookSecretPayload"]
    ) == ["createWebhookEndpoint", "rotateWebhookSecret"]


async def test_metrics_keep_their_own_credential_through_the_app(database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        secret_keys=(generate_key(),),
        metrics_token="metrics-s3cret",
        anonymous_read=True,
    )
    app = create_app(settings)
    async with running(app) as base, httpx.AsyncClient(base_url=base) as client:
        api_admin = await Server(base, app.state.database).token(TokenScope.ADMIN)
        basic = base64.b64encode(b"prometheus:metrics-s3cret").decode()
        statuses = {}
        for name, header in (
            ("none", None),
            ("wrong bearer", "Bearer metrics-s3cre"),
            ("an API admin token", f"Bearer {api_admin}"),
            ("basic, wrong password", "Basic " + base64.b64encode(b"p:nope").decode()),
            ("bearer", "Bearer metrics-s3cret"),
            ("basic", f"Basic {basic}"),
        ):
            response = await client.get(
                "/metrics", headers={"Authorization": header} if header else {}
            )
            statuses[name] = response.status_code
            if response.status_code == 401:
                assert response.text == "unauthorized\n"
                assert response.headers["www-authenticate"] == "Bearer"
            else:
                assert "healthgraph_build_info" in response.text
        # Nor is the metrics credential an API token (anonymous reads are on: it must not
        # become a viewer either).
        graphql = await client.post(
            "/graphql",
            json={"query": "{ overview { consumers } }"},
            headers={"Authorization": "Bearer metrics-s3cret"},
        )
    assert statuses == {
        "none": 401,
        "wrong bearer": 401,
        "an API admin token": 401,
        "basic, wrong password": 401,
        "bearer": 200,
        "basic": 200,
    }
    assert graphql.status_code == 401
