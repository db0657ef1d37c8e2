"""Running healthgraph as its users do, for the benchmarks: `serve` on SQLite or `worker`
processes on PostgreSQL, each a real process, and its checks counted from its /metrics."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from probe_bench import (
    Backend,
    Usage,
    free_ports,
    process_tree,
    spawn,
    stop_process,
    wait_for_port,
)


def healthgraph_binary() -> str:
    return str(Path(sys.executable).parent / "healthgraph")


def service_env(url: str, key: str, **extra: str) -> dict[str, str]:
    """The bench's settings; `extra` adds to them or overrides them (the log level too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHGRAPH_")}
    env.update(
        HEALTHGRAPH_DATABASE_URL=url,
        HEALTHGRAPH_SECRET_KEYS=key,
        HEALTHGRAPH_ALLOW_TARGETS="127.0.0.1/32,::1/128",
        HEALTHGRAPH_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Service:
    """A running `serve` or `worker`: where its metrics are, and its process."""

    metrics_url: str
    pid: int


@asynccontextmanager
async def services(
    backend: Backend, key: str, processes: int, **extra: str
) -> AsyncIterator[list[Service]]:
    """`serve` on SQLite, `processes` workers on PostgreSQL, each with its /metrics."""
    started: list[subprocess.Popen[Any]] = []
    running: list[Service] = []
    try:
        for _ in range(1 if backend.sqlite_file is not None else processes):
            port = free_ports(1)[0]
            if backend.sqlite_file is not None:
                command = [healthgraph_binary(), "serve", "--port", str(port)]
                env = service_env(backend.url, key, **extra)
            else:
                command = [healthgraph_binary(), "worker"]
                env = service_env(
                    backend.url, key, HEALTHGRAPH_WORKER_METRICS_PORT=str(port), **extra
                )
            started.append(spawn(command, env=env))
            await wait_for_port(port, started[-1], 60)
            running.append(Service(f"http://127.0.0.1:{port}/metrics", started[-1].pid))
        yield running
    finally:
        for process in started:
            stop_process(process)


async def checks_total(client: httpx.AsyncClient, url: str) -> float:
    text = (await client.get(url)).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("healthgraph_checks_total{")
    )


@dataclass(frozen=True)
class CheckRate:
    checks_per_second: float
    cores: float  # used by the service and its probe processes meanwhile

    @property
    def cpu_ms_per_check(self) -> float:
        return 1000 * self.cores / max(self.checks_per_second, 1e-9)


async def check_rate(
    service: Service, *, warm_up_seconds: float, measure_seconds: float
) -> CheckRate:
    """Checks/s from `healthgraph_checks_total` over `measure_seconds` after a warm-up, and
    the cores the service's processes used meanwhile."""
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        await asyncio.sleep(warm_up_seconds)
        usage = Usage(process_tree(service.pid))
        before, started = await checks_total(client, service.metrics_url), time.monotonic()
        await asyncio.sleep(measure_seconds)
        after, ended = await checks_total(client, service.metrics_url), time.monotonic()
        cores, _machine = usage.cores()
    return CheckRate((after - before) / (ended - started), cores)
