"""`/metrics` over HTTP: content type, gzip when asked, bearer and basic auth, store failures."""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route

from exporter import (
    SelfMetrics,
    StoreCollector,
    metrics_app,
    metrics_endpoint,
    service_registry,
    serving,
)
from exporter.endpoint import accepts_gzip, authorized
from healthgraph.database import Database, connect
from tests.exporter.graph import NOW, known_graph
from tests.servers import free_port

TOKEN = "metrics-t0ken"


def app_for(db: Database, *, token: str | None = None) -> Starlette:
    registry = service_registry()
    SelfMetrics(registry, version="1.2.3")
    collector = StoreCollector(db.sessions, clock=lambda: NOW)
    endpoint = metrics_endpoint(store=collector, registry=registry, token=token)
    return Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])


@pytest.fixture
async def client(sqlite_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    await known_graph(sqlite_db)
    transport = httpx.ASGITransport(app=app_for(sqlite_db))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_serves_store_and_self_metrics_as_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "content-encoding" not in response.headers
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "healthgraph_connection_up",
        "healthgraph_scheduler_lag_seconds",
        "healthgraph_checks",  # the parser drops _total from a counter's family name
        "healthgraph_probe_duration_seconds",
        "healthgraph_build_info",
        "process_cpu_seconds",
    } <= names
    assert 'healthgraph_build_info{version="1.2.3"} 1.0' in response.text


async def test_gzip_when_the_client_asks(client: httpx.AsyncClient) -> None:
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    async with client.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    # Streamed: chunked, without a Content-Length (the body is never whole on the server).
    assert "content-length" not in response.headers
    assert len(raw) < len(plain.content) / 3
    unzipped = gzip.decompress(raw)
    # Same document but for the process metrics, which move between two requests.
    assert _store_part(unzipped) == _store_part(plain.content)


def _store_part(body: bytes) -> list[object]:
    return [
        family
        for family in text_string_to_metric_families(body.decode())
        if not family.name.startswith(("process_", "python_"))
    ]


async def test_head_is_answered(client: httpx.AsyncClient) -> None:
    response = await client.head("/metrics")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        (f"Bearer {TOKEN}x", 401),
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),
        ("Basic " + base64.b64encode(f"prometheus:{TOKEN}".encode()).decode(), 200),
        ("Basic " + base64.b64encode(b"prometheus:wrong").decode(), 401),
        ("Basic " + base64.b64encode(TOKEN.encode()).decode(), 401),  # no colon
        ("Basic not-base64!", 401),
        (f"Token {TOKEN}", 401),
    ],
)
async def test_token_required_when_configured(
    sqlite_db: Database, header: str | None, status: int
) -> None:
    transport = httpx.ASGITransport(app=app_for(sqlite_db, token=TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {"Authorization": header} if header else {}
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert "healthgraph_" not in response.text


async def test_unreadable_store_is_a_503_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on this port: the store cannot be read.
    database = connect(f"postgresql://healthgraph:pw-s3cret@127.0.0.1:{free_port()}/nowhere")
    try:
        app = metrics_app(store=StoreCollector(database.sessions))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/metrics")
    finally:
        await database.close()
    assert response.status_code == 503
    assert response.text == "the store cannot be read\n"
    assert "pw-s3cret" not in caplog.text


async def test_self_metrics_port() -> None:
    """The worker's own port: metrics_app served by `serving` on loopback."""
    registry = CollectorRegistry()
    SelfMetrics(registry, version="9.9.9")
    port = free_port()
    async with (
        serving(metrics_app(registry=registry), "127.0.0.1", port),
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
        missing = await client.get(f"http://127.0.0.1:{port}/other")
    assert response.status_code == 200
    assert 'healthgraph_build_info{version="9.9.9"} 1.0' in response.text
    assert missing.status_code == 404


async def test_self_metrics_port_taken_raises() -> None:
    port = free_port()
    async with serving(metrics_app(registry=CollectorRegistry()), "127.0.0.1", port):
        with pytest.raises(OSError, match="in use"):
            async with serving(metrics_app(registry=CollectorRegistry()), "127.0.0.1", port):
                pass


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, gzip;q=0.5", True),
        ("GZIP", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("*", True),
        ("*;q=0", False),
        ("identity", False),
        ("", False),
        ("br, *;q=0.1", True),
        ("gzip;q=0, *", False),
        ("gzip;q=bogus", False),
    ],
)
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_authorized_compares_the_whole_token() -> None:
    assert authorized(f"Bearer {TOKEN}", TOKEN.encode())
    assert not authorized(f"Bearer {TOKEN[:-1]}", TOKEN.encode())
    assert not authorized("Bearer ", TOKEN.encode())
    assert not authorized(None, TOKEN.encode())
