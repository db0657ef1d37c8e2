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
from starlette.routing import Route

from healthgraph.catalog.apply import apply_catalog
from healthgraph.database import Database, open_database
from healthgraph.demo import demo_catalog
from healthgraph.demo.endpoints import demo_routes
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
    """The app for `settings`; with `demo`, the demo catalog is applied at start-up."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = await open_database(settings.database_url)
        app.state.database = database
        app.state.settings = settings
        try:
            if demo:
                await load_demo(database, settings)
            yield
        finally:
            await database.close()

    routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
    if demo:
        routes += demo_routes()
    return Starlette(routes=routes, lifespan=lifespan)


async def load_demo(database: Database, settings: Settings) -> None:
    base_url = f"http://{_url_host(settings.host)}:{settings.port}"
    async with database.sessions.begin() as session:
        report = await apply_catalog(session, demo_catalog(base_url), "demo catalog", None)
    log.info("demo catalog: %s", report.summary())


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - mapping a wildcard bind to a dialable address
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
