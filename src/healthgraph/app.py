"""The Starlette application: health, GraphQL, exports, push endpoints, the consumer and sync
pages."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute, request_response

from exporter import SelfMetrics, StoreCollector, metrics_endpoint, service_registry
from graphql_schema.context import Services
from graphql_schema.errors import ClientError
from graphql_schema.links import LinkSigner
from healthgraph.catalog.apply import apply_catalog
from healthgraph.consumer_page import consumer_page
from healthgraph.csv_export import consumers_csv
from healthgraph.database import Database, connect, ensure_schema
from healthgraph.demo import activity, demo_catalog, demo_environ, without_secrets
from healthgraph.demo.endpoints import demo_routes
from healthgraph.demo.oauth import DemoOAuthProvider
from healthgraph.errors import SettingsError
from healthgraph.graphiql import graphiql_assets
from healthgraph.graphql_app import AccessPolicy, Authenticated, HealthgraphGraphQL
from healthgraph.limits import (
    MAX_GRAPHQL_BODY_BYTES,
    MAX_PUSH_BODY_BYTES,
    BodySizeLimit,
    JsonObjectBody,
    push_error,
)
from healthgraph.push import inbound_heartbeat, use_run
from healthgraph.runtime import RuntimeTuning
from healthgraph.settings import Settings
from healthgraph.sync_page import sync_page
from healthgraph.token_use import TokenUses
from healthgraph.worker import run_event_loop, run_worker
from probes.guard import AddressGuard
from probes.target import ProbeContext
from probes.token_broker import TokenBroker
from store.crypto import KeyRing
from store.domain import StatusChange
from store.events import broadcaster_for

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0
LOOPBACK = ("127.0.0.0/8", "::1/128")


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


def create_app(settings: Settings, *, demo: bool = False, scheduler: bool = False) -> Starlette:
    """The app for `settings`.

    `scheduler`: also run the heartbeat scheduler in this process (`healthgraph serve`).
    `demo`: apply the demo catalog at start-up, let its heartbeats reach this server on
    loopback, and allow anonymous reads from this machine only.
    """
    if demo:
        # The demo's heartbeats call this very server on loopback.
        settings = replace(settings, allow_targets=(*settings.allow_targets, *LOOPBACK))
    database = connect(settings.database_url)
    services = _services(settings)
    provider = DemoOAuthProvider()
    registry = service_registry()
    self_metrics = SelfMetrics(registry)
    services.check_observer = self_metrics
    tuning = RuntimeTuning(settings.runtime_tuning)
    uses = TokenUses(database.sessions)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await ensure_schema(database)
            if demo:
                await load_demo(database, settings, services.credentials_key_ring, provider)
            await services.broadcaster.start()
            async with ProbeContext.create(allow=settings.allow_targets) as probe_context:
                services.probe_context = probe_context
                if services.credentials_key_ring is not None:
                    services.token_broker = TokenBroker(
                        database.sessions, services.credentials_key_ring, observer=self_metrics
                    )
                async with contextlib.AsyncExitStack() as running:
                    if scheduler:
                        await running.enter_async_context(
                            _scheduler_running(settings, services, self_metrics, tuning)
                        )
                    if demo and scheduler:
                        # The remote sides act only when the service runs checks too, so a
                        # demo without the scheduler (the tests') stays as the catalog says.
                        await running.enter_async_context(
                            _demo_activity(database, services, provider)
                        )
                    tuning.started()
                    try:
                        yield
                    finally:
                        tuning.stopped()
        finally:
            await services.broadcaster.stop()
            await uses.close()
            await database.close()

    policy = AccessPolicy(anonymous_read=settings.anonymous_read, anonymous_read_loopback=demo)
    # Limits first: an oversized body is refused before authentication reads the database.
    graphql = BodySizeLimit(
        Authenticated(
            JsonObjectBody(
                HealthgraphGraphQL(
                    database,
                    services,
                    graphiql=settings.graphiql,
                    introspection=settings.introspection,
                )
            ),
            database,
            policy,
            uses,
        ),
        MAX_GRAPHQL_BODY_BYTES,
    )
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route(
            "/metrics",
            metrics_endpoint(
                store=StoreCollector(database.sessions),
                registry=registry,
                token=settings.metrics_token,
            ),
            methods=["GET"],
        ),
        Route("/consumers/{external_id}", consumer_page),
        Route("/consumers/{external_id}/syncs/{activation_id:int}", sync_page),
        Route(
            "/export/consumers.csv",
            Authenticated(request_response(consumers_csv), database, policy, uses),
            methods=["GET"],
        ),
        Route(
            "/push/heartbeat/{id}",
            BodySizeLimit(
                Authenticated(request_response(inbound_heartbeat), database, policy, uses),
                MAX_PUSH_BODY_BYTES,
                push_error,
            ),
            methods=["POST"],
        ),
        Route(
            "/push/use-run/{id}",
            BodySizeLimit(
                Authenticated(request_response(use_run), database, policy, uses),
                MAX_PUSH_BODY_BYTES,
                push_error,
            ),
            methods=["POST"],
        ),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
    ]
    if settings.graphiql:
        routes.append(graphiql_assets())
    if demo:
        routes += demo_routes() + provider.routes()
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.database = database
    app.state.settings = settings
    app.state.services = services
    app.state.demo_oauth = provider if demo else None  # the demo's provider, for its tests
    return app


@asynccontextmanager
async def _demo_activity(
    database: Database, services: Services, provider: DemoOAuthProvider
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(activity.simulate(database, services.broadcaster, stop, provider))
    try:
        yield
    finally:
        stop.set()
        await task


@asynccontextmanager
async def _scheduler_running(
    settings: Settings, services: Services, observer: SelfMetrics, tuning: RuntimeTuning
) -> AsyncIterator[None]:
    """The worker role inside this process, on its own thread and event loop, stopped (claims
    released) when the app stops.

    Its own loop because GraphQL requests are CPU work: on the API's loop, 50 busy clients
    kept the scheduler's claims and writes waiting their turn behind every request (lag p99
    8 s at 10k connections, bench/load_bench.py). On a thread it gets the interpreter every
    few milliseconds whatever the API is doing, and its probes can go to probe processes.
    """
    api_loop = asyncio.get_running_loop()
    started: concurrent.futures.Future[None] = concurrent.futures.Future()
    stopping: concurrent.futures.Future[Callable[[], object]] = concurrent.futures.Future()

    async def publish(changes: list[StatusChange]) -> None:
        # Subscribers live on the API's loop: hand the ids over to it.
        ids = [change.connection_id for change in changes]
        future = asyncio.run_coroutine_threadsafe(services.broadcaster.publish(ids), api_loop)
        await asyncio.wrap_future(future)

    @asynccontextmanager
    async def say_started() -> AsyncIterator[None]:
        started.set_result(None)  # this process holds the worker role (the SQLite lock)
        yield

    async def scheduler() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        stopping.set_result(lambda: loop.call_soon_threadsafe(stop.set))
        await run_worker(
            settings,
            stop,
            on_changes=publish,
            observer=observer,
            alongside=say_started(),
        )

    def run() -> None:
        try:
            run_event_loop(scheduler())
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)  # e.g. WorkerLockedError: reported by start-up
            else:
                log.exception("the heartbeat scheduler stopped")

    with tuning.scheduler_thread():
        thread = threading.Thread(target=run, name="healthgraph-scheduler", daemon=True)
        thread.start()
        await asyncio.wrap_future(started)
        try:
            yield
        finally:
            stop = await asyncio.wrap_future(stopping)
            # It may have stopped on its own (logged above), its loop closed.
            with contextlib.suppress(RuntimeError):
                stop()
            await asyncio.to_thread(thread.join)


def _services(settings: Settings) -> Services:
    try:
        key_ring: KeyRing | None = settings.key_ring()
    except SettingsError as exc:
        # PostgreSQL without HEALTHGRAPH_SECRET_KEYS: reads work; credentials and links say why not.
        log.warning("%s; credentials and consumer links are unavailable", exc)
        key_ring = None

    def ring() -> KeyRing:
        if key_ring is None:
            raise ClientError("credentials cannot be stored: set HEALTHGRAPH_SECRET_KEYS")
        return key_ring

    return Services(
        guard=AddressGuard(settings.allow_targets),
        key_ring=ring,
        credentials_key_ring=key_ring,
        link_signer=LinkSigner(key_ring.derive("consumer-links")) if key_ring else None,
        public_url=settings.base_url,
        broadcaster=broadcaster_for(settings.database_url),
    )


async def load_demo(
    database: Database,
    settings: Settings,
    key_ring: KeyRing | None,
    provider: DemoOAuthProvider,
) -> None:
    """Apply the demo catalog; its OAuth2 connections get fresh grants of `provider` (left out,
    said in the log, when no key ring can encrypt them)."""
    spec = demo_catalog(settings.base_url)
    if key_ring is None:
        log.warning(
            "demo: OAuth2 connections left out: no credential key (HEALTHGRAPH_SECRET_KEYS)"
        )
        spec = without_secrets(spec)
    async with database.sessions.begin() as session:
        report = await apply_catalog(
            session,
            spec,
            "demo catalog",
            key_ring,
            outbound=AddressGuard(settings.allow_targets),
            environ=demo_environ(provider),
        )
    log.info("demo catalog: %s", report.summary())
