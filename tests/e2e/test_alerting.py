"""End to end: a flipping heartbeat target pages through the real Prometheus and Alertmanager.

The service (SQLite, scheduler on, 1 s check interval, /metrics in front) checks a local
target; Prometheus scrapes it every second with the shipped rules (only `for:` shortened)
and sends to Alertmanager (the shipped routing, timings shortened), which posts to a local
webhook receiver. Target fails -> HealthgraphConnectionDown fires and is paged with the
connection, connector and consumer; target recovers -> the resolved notification arrives;
service stops -> HealthgraphExporterDown fires.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from healthgraph.app import create_app
from healthgraph.catalog.apply import apply_catalog
from healthgraph.catalog.spec import parse_catalog
from healthgraph.database import open_database
from healthgraph.settings import Settings
from tests.e2e.stack import (
    LOOPBACK,
    Flip,
    Webhook,
    alertmanager_config,
    http_server,
    process,
    prometheus_config,
    shortened_rules,
    wait_alert,
    wait_query,
)
from tests.exporter.tools import RULES, alertmanager, prometheus
from tests.outbound import LOOPBACK_OUTBOUND
from tests.servers import free_port, running

pytestmark = pytest.mark.e2e

STEP_SECONDS = 20.0  # each transition; in practice 2-5 s

CATALOG = """
connectors:
  - slug: flaky
    name: Flaky API
    category: accounting
    heartbeat: {{kind: http, method: GET, url: "{target}/health", expected_status: [200],
                timeout_seconds: 2}}
consumers:
  - external_id: acme
    name: Acme Corp
    connections:
      - name: Acme Flaky
        connector: flaky
        state: active
        check_interval_seconds: 1
"""

IDENTITY = {"connection": "Acme Flaky", "connector": "Flaky API", "consumer": "Acme Corp"}


def down_alert(body: dict[str, Any], status: str) -> bool:
    return body["status"] == status and any(
        alert["labels"]["alertname"] == "HealthgraphConnectionDown" for alert in body["alerts"]
    )


async def test_connection_down_pages_and_resolves_then_exporter_down(tmp_path: Path) -> None:
    prometheus_bin, alertmanager_bin = prometheus(), alertmanager()
    flip, webhook = Flip(), Webhook()
    async with (
        http_server([web.get("/health", flip.handle)]) as target,
        http_server([web.post("/hook/{receiver}", webhook.handle)]) as hook,
    ):
        database_url = f"sqlite:///{tmp_path / 'healthgraph.db'}"
        database = await open_database(database_url)
        try:
            async with database.sessions.begin() as session:
                spec = parse_catalog(CATALOG.format(target=target), "e2e catalog")
                await apply_catalog(session, spec, "e2e catalog", None, outbound=LOOPBACK_OUTBOUND)
        finally:
            await database.close()

        app_port, am_port, prom_port = free_port(), free_port(), free_port()
        settings = Settings(
            database_url=database_url, port=app_port, allow_targets=(f"{LOOPBACK}/32",)
        )
        rules = shortened_rules(tmp_path / "rules.yml", "1s")
        shipped = {
            r["alert"]: r["expr"]
            for g in yaml.safe_load(RULES.read_text())["groups"]
            for r in g["rules"]
        }
        assert rules == shipped  # only `for` was shortened

        app = create_app(settings, scheduler=True)
        # An exit stack: the service is stopped in the middle of the test (and in any case).
        async with contextlib.AsyncExitStack() as service:
            await service.enter_async_context(running(app, app_port))
            async with (
                process(
                    "alertmanager",
                    f"http://{LOOPBACK}:{am_port}",
                    [
                        alertmanager_bin,
                        f"--config.file={alertmanager_config(tmp_path, f'{hook}/hook')}",
                        f"--storage.path={tmp_path / 'alertmanager'}",
                        f"--web.listen-address={LOOPBACK}:{am_port}",
                        "--cluster.listen-address=",  # no gossip port on 0.0.0.0
                        "--log.level=warn",
                    ],
                    tmp_path / "alertmanager.log",
                ) as _,
                process(
                    "prometheus",
                    f"http://{LOOPBACK}:{prom_port}",
                    [
                        prometheus_bin,
                        "--config.file="
                        + str(
                            prometheus_config(
                                tmp_path,
                                scrape=f"{LOOPBACK}:{app_port}",
                                alertmanager=f"{LOOPBACK}:{am_port}",
                            )
                        ),
                        f"--storage.tsdb.path={tmp_path / 'prometheus'}",
                        f"--web.listen-address={LOOPBACK}:{prom_port}",
                        "--log.level=warn",
                    ],
                    tmp_path / "prometheus.log",
                ) as prom,
            ):
                # Healthy first: the connection is checked and scraped as up.
                await wait_query(prom, "healthgraph_connection_up == 1", STEP_SECONDS)

                flip.healthy = False
                alert = await wait_alert(prom, "HealthgraphConnectionDown", "firing", STEP_SECONDS)
                assert {k: alert["labels"][k] for k in IDENTITY} == IDENTITY
                receiver, body = await webhook.wait_for(
                    lambda _, body: down_alert(body, "firing"), STEP_SECONDS
                )
                assert receiver == "pager"  # severity critical routes to the pager
                (paged,) = [
                    a
                    for a in body["alerts"]
                    if a["labels"]["alertname"] == "HealthgraphConnectionDown"
                ]
                assert {k: paged["labels"][k] for k in IDENTITY} == IDENTITY
                assert paged["labels"]["severity"] == "critical"
                assert "failure reason: HTTP_STATUS" in paged["annotations"]["description"]

                flip.healthy = True
                _, resolved = await webhook.wait_for(
                    lambda _, body: down_alert(body, "resolved"), STEP_SECONDS
                )
                assert {k: resolved["alerts"][0]["labels"][k] for k in IDENTITY} == IDENTITY

                await service.aclose()
                exporter = await wait_alert(prom, "HealthgraphExporterDown", "firing", STEP_SECONDS)
                assert exporter["labels"]["job"] == "healthgraph"
                assert exporter["labels"]["instance"] == f"{LOOPBACK}:{app_port}"
                receiver, _ = await webhook.wait_for(
                    lambda _, body: (
                        body["status"] == "firing"
                        and body["commonLabels"].get("alertname") == "HealthgraphExporterDown"
                    ),
                    STEP_SECONDS,
                )
                assert receiver == "pager"
