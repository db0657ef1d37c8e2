"""GraphQL over HTTP and graphql-transport-ws at /graphql, behind bearer-token authentication."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from cross_web import HTTPException
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from graphql_schema.context import GraphQLContext, Services, Viewer
from graphql_schema.schema import build_schema
from healthgraph.database import Database
from healthgraph.graphiql import graphiql_page
from healthgraph.graphql_media import GRAPHQL_RESPONSE_JSON, Outcome, outcome, response_media_type
from healthgraph.token_use import TokenUses
from store import tokens
from store.domain import TokenScope

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
_DATABASE_DOWN = (SQLAlchemyError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    anonymous_read: bool = False
    # The demo: anonymous reads for the machine's own browser, never for the network.
    anonymous_read_loopback: bool = False


def _is_loopback(connection: HTTPConnection) -> bool:
    host = connection.client.host if connection.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def resolve_viewer(
    connection: HTTPConnection,
    database: Database,
    policy: AccessPolicy,
    uses: TokenUses | None = None,
) -> Viewer | None:
    """The viewer a request authenticates as; None when it may not come in.

    The token is looked up on every request (no cache), so a revoked one is refused from the
    next request on, by every replica. `uses` hears of each token let in."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not token:
            return None
        async with database.sessions() as session:
            grant = await tokens.authenticate(session, token.strip())
        if grant is None:
            return None
        if uses is not None:
            uses.note(grant.token_id)
        return Viewer(scope=grant.scope, consumer_id=grant.consumer_id)
    if policy.anonymous_read or (policy.anonymous_read_loopback and _is_loopback(connection)):
        return Viewer(scope=TokenScope.READ, anonymous=True)
    return None


class HealthgraphGraphQL(GraphQL[GraphQLContext, None]):
    def __init__(
        self, database: Database, services: Services, *, graphiql: bool, introspection: bool
    ) -> None:
        super().__init__(
            build_schema(introspection=introspection),
            graphql_ide="graphiql" if graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.database = database
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        media_type = response_media_type(request.headers.get("accept"))
        # Strawberry answers a request it cannot run (no query, a mutation over GET, ...) in
        # plain text; GraphQL clients read errors from JSON, so the same message comes as JSON.
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = JSONResponse(
                {"errors": [{"message": exc.reason}]}, exc.status_code, media_type=media_type
            )
        result: Outcome | None = getattr(request.state, "graphql_outcome", None)
        if result is not None and media_type == GRAPHQL_RESPONSE_JSON:
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
            response.status_code = result.value
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from this package's own files (strawberry's page loads them from a CDN)."""
        return graphiql_page()

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """The response body of `result`; under graphql-response+json, one that never reached
        execution has no `data` entry (and its status, set in `__call__`, says why)."""
        body = await super().process_result(request, result)
        request.state.graphql_outcome = reached = outcome(result)
        if reached is not Outcome.EXECUTED and (
            response_media_type(request.headers.get("accept")) == GRAPHQL_RESPONSE_JSON
        ):
            body.pop("data", None)
        return body

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GraphQLContext:
        viewer: Viewer = request.scope["state"]["viewer"]
        return GraphQLContext(self.database.sessions, viewer, self.services)


class Authenticated:
    """Let a request reach `app` only with a viewer; refuse it with 401 otherwise."""

    def __init__(
        self,
        app: ASGIApp,
        database: Database,
        policy: AccessPolicy,
        uses: TokenUses | None = None,
    ) -> None:
        self.app = app
        self.database = database
        self.policy = policy
        self.uses = uses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        if (
            scope["type"] == "http"
            and connection.url.path.endswith("/graphql")
            and (scope["method"] == "GET" and "query" not in connection.query_params)
        ):
            # GraphiQL's page itself holds no data; its queries are authenticated like any.
            scope.setdefault("state", {})["viewer"] = Viewer(anonymous=True)
            await self.app(scope, receive, send)
            return
        try:
            viewer = await resolve_viewer(connection, self.database, self.policy, self.uses)
        except _DATABASE_DOWN as exc:
            # Tokens live in the database: without it nobody can be let in, and the client
            # should hear that it is a passing outage, not a bug (a bare 500).
            log.warning(
                "cannot check a token: the database is unavailable (%s)", type(exc).__name__
            )
            if scope["type"] == "websocket":
                await WebSocket(scope, receive, send).close(code=1013, reason="Try again later")
                return
            unavailable = JSONResponse(
                {"errors": [{"message": "the database is unavailable; try again shortly"}]},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await unavailable(scope, receive, send)
            return
        if viewer is None:
            if scope["type"] == "websocket":
                await WebSocket(scope, receive, send).close(code=4401, reason="Unauthorized")
                return
            response = JSONResponse(
                {
                    "errors": [
                        {"message": "authentication required: send Authorization: Bearer <token>"}
                    ]
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="healthgraph"'},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["viewer"] = viewer
        await self.app(scope, receive, send)
