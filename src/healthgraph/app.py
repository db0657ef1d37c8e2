"""The Starlette application: health endpoints now; GraphQL, /metrics and exports plug in here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute

from graphql_schema.context import Services
from healthgraph.catalog.apply import apply_catalog
from healthgraph.database import Database, connect, ensure_schema
from healthgraph.demo import demo_catalog
from healthgraph.demo.endpoints import demo_routes
from healthgraph.graphql_app import AccessPolicy, Authenticated, HealthgraphGraphQL
from healthgraph.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving; says nothing about its dependencies."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready ⇔ the database answers within READY_TIMEOUT_SECONDS."""
    database: Database = request.app.state.database
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        # The reason stays in the log: a probe endpoint never shows SQL or addresses.
        log.warning("readiness check failed: %s", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ready", "database": "ok"})


def create_app(settings: Settings, *, demo: bool = False) -> Starlette:
    """The app for `settings`; with `demo`, the demo catalog is applied at start-up and
    anonymous reads are allowed from this machine only."""
    database = connect(settings.database_url)
    services = Services()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await ensure_schema(database)
            if demo:
                await load_demo(database, settings)
            yield
        finally:
            await database.close()

    policy = AccessPolicy(anonymous_read=settings.anonymous_read, anonymous_read_loopback=demo)
    graphql = Authenticated(
        HealthgraphGraphQL(
            database, services, graphiql=settings.graphiql, introspection=settings.introspection
        ),
        database,
        policy,
    )
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
    ]
    if demo:
        routes += demo_routes()
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.database = database
    app.state.settings = settings
    return app


async def load_demo(database: Database, settings: Settings) -> None:
    base_url = f"http://{_url_host(settings.host)}:{settings.port}"
    async with database.sessions.begin() as session:
        report = await apply_catalog(session, demo_catalog(base_url), "demo catalog", None)
    log.info("demo catalog: %s", report.summary())


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - mapping a wildcard bind to a dialable address
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
