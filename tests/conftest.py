"""Fixtures shared by every test: a fresh database on each backend, and factories.

Every store test runs on SQLite and PostgreSQL. Without HEALTHGRAPH_TEST_POSTGRES_URL the
PostgreSQL half skips with a reason; with HEALTHGRAPH_REQUIRE_POSTGRES=1 (CI) it fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from healthgraph.app import create_app
from healthgraph.database import Database, open_database
from healthgraph.settings import Settings
from store.crypto import generate_key
from store.domain import TokenScope
from store.engine import create_engine
from store.migrate import upgrade_database
from tests.demo_server import Server
from tests.servers import free_port, running

POSTGRES_URL = os.environ.get("HEALTHGRAPH_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("HEALTHGRAPH_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgresql"]


_postgres_problem: list[str] = []


def _missing_postgres(reason: str) -> None:
    if REQUIRE_POSTGRES:
        pytest.fail(f"PostgreSQL is required (HEALTHGRAPH_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


async def postgres_admin_url() -> str:
    """The test server's URL; skips (or, in CI, fails) when there is none or it is down."""
    if not POSTGRES_URL:
        _missing_postgres("HEALTHGRAPH_TEST_POSTGRES_URL is not set (make test sets it)")
    if not _postgres_problem:
        try:
            connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=5)
            await connection.close()
            _postgres_problem.append("")
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            _postgres_problem.append(f"cannot connect to {POSTGRES_URL} ({type(exc).__name__})")
    if _postgres_problem[0]:
        _missing_postgres(_postgres_problem[0])
    return POSTGRES_URL


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_postgres_database() -> str:
    """A new, empty database on the test server; returns its URL."""
    admin = await postgres_admin_url()
    name = f"hg_test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(_asyncpg_dsn(admin))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    connection = await asyncpg.connect(_asyncpg_dsn(await postgres_admin_url()))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a new database with no schema, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'healthgraph.db'}"
        return
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture
async def database_url(empty_database_url: str) -> str:
    """The URL of a new database migrated to the newest schema."""
    engine = create_engine(empty_database_url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    return empty_database_url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_database(database_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HEALTHGRAPH_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("HEALTHGRAPH_") and not key.startswith("HEALTHGRAPH_TEST_"):
            monkeypatch.delenv(key)


@pytest.fixture
async def demo(database_url: str) -> AsyncIterator[Server]:
    """The demo catalog served on each backend. Tests send tokens even where loopback would
    not need one, so what they prove holds for remote clients too."""
    port = free_port()
    settings = Settings(database_url=database_url, port=port, secret_keys=(generate_key(),))
    app = create_app(settings, demo=True)
    async with running(app, port) as base_url:
        yield Server(base_url, app.state.database, app.state.services, app.state.demo_oauth)


@pytest.fixture
async def reader(demo: Server) -> str:
    return await demo.token(TokenScope.READ)
