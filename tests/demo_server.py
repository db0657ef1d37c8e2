"""A running demo server, tokens for it, and a real `gql` client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport

from graphql_schema.context import Services
from healthgraph.database import Database
from healthgraph.demo.oauth import DemoOAuthProvider
from store.domain import TokenScope
from store.tokens import create_token

QUERIES = Path(__file__).resolve().parents[1] / "docs" / "queries"


@dataclass
class Server:
    base_url: str
    database: Database
    services: Services | None = None  # the app's, where the test started the app itself
    demo_oauth: DemoOAuthProvider | None = None  # the demo's own OAuth2 provider

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
