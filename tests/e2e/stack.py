"""The real Prometheus and Alertmanager binaries on loopback, and small local HTTP servers.

Every process and port of a test run lives here: ports are free loopback ports, data goes to
the test's temporary folder, and everything is stopped when the test ends, pass or fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from tests.exporter.tools import ALERTMANAGER_CONFIG, RULES
from tests.servers import free_port

LOOPBACK = "127.0.0.1"
STOP_SECONDS = 10.0


@dataclass
class Process:
    name: str
    url: str
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.asynccontextmanager
async def process(name: str, url: str, command: Sequence[str], log: Path) -> AsyncIterator[Process]:
    """Run `command` until the block ends; waits for `url`/-/ready first."""
    with log.open("wb") as output:
        child = await asyncio.create_subprocess_exec(
            *command, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
    running = Process(name, url, child, log)
    try:
        await wait_ready(running)
        yield running
    finally:
        await stop(child)


async def stop(child: asyncio.subprocess.Process) -> None:
    if child.returncode is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(child.wait(), STOP_SECONDS)
    except TimeoutError:
        child.kill()
        await child.wait()


async def wait_ready(running: Process, seconds: float = 30.0) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        try:
            async with asyncio.timeout(seconds):
                while True:
                    if running.process.returncode is not None:
                        raise RuntimeError(f"{running.name} exited:\n{running.output()}")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{running.url}/-/ready")).status_code == 200:
                            return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise RuntimeError(f"{running.name} not ready:\n{running.output()}") from None


def shortened_rules(target: Path, for_: str) -> dict[str, str]:
    """The shipped rules with every `for` set to `for_`; expressions untouched. Returns them."""
    document = yaml.safe_load(RULES.read_text())
    expressions = {}
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["for"] = for_
            expressions[rule["alert"]] = rule["expr"]
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return expressions


def prometheus_config(folder: Path, *, scrape: str, alertmanager: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": ["rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {"job_name": "healthgraph", "static_configs": [{"targets": [scrape]}]},
        ],
    }
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager_config(folder: Path, webhook: str) -> Path:
    """The shipped routing and inhibitions; receivers sent to `webhook`, timings short."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())

    def shorten(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    config["route"]["repeat_interval"] = "1h"
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook}/{receiver['name']}"
            hook["send_resolved"] = True
    path = folder / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Flip:
    """A heartbeat target that answers 200 or 500, as the test says."""

    healthy: bool = True
    calls: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.healthy:
            return web.json_response({"status": "ok"})
        return web.json_response({"error": "internal"}, status=500)


@dataclass
class Webhook:
    """Alertmanager's webhook receiver: every POSTed notification, by receiver name."""

    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.notifications.append((request.match_info["receiver"], await request.json()))
        self.arrived.set()
        return web.Response(text="ok")

    async def wait_for(
        self, match: Callable[[str, dict[str, Any]], bool], seconds: float
    ) -> tuple[str, dict[str, Any]]:
        async with asyncio.timeout(seconds):
            while True:
                for receiver, body in self.notifications:
                    if match(receiver, body):
                        return receiver, body
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def http_server(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, LOOPBACK, port)
    await site.start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()


async def alerts(prometheus: Process) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{prometheus.url}/api/v1/alerts")
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["data"]["alerts"]
    return found


async def wait_alert(prometheus: Process, name: str, state: str, seconds: float) -> dict[str, Any]:
    """The first alert `name` in `state` ("firing", "pending") that Prometheus reports."""
    try:
        async with asyncio.timeout(seconds):
            while True:
                for alert in await alerts(prometheus):
                    if alert["labels"]["alertname"] == name and alert["state"] == state:
                        return alert
                await asyncio.sleep(0.25)
    except TimeoutError:
        current = json.dumps(await alerts(prometheus), indent=1)
        raise AssertionError(f"{name} never {state}; alerts now: {current}") from None


async def query(prometheus: Process, expression: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{prometheus.url}/api/v1/query", params={"query": expression})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


async def wait_query(prometheus: Process, expression: str, seconds: float) -> None:
    """Until `expression` returns something."""
    async with asyncio.timeout(seconds):
        while True:
            if await query(prometheus, expression):
                return
            await asyncio.sleep(0.25)
