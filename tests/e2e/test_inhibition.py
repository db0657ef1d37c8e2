"""The shipped Alertmanager inhibitions, on the real Alertmanager: a connector in outage pages
once, its connections' down pages are held, and nothing else is.

Alerts are posted the way Prometheus posts them (API v2); Alertmanager's own view of each
alert (`status.inhibitedBy`) and the notifications its receivers get are what is checked.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.e2e.stack import LOOPBACK, Webhook, alertmanager_config, http_server, process
from tests.exporter.tools import alertmanager
from tests.servers import free_port

pytestmark = pytest.mark.e2e

XERO = {"connector": "Xero"}
ALERTS = {
    "outage": {"alertname": "HealthgraphConnectorOutage", "connector_slug": "xero", **XERO},
    "many": {"alertname": "HealthgraphManyConnectionsDown", **XERO},
    "xero down": {"alertname": "HealthgraphConnectionDown", "connection_id": "2", **XERO},
    "xero auth": {"alertname": "HealthgraphConnectionAuthFailed", "connection_id": "3", **XERO},
    "quickbooks down": {
        "alertname": "HealthgraphConnectionDown",
        "connection_id": "1",
        "connector": "QuickBooks Online",
    },
}
SEVERITY = {
    "HealthgraphConnectorOutage": "critical",
    "HealthgraphManyConnectionsDown": "critical",
    "HealthgraphConnectionDown": "critical",
    "HealthgraphConnectionAuthFailed": "warning",
}


GROUP_WAIT_SECONDS = 1  # alertmanager_config shortens every group wait and interval to this


def _names(notification: dict[str, Any]) -> set[str]:
    """Which of ALERTS a notification carries."""
    return {
        name
        for alert in notification["alerts"]
        for name, labels in ALERTS.items()
        if labels.items() <= alert["labels"].items()
    }


def posted(labels: dict[str, str], *, resolved: bool = False) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {**labels, "severity": SEVERITY[labels["alertname"]]},
        "annotations": {"summary": labels["alertname"]},
        "startsAt": (now - timedelta(minutes=5)).isoformat(),
        "endsAt": (
            now - timedelta(seconds=1) if resolved else now + timedelta(minutes=10)
        ).isoformat(),
    }


async def post(url: str, alerts: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(f"{url}/api/v2/alerts", json=alerts)
    response.raise_for_status()


async def wait_inhibited(url: str, expected: dict[str, bool]) -> None:
    """Until Alertmanager shows each firing alert held (True) or not, as expected."""
    seen: dict[str, bool] = {}
    try:
        async with asyncio.timeout(20):
            while seen != expected:
                seen = await inhibited_by_name(url)
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"inhibited: {seen}, expected {expected}") from None


async def inhibited_by_name(url: str) -> dict[str, bool]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{url}/api/v2/alerts")
    response.raise_for_status()
    found = {}
    for alert in response.json():
        if alert["status"]["state"] == "unprocessed":
            continue
        name = next(
            key for key, labels in ALERTS.items() if labels.items() <= alert["labels"].items()
        )
        found[name] = bool(alert["status"]["inhibitedBy"])
    return found


async def test_a_connector_outage_holds_its_connections_down_pages(tmp_path: Path) -> None:
    binary, webhook, port = alertmanager(), Webhook(), free_port()
    async with (
        http_server([web.post("/hook/{receiver}", webhook.handle)]) as hook,
        process(
            "alertmanager",
            f"http://{LOOPBACK}:{port}",
            [
                binary,
                f"--config.file={alertmanager_config(tmp_path, f'{hook}/hook')}",
                f"--storage.path={tmp_path / 'alertmanager'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            tmp_path / "alertmanager.log",
        ) as manager,
    ):
        # The sources first, each a flush before what it holds, as Prometheus would have sent
        # them a while before: an inhibition holds only once Alertmanager's inhibitor has
        # seen its source, which it learns apart from (and, on a busy machine, after) the
        # group it is flushed with. The outage's own page is the sign it has been seen.
        await post(manager.url, [posted(ALERTS["outage"])])
        await webhook.wait_for(lambda _, body: _names(body) == {"outage"}, 20)
        await post(manager.url, [posted(ALERTS["many"])])
        await wait_inhibited(manager.url, {"outage": False, "many": True})
        await asyncio.sleep(GROUP_WAIT_SECONDS)  # no sign for a held alert: one flush's time
        sources = ("outage", "many")
        await post(manager.url, [posted(ALERTS[name]) for name in ALERTS if name not in sources])
        # ManyConnectionsDown (Prometheus' count) holds every per-connection alert of the
        # connector, refused credentials included; the outage holds it in turn.
        await wait_inhibited(
            manager.url,
            {
                "outage": False,
                "many": True,
                "xero down": True,
                "xero auth": True,
                "quickbooks down": False,
            },
        )
        # healthgraph's outage alone does not hold refused credentials: they are the
        # customer's to fix, outage or not.
        await post(manager.url, [posted(ALERTS["many"], resolved=True)])
        await wait_inhibited(
            manager.url,
            {"outage": False, "xero down": True, "xero auth": False, "quickbooks down": False},
        )

        # Notifications: the three that are not held arrive; the held ones never do (they
        # would have gone out in the same group flush, 1 s after they arrived).
        def notified() -> set[str]:
            return {name for _, body in webhook.notifications for name in _names(body)}

        try:
            async with asyncio.timeout(30):
                while notified() != {"outage", "xero auth", "quickbooks down"}:
                    webhook.arrived.clear()
                    await webhook.arrived.wait()
        except TimeoutError:
            raise AssertionError(
                f"notified: {sorted(notified())}; notifications: {webhook.notifications}; "
                f"Alertmanager: {await inhibited_by_name(manager.url)}"
            ) from None
        await asyncio.sleep(3)
        assert notified() == {"outage", "xero auth", "quickbooks down"}
        receivers = {receiver for receiver, body in webhook.notifications for _ in body["alerts"]}
        assert receivers == {"pager", "tickets"}
