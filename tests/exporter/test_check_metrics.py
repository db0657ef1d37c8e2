"""`promtool check metrics` on a real scrape of the demo (scheduler running): it reports nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from healthgraph.app import create_app
from healthgraph.settings import Settings
from store.crypto import generate_key
from tests.exporter.tools import promtool, run
from tests.servers import free_port, running

SETTLE_SECONDS = 30.0


@pytest.fixture
async def demo_metrics(database_url: str) -> AsyncIterator[str]:
    """The demo with its scheduler, /metrics in front; yields the scrape URL once both healthy
    and failing connections have been checked."""
    port = free_port()
    settings = Settings(database_url=database_url, port=port, secret_keys=(generate_key(),))
    app = create_app(settings, demo=True, scheduler=True)
    async with running(app, port) as base_url, httpx.AsyncClient(timeout=30) as client:
        url = f"{base_url}/metrics"
        async with asyncio.timeout(SETTLE_SECONDS):
            while True:
                text = (await client.get(url)).text
                up = next(
                    family
                    for family in text_string_to_metric_families(text)
                    if family.name == "healthgraph_connection_up"
                )
                if {sample.value for sample in up.samples} == {0.0, 1.0}:
                    break
                await asyncio.sleep(0.5)
        yield url


async def test_promtool_check_metrics_reports_nothing(demo_metrics: str) -> None:
    tool = promtool()
    async with httpx.AsyncClient(timeout=30) as client:
        # As Prometheus scrapes: gzip on the wire.
        response = await client.get(demo_metrics, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    body = response.content  # httpx has decoded it
    families = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {"healthgraph_connection_failure_reason", "healthgraph_use_up"} <= families

    result = run([tool, "check", "metrics"], stdin=body)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == ""
