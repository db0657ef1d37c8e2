"""Exporter benchmark (issue 5): /metrics scrape time and size at 10k, 100k and 300k connections.

    .venv/bin/python bench/exporter_bench.py [--sizes 10000,100000,300000] [--postgres URL]

For each size it seeds a fresh database (SQLite in a temp dir; PostgreSQL with --postgres) with
that many connections (a mix of states, statuses, failure reasons, TLS expiries, uses and
syncs), then measures on the same snapshot, in the same run:
  read      metrics_snapshot: the store's SQL statements;
  fast      exporter.exposition.render_store;
  baseline  prometheus-client's straightforward construction (GaugeMetricFamily per family,
            add_metric per sample, generate_latest), exporter.reference;
  scrape    the whole /metrics request through the endpoint (ASGI, in-process): read, render
            and gzip, as Prometheus asks for it;
and the resident memory across repeated scrapes (flat means nothing is kept between them).
read, fast and baseline run with the garbage collector paused, as the endpoint runs a scrape.

A script, never a test: it prints figures. Targets: scrape of 100k connections <= 2 s, fast
>= 4x the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from sqlalchemy import Table, insert
from sqlalchemy.engine import make_url

from exporter.collector import StoreCollector
from exporter.endpoint import metrics_app
from exporter.exposition import render_store
from exporter.reference import reference_exposition
from healthgraph.database import Database, open_database
from healthgraph.runtime import RuntimeTuning
from store.domain import ConnectionState, ConnectionStatus, FailureReason, SyncStep, UseStatus
from store.metrics import MetricsSnapshot
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncActivationStepRow,
    SyncRequirementRow,
    SyncRow,
    UseKindRow,
    UseRow,
)

SEED = 20261122
TARGET_SCRAPE_SECONDS = 2.0
TARGET_SPEEDUP = 4.0
CONNECTORS = 40
CONNECTIONS_PER_CONSUMER = 3
MEMORY_SCRAPES = 12
TRACED_SCRAPES = 4
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

T = TypeVar("T")


def table(model: Any) -> Table:
    result: Table = model.__table__
    return result


# --- seeding -------------------------------------------------------------------------------------


def rows_for(size: int, rng: random.Random) -> dict[Table, list[dict[str, Any]]]:
    """The rows of a catalog with `size` connections, as Core insert parameters."""
    consumers = -(-size // CONNECTIONS_PER_CONSUMER)  # ceiling
    reasons = list(FailureReason)
    data: dict[Table, list[dict[str, Any]]] = {
        table(UseKindRow): [{"kind": "hypersync", "label": "Hypersyncs"}],
        table(ConnectorRow): [
            {
                "id": i,
                "slug": f"connector-{i}",
                "name": f"Connector {i}",
                "category": "accounting",
                "heartbeat": {"kind": "http", "url": f"https://api{i}.example/health"},
                "created_at": NOW,
            }
            for i in range(1, CONNECTORS + 1)
        ],
        table(ConsumerRow): [
            {"id": i, "external_id": f"c{i}", "name": f"Consumer {i} Inc.", "created_at": NOW}
            for i in range(1, consumers + 1)
        ],
    }
    connections, uses = [], []
    for i in range(1, size + 1):
        state = rng.choices(list(ConnectionState), weights=(4, 88, 4, 4))[
            0
        ]  # PENDING, ACTIVE, FAILED, DISABLED
        failing = state is ConnectionState.FAILED or rng.random() < 0.05
        checked = NOW - timedelta(seconds=rng.randrange(0, 3600))
        connections.append(
            {
                "id": i,
                "consumer_id": (i - 1) // CONNECTIONS_PER_CONSUMER + 1,
                "connector_id": (i - 1) % CONNECTORS + 1,
                "name": f"Connection {i} to Connector {(i - 1) % CONNECTORS + 1}",
                "direction": "OUTBOUND",
                "state": state,
                "status": ConnectionStatus.CONNECTION_FAILURE
                if failing
                else ConnectionStatus.CONNECTED,
                "last_checked_at": checked,
                "last_success_at": checked - timedelta(seconds=600) if failing else checked,
                "failure_reason": rng.choice(reasons) if failing else None,
                "latency_ms": rng.uniform(5, 900),
                "consecutive_failures": rng.randrange(1, 9) if failing else 0,
                "check_interval_seconds": 60,
                "failure_threshold": 1,
                "next_check_at": checked + timedelta(seconds=60),
                "state_changed_at": NOW - timedelta(days=3),
                "tls_cert_expires_at": NOW + timedelta(days=rng.randrange(1, 365)),
                "heartbeat": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
        if i % 2 == 0:
            uses.append(
                {
                    "id": i // 2,
                    "connection_id": i,
                    "kind": "hypersync",
                    "name": f"Invoices {i}",
                    "status": UseStatus.HEALTHY if rng.random() < 0.9 else UseStatus.FAILED,
                }
            )
    data[table(ConnectionRow)] = connections
    data[table(UseRow)] = uses
    data[table(SyncRow)] = [{"id": 1, "name": "Invoices to accounting", "created_at": NOW}]
    data[table(SyncRequirementRow)] = [{"sync_id": 1, "connector_id": 1, "position": 0}]
    activations = min(consumers, 2000)
    data[table(SyncActivationRow)] = [
        {"id": i, "sync_id": 1, "consumer_id": i, "created_at": NOW, "updated_at": NOW}
        for i in range(1, activations + 1)
    ]
    data[table(SyncActivationStepRow)] = [
        {"activation_id": i, "step": step, "complete": rng.random() < 0.8}
        for i in range(1, activations + 1)
        for step in SyncStep
    ]
    return data


async def seed(database: Database, size: int) -> None:
    data = rows_for(size, random.Random(SEED))
    async with database.engine.begin() as connection:
        for target, rows in data.items():
            for start in range(0, len(rows), 20_000):
                await connection.execute(insert(target), rows[start : start + 20_000])


@asynccontextmanager
async def database_for(postgres: str | None) -> AsyncIterator[Database]:
    if postgres is None:
        folder = Path(tempfile.mkdtemp(prefix="hg-exporter-bench-"))
        try:
            database = await open_database(f"sqlite:///{folder / 'bench.db'}")
            try:
                yield database
            finally:
                await database.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"hg_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(postgres).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    await connection.execute(f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        from store.engine import create_engine
        from store.migrate import upgrade_database

        engine = create_engine(url)
        await upgrade_database(engine)
        await engine.dispose()
        database = await open_database(url)
        try:
            yield database
        finally:
            await database.close()
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


# --- measuring -----------------------------------------------------------------------------------


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Wall and CPU seconds (all threads of this process) of the last measured call."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> Clock:
        gc.collect()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall.append(time.perf_counter() - self._wall)
        self.cpu.append(time.process_time() - self._cpu)


def timed(clock: Clock, function: Callable[[], T]) -> T:
    """`function()`, timed."""
    with clock:
        return function()


async def atimed(clock: Clock, function: Callable[[], Awaitable[T]]) -> T:
    with clock:
        return await function()


async def measure(size: int, postgres: str | None, repeat: int) -> dict[str, Clock | int]:
    async with database_for(postgres) as database:
        started = time.perf_counter()
        await seed(database, size)
        print(f"  seeded {size:,} connections in {time.perf_counter() - started:.1f} s")
        collector = StoreCollector(database.sessions, clock=lambda: NOW)
        read, fast, baseline, scrape = Clock(), Clock(), Clock(), Clock()
        snapshot: MetricsSnapshot | None = None
        fast_bytes = baseline_bytes = b""
        # The collector tuned as `serve` tunes it once its start-up is done.
        tuning = RuntimeTuning()
        tuning.started()
        for _ in range(repeat):
            snapshot = await atimed(read, collector.snapshot)
            fast_bytes = timed(fast, partial(render_store, snapshot))
        assert snapshot is not None
        for _ in range(max(1, repeat - 1)):
            baseline_bytes = timed(baseline, partial(reference_exposition, snapshot))
        del snapshot

        transport = httpx.ASGITransport(app=metrics_app(store=collector))
        rss, traced = [], []
        wire = 0
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def get() -> int:
                # Raw bytes, as on the wire: decompressing is the scraper's work, not ours.
                headers = {"Accept-Encoding": "gzip"}
                async with client.stream("GET", "/metrics", headers=headers) as response:
                    response.raise_for_status()
                    return sum([len(chunk) async for chunk in response.aiter_raw()])

            for index in range(MEMORY_SCRAPES):
                if index == MEMORY_SCRAPES - TRACED_SCRAPES:
                    tracemalloc.start()
                wire = await atimed(scrape, get)
                gc.collect()
                rss.append(rss_mib())
                if tracemalloc.is_tracing():
                    traced.append(tracemalloc.get_traced_memory()[0] / 2**20)
            tracemalloc.stop()
        tuning.stopped()
        print("  RSS after each scrape (MiB): " + ", ".join(f"{value:.0f}" for value in rss))
        print(
            "  Python heap after each traced scrape (MiB): "
            + ", ".join(f"{value:.2f}" for value in traced)
        )
        # The traced scrapes run slower (tracemalloc): timings come from the others.
        scrape.wall[:] = scrape.wall[: MEMORY_SCRAPES - TRACED_SCRAPES]
        scrape.cpu[:] = scrape.cpu[: MEMORY_SCRAPES - TRACED_SCRAPES]
        return {
            "read": read,
            "fast": fast,
            "baseline": baseline,
            "scrape": scrape,
            "bytes": len(fast_bytes),
            "baseline_bytes": len(baseline_bytes),
            "gzip_bytes": wire,
        }


def report(size: int, figures: dict[str, Clock | int]) -> None:
    def clock(name: str) -> Clock:
        value = figures[name]
        assert isinstance(value, Clock)
        return value

    def size_of(name: str) -> int:
        value = figures[name]
        assert isinstance(value, int)
        return value

    scrape = clock("scrape")
    best = {name: (min(c.wall), min(c.cpu)) for name, c in figures.items() if isinstance(c, Clock)}
    print("                            wall (best)   CPU (best)")
    print(f"  store read (SQL)          {best['read'][0]:8.3f} s   {best['read'][1]:8.3f} s")
    print(
        f"  render, fast              {best['fast'][0]:8.3f} s   {best['fast'][1]:8.3f} s   "
        f"{size_of('bytes') / 1e6:6.1f} MB"
    )
    print(
        f"  render, prometheus-client {best['baseline'][0]:8.3f} s   "
        f"{best['baseline'][1]:8.3f} s   {size_of('baseline_bytes') / 1e6:6.1f} MB"
    )
    ratio_render = best["baseline"][1] / best["fast"][1]
    fast_total = best["read"][1] + best["fast"][1]
    baseline_total = best["read"][1] + best["baseline"][1]
    ratio_total = baseline_total / fast_total
    print(f"  render ratio              {ratio_render:5.1f}x (CPU)")
    print(
        f"  read + render             fast {fast_total:.3f} s, baseline {baseline_total:.3f} s "
        f"(CPU), ratio {ratio_total:.1f}x"
    )
    print(
        f"  /metrics, gzip            wall median {statistics.median(scrape.wall):.3f} s "
        f"(best {min(scrape.wall):.3f}), CPU median {statistics.median(scrape.cpu):.3f} s, "
        f"{size_of('gzip_bytes') / 1e6:.1f} MB on the wire"
    )
    if size == 100_000:
        seconds = statistics.median(scrape.wall)
        print(
            f"  targets: scrape <= {TARGET_SCRAPE_SECONDS} s "
            f"{'met' if seconds <= TARGET_SCRAPE_SECONDS else 'MISSED'} (wall median); "
            f">= {TARGET_SPEEDUP:.0f}x baseline "
            f"{'met' if ratio_total >= TARGET_SPEEDUP else 'MISSED'} (read + render, CPU)"
        )


async def main() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # figures as they come, even into a file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--postgres", metavar="URL", help="run on PostgreSQL (an admin URL)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    for size in (int(part) for part in args.sizes.split(",")):
        print(f"{size:,} connections on {backend}")
        report(size, await measure(size, args.postgres, args.repeat))


if __name__ == "__main__":
    asyncio.run(main())
