"""A running demo server per test (SQLite and PostgreSQL), tokens, and a real `gql` client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport

from healthgraph.app import create_app
from healthgraph.database import Database
from healthgraph.settings import Settings
from store.crypto import generate_key
from store.domain import TokenScope
from store.tokens import create_token
from tests.servers import free_port, running

QUERIES = Path(__file__).resolve().parents[2] / "docs" / "queries"


@dataclass
class Server:
    base_url: str
    database: Database

    async def token(self, scope: TokenScope = TokenScope.READ, consumer: str | None = None) -> str:
        async with self.database.sessions.begin() as session:
            token, _ = await create_token(session, scope=scope, consumer_external_id=consumer)
        return token

    def client(self, token: str | None) -> Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = HTTPXAsyncTransport(url=f"{self.base_url}/graphql", headers=headers, timeout=30)
        return Client(transport=transport, fetch_schema_from_transport=False)

    async def execute(
        self, token: str | None, document: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        async with self.client(token) as session:
            request = GraphQLRequest(document, variable_values=variables)
            result: dict[str, Any] = await session.execute(request)
        return result


def view(name: str) -> str:
    """A seed view's GraphQL document from docs/queries."""
    return (QUERIES / f"{name}.graphql").read_text()


@pytest.fixture
async def demo(database_url: str) -> AsyncIterator[Server]:
    """The demo catalog served on each backend. Tests send tokens even where loopback would
    not need one, so what they prove holds for remote clients too."""
    port = free_port()
    settings = Settings(database_url=database_url, port=port, secret_keys=(generate_key(),))
    app = create_app(settings, demo=True)
    async with running(app, port) as base_url:
        yield Server(base_url, app.state.database)


@pytest.fixture
async def reader(demo: Server) -> str:
    return await demo.token(TokenScope.READ)
