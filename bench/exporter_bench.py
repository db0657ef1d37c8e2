"""Exporter benchmark (issue 5): /metrics scrape time and size at 10k, 100k and 300k connections.

    .venv/bin/python bench/exporter_bench.py [--sizes 10000,100000,300000] [--postgres URL]
        [--repeat 3] [--scrapes 50] [--warmup 1] [--rounds 2] [--before OTHER_TREE/src]

For each size it seeds a fresh database (SQLite in a temp dir; PostgreSQL with --postgres) with
that many connections (a mix of states, statuses, failure reasons, TLS expiries, uses and
syncs), then measures on the same snapshot, in the same run:
  read      metrics_snapshot: the store's SQL statements;
  fast      exporter.exposition.render_store;
  baseline  prometheus-client's straightforward construction (GaugeMetricFamily per family,
            add_metric per sample, generate_latest), exporter.reference;
and, in a fresh child process per source tree (issue 16 part 5):
  scrape    `--scrapes` consecutive /metrics requests (gzip, as Prometheus asks) through
            `metrics_app(store=StoreCollector(...))`, driven straight through ASGI with each
            body chunk counted and dropped (httpx's ASGITransport would keep the whole body:
            the client's memory, not the server's); wall time from the request to the last
            byte; the resident set (VmRSS) after each scrape and its peak (VmHWM, reset once the
            database is open).
The child is this very script (`--scrape-child`), run with PYTHONPATH set to the tree under
test: the worktree's `src`, and with `--before DIR` also DIR (e.g. a checkout of the starting
point), on the same seeded database, `--rounds` times each in alternating order (before,
ours, ours, before: 2 rounds by default), a fresh process each time. Same imports, same tuning
(RuntimeTuning.started(), as `serve` applies it), same `--warmup` scrapes (1 by default)
before the measured ones; a full garbage collection after each scrape (outside the timing),
so RSS shows what a scrape leaves behind, not garbage waiting for a collection. RSS growth is
the last measured scrape's RSS over the RSS after the warm-up (the worst of the rounds); the
scrape median pools every round's scrapes. On PostgreSQL the seeded database is ANALYZEd
first, as autovacuum would soon do, so statistics cannot change between the trees' runs.
read, fast and baseline run with the garbage collector paused, as the endpoint runs a scrape;
`--repeat 0` skips them.

A script, never a test: it prints figures. Targets: scrape of 100k connections <= 2 s, fast
>= 4x the baseline; RSS growth over 50 scrapes <= 10 %, scrape median no worse than before.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Table, insert
from sqlalchemy.engine import make_url

from exporter.collector import StoreCollector
from exporter.endpoint import metrics_app
from exporter.exposition import render_store
from exporter.reference import reference_exposition
from healthgraph.database import Database, connect, open_database
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
TARGET_RSS_GROWTH = 0.10
OURS = Path(__file__).resolve().parents[1] / "src"
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
async def database_for(postgres: str | None) -> AsyncIterator[tuple[Database, str]]:
    """A fresh database, and its URL (for the scrape children)."""
    if postgres is None:
        folder = Path(tempfile.mkdtemp(prefix="hg-exporter-bench-"))
        try:
            url = f"sqlite:///{folder / 'bench.db'}"
            database = await open_database(url)
            try:
                yield database, url
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
            yield database, url
        finally:
            await database.close()
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


# --- measuring -----------------------------------------------------------------------------------


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


async def measure(
    size: int, postgres: str | None, args: argparse.Namespace, trees: dict[str, Path]
) -> dict[str, Any]:
    async with database_for(postgres) as (database, url):
        started = time.perf_counter()
        await seed(database, size)
        if postgres is not None:
            # Statistics now, as autovacuum would give them soon: not halfway through the
            # runs, where they could change plans between one tree and the other.
            async with database.engine.begin() as connection:
                await connection.exec_driver_sql("ANALYZE")
        print(f"  seeded {size:,} connections in {time.perf_counter() - started:.1f} s")
        figures: dict[str, Any] = {}
        if args.repeat > 0:
            figures.update(await measure_render(database, args.repeat))
        # This process holds the seeding's garbage and the snapshots above: scrapes are
        # measured in fresh processes, on the same database. Rounds alternate the order
        # (before, ours, ours, before, ...) so drift in the machine's load favours neither.
        names = list(trees)
        for index in range(args.rounds):
            for name in names if index % 2 == 0 else reversed(names):
                child = scrape_child(trees[name], url, args.scrapes, args.warmup)
                figures.setdefault(name, []).append(child)
        return figures


async def measure_render(database: Database, repeat: int) -> dict[str, Any]:
    collector = StoreCollector(database.sessions, clock=lambda: NOW)
    read, fast, baseline = Clock(), Clock(), Clock()
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
    tuning.stopped()
    return {
        "read": read,
        "fast": fast,
        "baseline": baseline,
        "bytes": len(fast_bytes),
        "baseline_bytes": len(baseline_bytes),
    }


# --- scrapes in a child process ------------------------------------------------------------------


def scrape_child(src: Path, url: str, scrapes: int, warmup: int) -> dict[str, Any]:
    """Run this script as `--scrape-child` with `src` first on the path; its JSON figures."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--scrape-child", url]
    command += ["--scrapes", str(scrapes), "--warmup", str(warmup)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the scrape child for {src} failed ({done.returncode})")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def vm_status(field: str) -> float:
    """A /proc/self/status field in MiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def reset_peak() -> None:
    """VmHWM := VmRSS (proc(5), /proc/pid/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


async def asgi_scrape(app: Any) -> int:
    """One GET /metrics with gzip straight through ASGI; the bytes sent, each chunk dropped."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/metrics",
        "raw_path": b"/metrics",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"accept-encoding", b"gzip")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    sent = 0
    status = 0
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never disconnects
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent, status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            sent += len(message.get("body", b""))

    await app(scope, receive, send)
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return sent


async def scrape_child_main(url: str, scrapes: int, warmup: int) -> None:
    database = connect(url)
    try:
        collector = StoreCollector(database.sessions, clock=lambda: NOW)
        app = metrics_app(store=collector)
        tuning = RuntimeTuning()
        tuning.started()
        rest = vm_status("VmRSS")
        reset_peak()
        for _ in range(warmup):
            await asgi_scrape(app)
            gc.collect()
        warm = vm_status("VmRSS")
        rss, wall, cpu = [], [], []
        wire = 0
        for _ in range(scrapes):
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            wire = await asgi_scrape(app)
            wall.append(time.perf_counter() - wall_start)
            cpu.append(time.process_time() - cpu_start)
            gc.collect()
            rss.append(vm_status("VmRSS"))
        peak = vm_status("VmHWM")
        tuning.stopped()
    finally:
        await database.close()
    print(
        json.dumps(
            {
                "rest": rest,
                "warm": warm,
                "rss": rss,
                "peak": peak,
                "wall": wall,
                "cpu": cpu,
                "gzip_bytes": wire,
                "python": sys.version.split()[0],
            }
        )
    )


def growth(child: dict[str, Any]) -> float:
    """RSS after the last measured scrape over RSS after the warm-up, minus one."""
    value: float = child["rss"][-1] / child["warm"] - 1
    return value


def report(size: int, figures: dict[str, Any], trees: dict[str, Path], scrapes: int) -> None:
    if "read" in figures:
        report_render(figures)
    print(f"  {scrapes} consecutive scrapes, gzip (a fresh process per tree and round):")
    print(
        "    tree   RSS rest  after warm-up  after last  growth    peak   "
        "wall median (best)   CPU median   on the wire"
    )
    for name in trees:
        for child in figures[name]:
            print(
                f"    {name:<6} {child['rest']:7.0f}  {child['warm']:9.0f} MiB"
                f"  {child['rss'][-1]:6.0f} MiB  {growth(child):+6.1%}  {child['peak']:5.0f} MiB"
                f"  {statistics.median(child['wall']):7.3f} s"
                f" ({min(child['wall']):.3f})  {statistics.median(child['cpu']):7.3f} s"
                f"   {child['gzip_bytes'] / 1e6:6.1f} MB"
            )
            every = max(1, len(child["rss"]) // 10)
            curve = ", ".join(f"{value:.0f}" for value in child["rss"][every - 1 :: every])
            print(f"           RSS after every {every}th scrape (MiB): {curve}")
    pooled = {
        name: {
            "wall": statistics.median([t for child in figures[name] for t in child["wall"]]),
            "cpu": statistics.median([t for child in figures[name] for t in child["cpu"]]),
            "peak": max(child["peak"] for child in figures[name]),
            "growth": max(growth(child) for child in figures[name]),
        }
        for name in trees
    }
    for name, value in pooled.items():
        print(
            f"  {name:<6} over all rounds: RSS growth (worst) {value['growth']:+.1%}, "
            f"peak RSS (highest) {value['peak']:.0f} MiB, "
            f"scrape wall median {value['wall']:.3f} s, CPU median {value['cpu']:.3f} s"
        )
    ours = pooled["ours"]
    if "before" in pooled:
        before = pooled["before"]
        print(
            f"  ours / before: peak RSS {ours['peak'] / before['peak']:.2f}x, "
            f"scrape wall median {ours['wall'] / before['wall']:.3f}x, "
            f"CPU median {ours['cpu'] / before['cpu']:.3f}x"
        )
    verdict = "met" if ours["growth"] <= TARGET_RSS_GROWTH else "MISSED"
    print(
        f"  targets: RSS growth <= {TARGET_RSS_GROWTH:.0%} over {scrapes} scrapes {verdict}",
        end="",
    )
    if "before" in pooled:
        slower = ours["wall"] > pooled["before"]["wall"]
        print(f"; scrape wall median no worse than before {'MISSED' if slower else 'met'}", end="")
    if size == 100_000:
        met = ours["wall"] <= TARGET_SCRAPE_SECONDS
        print(f"; scrape <= {TARGET_SCRAPE_SECONDS} s {'met' if met else 'MISSED'}", end="")
    print()


def report_render(figures: dict[str, Any]) -> None:
    def size_of(name: str) -> int:
        value = figures[name]
        assert isinstance(value, int)
        return value

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
        f"(CPU), ratio {ratio_total:.1f}x; target >= {TARGET_SPEEDUP:.0f}x "
        f"{'met' if ratio_total >= TARGET_SPEEDUP else 'MISSED'}"
    )


async def main() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # figures as they come, even into a file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--postgres", metavar="URL", help="run on PostgreSQL (an admin URL)")
    parser.add_argument("--repeat", type=int, default=3, help="read/render runs (0: none)")
    parser.add_argument("--scrapes", type=int, default=50, help="measured scrapes per tree")
    parser.add_argument("--warmup", type=int, default=1, help="scrapes before the measured ones")
    parser.add_argument(
        "--rounds", type=int, default=2, help="child processes per tree, order alternating"
    )
    parser.add_argument("--before", metavar="SRC", type=Path, help="another tree's src, to compare")
    parser.add_argument("--scrape-child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scrape_child:
        await scrape_child_main(args.scrape_child, args.scrapes, args.warmup)
        return
    trees = {"ours": OURS}
    if args.before is not None:
        trees = {"before": args.before.resolve(), **trees}
    backend = "PostgreSQL" if args.postgres else "SQLite"
    for name, src in trees.items():
        print(f"{name}: {src}")
    for size in (int(part) for part in args.sizes.split(",")):
        print(f"{size:,} connections on {backend}")
        figures = await measure(size, args.postgres, args, trees)
        report(size, figures, trees, args.scrapes)


if __name__ == "__main__":
    asyncio.run(main())
