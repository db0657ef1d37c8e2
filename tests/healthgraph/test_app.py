"""The app under a real uvicorn: liveness, readiness, and the demo's targets."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from healthgraph.app import create_app
from healthgraph.settings import Settings
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.servers import free_port, running


async def test_healthz_and_readyz_on_embedded_sqlite(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/hg.db")
    async with running(create_app(settings)) as base, httpx.AsyncClient(base_url=base) as client:
        healthz = await client.get("/healthz")
        readyz = await client.get("/readyz")
    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
    assert (readyz.status_code, readyz.json()) == (200, {"status": "ready", "database": "ok"})
    assert (tmp_path / "hg.db").exists()


async def test_readyz_turns_503_when_the_database_goes_away() -> None:
    url = await create_postgres_database()
    dropped = False
    try:
        from store.engine import create_engine
        from store.migrate import upgrade_database

        engine = create_engine(url)
        await upgrade_database(engine)
        await engine.dispose()
        async with (
            running(create_app(Settings(database_url=url))) as base,
            httpx.AsyncClient(base_url=base) as client,
        ):
            assert (await client.get("/readyz")).status_code == 200
            await drop_postgres_database(url)
            dropped = True
            readyz = await client.get("/readyz")
            healthz = await client.get("/healthz")
    finally:
        if not dropped:
            await drop_postgres_database(url)
    assert (readyz.status_code, readyz.json()) == (
        503,
        {"status": "unavailable", "database": "unreachable"},
    )
    assert healthz.status_code == 200


async def test_demo_serves_its_targets_and_loads_its_catalog(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(database_url=f"sqlite:///{tmp_path}/demo.db", port=port)
    app = create_app(settings, demo=True)
    async with running(app, port) as base, httpx.AsyncClient(base_url=base) as client:
        statuses = {
            name: (await client.get(f"/demo/{name}/acme")).status_code
            for name in ("healthy", "failing", "unauthorized")
        }
        flapping = (await client.get("/demo/flapping/acme")).status_code
        no_client = await client.post("/demo/oauth/token", data={"grant_type": "refresh_token"})
        from store import queries

        async with app.state.database.sessions() as session:
            overview = await queries.overview(session)
    assert statuses == {"healthy": 200, "failing": 500, "unauthorized": 401}
    assert flapping in (200, 503)
    assert (no_client.status_code, no_client.json()) == (
        401,
        {"error": "invalid_client", "error_description": "client authentication failed"},
    )
    # The OAuth2 connector and four connections through the demo's provider: the SQLite file's
    # generated key can encrypt their grants.
    assert (overview.consumers, len(overview.connectors), len(overview.syncs)) == (25, 9, 3)
    assert (
        overview.active_connections + overview.pending_connections + overview.failed_connections
        == 54
    )


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_demo_targets_answer_head_and_get(tmp_path: Path, method: str) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/demo.db")
    async with (
        running(create_app(settings, demo=True)) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        response = await client.request(method, "/demo/healthy")
    assert response.status_code == 200
