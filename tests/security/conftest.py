"""Fixtures for the security tests: a served demo whose app object is reachable too (for the
ASGI half of the fuzz), and the probe tests' network audit, so no test here ever reaches
anything but loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette

from healthgraph.app import create_app
from healthgraph.settings import Settings
from store.crypto import generate_key
from tests.demo_server import Server
from tests.probes.conftest import (  # noqa: F401
    closed_port,
    http_server,
    network_log,
    only_loopback_traffic,
)
from tests.servers import free_port, running


@dataclass
class Served(Server):
    app: Starlette | None = None
    database_url: str = ""


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    """The demo catalog behind a real uvicorn on loopback, with its Starlette app at hand."""
    port = free_port()
    settings = Settings(database_url=database_url, port=port, secret_keys=(generate_key(),))
    app = create_app(settings, demo=True)
    async with running(app, port) as base_url:
        yield Served(base_url, app.state.database, app=app, database_url=database_url)
