"""Managing API tokens over GraphQL (admin scope), on a real app over HTTP, on both backends:
a token minted is shown once, listed without its secret, refused on every replica as soon as
it is revoked, and its last use is recorded without the request waiting for it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from healthgraph.app import create_app
from healthgraph.settings import Settings
from healthgraph.token_use import TokenUses
from store.domain import TokenScope
from store.engine import create_engine, session_factory
from store.models import ApiTokenRow
from store.tokens import hash_token
from tests.demo_server import Server
from tests.servers import running

TOKEN_FIELDS = "id name scope consumer { externalId } expiresAt revokedAt lastUsedAt createdAt"
LIST = f"""query($first: Int, $after: String) {{
  apiTokens(first: $first, after: $after) {{
    totalCount nodes {{ {TOKEN_FIELDS} }} pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
CREATE = f"""mutation($input: CreateApiTokenInput!) {{
  createApiToken(input: $input) {{ token apiToken {{ {TOKEN_FIELDS} }} }}
}}"""
REVOKE = f"mutation($id: ID!) {{ revokeApiToken(id: $id) {{ {TOKEN_FIELDS} }} }}"
OVERVIEW = "{ overview { consumers } }"


async def post(
    base_url: str, token: str, query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url) as client:
        return await client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )


async def data(base_url: str, token: str, query: str, **variables: Any) -> dict[str, Any]:
    response = await post(base_url, token, query, variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]


async def errors(base_url: str, token: str, query: str, **variables: Any) -> list[Any]:
    response = await post(base_url, token, query, variables)
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()["errors"]
    return [(e["message"], e.get("extensions")) for e in found]


async def consumer_id(demo: Server, admin: str, external_id: str) -> str:
    found = await data(
        demo.base_url,
        admin,
        "query($s: String) { consumers(search: $s) { nodes { id externalId } } }",
        s=external_id,
    )
    return next(n["id"] for n in found["consumers"]["nodes"] if n["externalId"] == external_id)


async def test_an_admin_mints_lists_and_revokes_and_every_replica_refuses_at_once(
    demo: Server, database_url: str
) -> None:
    admin = await demo.token(TokenScope.ADMIN)
    acme = await consumer_id(demo, admin, "acme-corp")
    created = (
        await data(
            demo.base_url,
            admin,
            CREATE,
            input={"scope": "READ", "consumerId": acme, "name": "acme board", "expiresInDays": 30},
        )
    )["createApiToken"]
    token = created["token"]
    assert token.startswith("hg_")
    minted = created["apiToken"]
    assert {k: v for k, v in minted.items() if k not in ("id", "createdAt", "expiresAt")} == {
        "name": "acme board",
        "scope": "READ",
        "consumer": {"externalId": "acme-corp"},
        "revokedAt": None,
        "lastUsedAt": None,
    }
    assert minted["expiresAt"] > minted["createdAt"]
    # The new token works, limited to its consumer.
    assert await data(demo.base_url, token, OVERVIEW) == {"overview": {"consumers": 1}}

    listed = (await data(demo.base_url, admin, LIST, first=500))["apiTokens"]
    assert listed["totalCount"] == 2
    assert [n["name"] for n in listed["nodes"]] == ["", "acme board"]
    mine = next(n for n in listed["nodes"] if n["id"] == minted["id"])
    assert {k: v for k, v in mine.items() if k != "lastUsedAt"} == {
        k: v for k, v in minted.items() if k != "lastUsedAt"
    }
    async with httpx.AsyncClient(base_url=demo.base_url) as client:
        page = await client.post(
            "/graphql",
            json={"query": LIST},
            headers={"Authorization": f"Bearer {admin}"},
        )
    assert token not in page.text and hash_token(token) not in page.text

    # A second replica on the same database: it hears of the revoke from the database alone.
    other = create_app(Settings(database_url=database_url, anonymous_read=False))
    async with running(other) as replica:
        assert (await post(replica, token, OVERVIEW)).status_code == 200
        revoked = (await data(demo.base_url, admin, REVOKE, id=minted["id"]))["revokeApiToken"]
        assert revoked["revokedAt"] is not None
        for base_url in (demo.base_url, replica):
            refused = await post(base_url, token, OVERVIEW)
            assert refused.status_code == 401, base_url
    again = (await data(demo.base_url, admin, REVOKE, id=minted["id"]))["revokeApiToken"]
    assert again["revokedAt"] == revoked["revokedAt"]


async def test_only_admins_and_only_within_their_consumer(demo: Server) -> None:
    admin = await demo.token(TokenScope.ADMIN)
    acme = await consumer_id(demo, admin, "acme-corp")
    globex = await consumer_id(demo, admin, "globex")
    acme_admin = await demo.token(TokenScope.ADMIN, consumer="acme-corp")
    globex_reader = (
        await data(demo.base_url, admin, CREATE, input={"scope": "READ", "consumerId": globex})
    )["createApiToken"]["apiToken"]

    for scope in (TokenScope.READ, TokenScope.WRITE):
        weaker = await demo.token(scope)
        needed = "this token cannot do that; it needs the admin scope"
        assert await errors(demo.base_url, weaker, LIST) == [(needed, None)]
        assert await errors(demo.base_url, weaker, CREATE, input={"scope": "READ"}) == [
            (needed, None)
        ]
        assert await errors(demo.base_url, weaker, REVOKE, id=globex_reader["id"]) == [
            (needed, None)
        ]

    # acme's admin: its own tokens only; what it mints is acme's too.
    own = (await data(demo.base_url, acme_admin, CREATE, input={"scope": "WRITE"}))[
        "createApiToken"
    ]["apiToken"]
    assert own["consumer"] == {"externalId": "acme-corp"}
    listed = (await data(demo.base_url, acme_admin, LIST))["apiTokens"]
    assert {n["consumer"]["externalId"] for n in listed["nodes"]} == {"acme-corp"}
    assert listed["totalCount"] == 2  # itself and the one it minted
    assert await errors(demo.base_url, acme_admin, REVOKE, id=globex_reader["id"]) == [
        (f"ApiToken {globex_reader['id']!r} does not exist", None)
    ]
    assert await errors(
        demo.base_url, acme_admin, CREATE, input={"scope": "READ", "consumerId": globex}
    ) == [(f"Consumer {globex!r} does not exist", None)]
    assert (
        await data(demo.base_url, acme_admin, CREATE, input={"scope": "READ", "consumerId": acme})
    )["createApiToken"]["apiToken"]["consumer"] == {"externalId": "acme-corp"}
    # The globex token is untouched.
    listed = (await data(demo.base_url, admin, LIST))["apiTokens"]["nodes"]
    assert next(n for n in listed if n["id"] == globex_reader["id"])["revokedAt"] is None


async def test_bad_input_is_named_and_changes_nothing(demo: Server) -> None:
    admin = await demo.token(TokenScope.ADMIN)
    before = (await data(demo.base_url, admin, LIST))["apiTokens"]["totalCount"]
    for bad, expected in (
        (
            {"scope": "READ", "expiresInDays": 0},
            ("input.expiresInDays: 0 is out of range; use 1..3650", "input.expiresInDays"),
        ),
        (
            {"scope": "READ", "name": "n" * 201},
            ("input.name: longer than 200 characters", "input.name"),
        ),
    ):
        message, field = expected
        assert await errors(demo.base_url, admin, CREATE, input=bad) == [
            (message, {"code": "BAD_USER_INPUT", "field": field})
        ]
    connection_id = "Q29ubmVjdGlvbjox"  # Connection:1, not a consumer
    assert await errors(
        demo.base_url, admin, CREATE, input={"scope": "READ", "consumerId": connection_id}
    ) == [(f"id {connection_id!r} is not a Consumer id", None)]
    assert await errors(demo.base_url, admin, REVOKE, id="QXBpVG9rZW46OTk5OTk5") == [
        ("ApiToken 'QXBpVG9rZW46OTk5OTk5' does not exist", None)
    ]
    assert (await data(demo.base_url, admin, LIST))["apiTokens"]["totalCount"] == before


async def last_used(demo: Server, token: str) -> Any:
    async with demo.database.sessions() as session:
        return await session.scalar(
            select(ApiTokenRow.last_used_at).where(ApiTokenRow.token_hash == hash_token(token))
        )


async def test_last_use_is_recorded_once_a_minute(demo: Server) -> None:
    reader = await demo.token(TokenScope.READ)
    assert await last_used(demo, reader) is None
    assert (await post(demo.base_url, reader, OVERVIEW)).status_code == 200
    async with asyncio.timeout(10):
        while (first := await last_used(demo, reader)) is None:  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.05)
    for _ in range(3):
        assert (await post(demo.base_url, reader, OVERVIEW)).status_code == 200
    await asyncio.sleep(0.3)
    assert await last_used(demo, reader) == first


async def test_a_failed_write_is_logged_and_never_raised(
    caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/no/such/folder/hg.db")
    uses = TokenUses(session_factory(engine))
    try:
        with caplog.at_level(logging.WARNING, logger="healthgraph.token_use"):
            assert uses.note(7) is True
            assert uses.note(7) is False  # within the minute: no second write
            await uses.close()
    finally:
        await engine.dispose()
    assert [r.getMessage() for r in caplog.records] == [
        "could not record when API token 7 was last used (OperationalError)"
    ]
    assert uses.note(7) is True  # the failed write is tried again at the next use
    await uses.close()
