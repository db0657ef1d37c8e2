"""Load benchmark (issue 7): 50 concurrent GraphQL clients while 10k connections are checked.

    .venv/bin/python bench/load_bench.py --backend sqlite|postgresql [--seconds 60]

Runs the real service as processes (`healthgraph serve` on a SQLite file, or `healthgraph api`
+ `healthgraph worker` on a fresh PostgreSQL database), seeds 10k ACTIVE connections checked
every 60 s against a fast local target (its own process), then drives `--clients` closed-loop
GraphQL clients for `--seconds` with the seed documents of docs/queries/. Prints the error
count, GraphQL p50/p99, the scheduler lag sampled from /metrics every second, the checks done,
the RSS of every service process every 5 s with its trend, and the CPU each process used;
then the targets with PASS/FAIL. A script, never a test (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from healthgraph.database import open_database
from store.crypto import generate_key
from store.domain import (
    ConnectionState,
    ConnectionStatus,
    Direction,
    FailureReason,
    SyncStep,
    TokenScope,
)
from store.engine import create_engine
from store.migrate import upgrade_database
from store.models import (
    CheckRow,
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
from store.scheduling import scheduler_lag
from store.tokens import create_token

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ROOT / "docs" / "queries"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_ERRORS = 0
TARGET_LAG_P99_S = 5.0
TARGET_RSS_GROWTH = 0.05  # last third's mean RSS over the first third's, at most +5 %
SEED = 20261201

# --- the target: a keep-alive HTTP server in its own process -------------------------------------

TARGET_CODE = r"""
import asyncio, sys

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()

async def main(port, hosts):
    addresses = [f"127.0.0.{n}" for n in range(1, hosts + 1)]
    server = await asyncio.start_server(handle, addresses, port, backlog=1024)
    async with server:
        await server.serve_forever()

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- processes -------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]

    def pids(self) -> list[int]:
        """The process and its children (HEALTHGRAPH_PROBE_PROCESSES), which count as it."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return [pid, *(int(child) for child in children)]

    def cpu_seconds(self) -> float:
        """utime + stime so far, from /proc (probe processes included while they run)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def rss_mb(self) -> float:
        """Resident memory of the process and its probe processes."""
        total = 0.0
        for pid in self.pids():
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            total += next(
                (int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:")), 0.0
            )
        return total or float("nan")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode


def start(name: str, command: list[str], env: dict[str, str], directory: Path) -> Proc:
    log = directory / f"{name}.log"
    log_file = log.open("wb")
    process = subprocess.Popen(
        command, env=env, cwd=directory, stdout=log_file, stderr=subprocess.STDOUT
    )
    return Proc(name, process, log, log_file)


def healthgraph() -> list[str]:
    script = Path(sys.executable).parent / "healthgraph"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from healthgraph.cli import main; raise SystemExit(main())"]


# --- seeding ---------------------------------------------------------------------------------


def target_url(port: int, hosts: int, connector: int) -> str:
    """Connector k's API lives on its own loopback address (one per vendor), up to `hosts`."""
    return f"http://127.0.0.{connector % hosts + 1}:{port}"


async def seed(url: str, port: int, hosts: int, connections: int, interval: int) -> str:
    """`connections` ACTIVE connections (a tenth INBOUND, never probed) over 50 connectors and
    connections/5 consumers, one use each, 3 syncs with activations for a fifth of the
    consumers. Due times spread evenly over one interval: the steady state, not a thundering
    start. Returns a read token."""
    rng = random.Random(SEED)
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    database = await open_database(url)
    now = datetime.now(UTC)
    consumers = max(1, connections // 5)
    try:
        async with database.sessions.begin() as session:
            session.add_all(
                [
                    UseKindRow(kind="hypersync", label="Hypersyncs"),
                    UseKindRow(kind="task_integration", label="Task integrations"),
                    UseKindRow(kind="livesync", label="Cloud files"),
                ]
            )
            connector_rows = [
                ConnectorRow(
                    slug=f"vendor-{n}",
                    name=f"Vendor {n}",
                    category="accounting",
                    heartbeat={
                        "kind": "http",
                        "url": f"{target_url(port, hosts, n)}/",
                        "timeout_seconds": 10,
                    },
                )
                for n in range(50)
            ]
            session.add_all(connector_rows)
            await session.flush()
            connector_ids = [row.id for row in connector_rows]
            await session.execute(
                insert(ConsumerRow),
                [
                    {"external_id": f"c{n}", "name": f"Consumer {n}", "created_at": now}
                    for n in range(consumers)
                ],
            )
            consumer_ids = list((await session.scalars(select(ConsumerRow.id))).all())
            rows = []
            for n in range(connections):
                rows.append(
                    {
                        "consumer_id": consumer_ids[n % consumers],
                        "connector_id": connector_ids[n % 50],
                        "name": f"connection {n}",
                        "direction": Direction.OUTBOUND if n % 10 else Direction.INBOUND,
                        "state": ConnectionState.ACTIVE,
                        "status": ConnectionStatus.UNKNOWN,
                        "check_interval_seconds": interval,
                        "failure_threshold": 1,
                        "consecutive_failures": 0,
                        "next_check_at": now + timedelta(seconds=rng.uniform(0, interval)),
                        "heartbeat": {
                            "url": f"{target_url(port, hosts, n % 50)}/h/{n}",
                            "timeout_seconds": 10,
                        },
                        "state_changed_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            for chunk in range(0, len(rows), 2000):
                await session.execute(insert(ConnectionRow), rows[chunk : chunk + 2000])
            connection_ids = list((await session.scalars(select(ConnectionRow.id))).all())
            kinds = ["hypersync", "task_integration", "livesync"]
            await session.execute(
                insert(UseRow),
                [
                    {"connection_id": cid, "kind": kinds[i % 3], "name": f"use {i}"}
                    for i, cid in enumerate(connection_ids)
                ],
            )
            for s in range(3):
                sync = SyncRow(
                    name=f"Sync {s}",
                    requirements=[
                        SyncRequirementRow(connector_id=connector_ids[s + k], position=k)
                        for k in range(2)
                    ],
                )
                session.add(sync)
                await session.flush()
                for consumer_id in consumer_ids[s::15]:
                    session.add(
                        SyncActivationRow(
                            sync_id=sync.id,
                            consumer_id=consumer_id,
                            steps=[
                                SyncActivationStepRow(step=step, complete=rng.random() < 0.8)
                                for step in SyncStep
                            ],
                        )
                    )
            await session.flush()
            token, _ = await create_token(session, scope=TokenScope.READ, name="load bench")
    finally:
        await database.close()
    return token


async def count_checks(url: str) -> tuple[int, int]:
    """(checks written, of which failed probes): every target answers 200, so a failed probe
    means trouble; INBOUND connections' MISSED_HEARTBEAT rows (nobody calls in) are not counted
    as failures."""
    database = await open_database(url, upgrade_embedded=False)
    try:
        async with database.sessions() as session:
            total, failed = (
                await session.execute(
                    select(
                        func.count(),
                        func.count().filter(
                            CheckRow.success.is_(False),
                            CheckRow.failure_reason != FailureReason.MISSED_HEARTBEAT,
                        ),
                    ).select_from(CheckRow)
                )
            ).one()
        return int(total), int(failed)
    finally:
        await database.close()


# --- the load --------------------------------------------------------------------------------


def documents() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted(QUERIES.glob("*.graphql"))}


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    lag: list[float] = field(default_factory=list)  # from /metrics, as Prometheus sees it
    store_lag: list[float] = field(default_factory=list)  # the same query, from the bench
    rss: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    scrape_errors: int = 0


def mix(
    docs: dict[str, str], ids: list[str], rng: random.Random
) -> tuple[str, str, dict[str, Any]]:
    """One request of the mix: the seed views as the two product pages use them."""
    name = rng.choice(list(docs))
    variables: dict[str, Any] = {}
    match name:
        case "connected_accounts":
            variables = {"direction": rng.choice(["OUTBOUND", "INBOUND"]), "first": 50}
        case "connection_uses":
            variables = {"id": rng.choice(ids)}
        case "consumers_by_connections":
            variables = rng.choice(
                [{"first": 50}, {"active": True, "first": 50}, {"search": "Consumer 12"}]
            )
        case "consumers_by_syncs":
            variables = rng.choice([{"first": 50}, {"issue": ["MAPPING_INCOMPLETE"]}])
    return name, docs[name], variables


async def client(
    number: int,
    base_url: str,
    token: str,
    docs: dict[str, str],
    ids: list[str],
    until: float,
    results: Results,
) -> None:
    rng = random.Random(SEED + number)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        while time.monotonic() < until:
            name, document, variables = mix(docs, ids, rng)
            started = time.perf_counter()
            try:
                response = await http.post(
                    "/graphql", json={"query": document, "variables": variables}
                )
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    results.errors[f"{name}: HTTP {response.status_code}"] += 1
                    continue
                body: dict[str, Any] = response.json()
                if body.get("errors") or not body.get("data"):
                    message = str((body.get("errors") or [{}])[0].get("message", ""))[:80]
                    results.errors[f"{name}: {message}"] += 1
                else:
                    results.latencies[name].append(elapsed)
            except (httpx.HTTPError, ValueError) as exc:
                results.errors[f"{name}: {type(exc).__name__}"] += 1


LAG_LINE = re.compile(r"^healthgraph_scheduler_lag_seconds\s+(\S+)$", re.MULTILINE)


async def sample_lag(base_url: str, until: float, results: Results, every: float) -> None:
    if every <= 0:
        return
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        while time.monotonic() < until:
            tick = time.monotonic()
            try:
                found = LAG_LINE.search((await http.get("/metrics")).text)
                if found:
                    results.lag.append(float(found.group(1)))
                else:
                    results.scrape_errors += 1
            except httpx.HTTPError:
                results.scrape_errors += 1
            await asyncio.sleep(max(0.0, every - (time.monotonic() - tick)))


async def sample_store_lag(url: str, until: float, results: Results) -> None:
    """The query behind healthgraph_scheduler_lag_seconds, run by the bench every second: a
    saturated API delays its /metrics answers, not this."""
    database = await open_database(url, upgrade_embedded=False)
    try:
        while time.monotonic() < until:
            tick = time.monotonic()
            async with database.sessions() as session:
                _, lag = await scheduler_lag(session, datetime.now(UTC))
            results.store_lag.append(lag)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    finally:
        await database.close()


async def sample_rss(procs: list[Proc], until: float, results: Results) -> None:
    while True:
        for proc in procs:
            results.rss[proc.name].append(proc.rss_mb())
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(5.0, max(0.0, until - time.monotonic())))


def slope(series: list[float]) -> float:
    """Least-squares change per sample (MB per 5 s)."""
    if len(series) < 2:
        return float("nan")
    xs = range(len(series))
    mean_x, mean_y = statistics.mean(xs), statistics.mean(series)
    num = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, series, strict=True))
    return num / sum((x - mean_x) ** 2 for x in xs)


def pct(values: list[float], p: float) -> float:
    """Nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


# --- orchestration ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(backend: str, pg_admin: str, keep: bool, directory: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'healthgraph.db'}"
        return
    name = f"hg_load_{int(time.time())}_{uuid.uuid4().hex[:6]}"
    admin = make_url(pg_admin).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield make_url(pg_admin).set(database=name).render_as_string(False)
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            connection = await asyncpg.connect(admin)
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()


async def wait_ready(base_url: str, procs: list[Proc], seconds: float = 60) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for proc in procs:
                if proc.process.poll() is not None:
                    raise SystemExit(f"{proc.name} exited:\n{proc.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise SystemExit("the service did not become ready")


async def connection_ids(base_url: str, token: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        response = await http.post(
            "/graphql",
            json={"query": "{ connections(first: 500) { nodes { id } } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
    return [node["id"] for node in response.json()["data"]["connections"]["nodes"]]


async def run(args: argparse.Namespace) -> int:
    directory = Path(tempfile.mkdtemp(prefix="hg-load-"))
    target_port = free_port()
    target = start(
        "target",
        [sys.executable, "-c", TARGET_CODE, str(target_port), str(args.target_hosts)],
        dict(os.environ),
        directory,
    )
    procs: list[Proc] = []
    try:
        async with database(args.backend, args.pg_url, args.keep, directory) as url:
            started = time.monotonic()
            token = await seed(url, target_port, args.target_hosts, args.connections, args.interval)
            print(f"seeded {args.connections} connections in {time.monotonic() - started:.1f} s")
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHGRAPH_")}
            env.update(
                HEALTHGRAPH_DATABASE_URL=url,
                HEALTHGRAPH_ALLOW_TARGETS="127.0.0.0/8",
                HEALTHGRAPH_SECRET_KEYS=generate_key(),
                HEALTHGRAPH_LOG_LEVEL="WARNING",
                HEALTHGRAPH_PORT=str(port),
                HEALTHGRAPH_WORKER_METRICS_PORT=str(free_port()),
                HEALTHGRAPH_PROBE_PROCESSES=str(args.probe_processes),
            )
            if args.backend == "sqlite":
                procs.append(start("serve", [*healthgraph(), "serve"], env, directory))
            else:
                procs.append(start("api", [*healthgraph(), "api"], env, directory))
                procs.append(start("worker", [*healthgraph(), "worker"], env, directory))
            base_url = f"http://127.0.0.1:{port}"
            await wait_ready(base_url, procs)
            ids = await connection_ids(base_url, token)
            docs = documents()
            # Warm-up under the same load, /metrics scrapes included (the first scrapes under
            # GraphQL load step RSS up): caches and pools fill before RSS counts as a trend.
            warm = time.monotonic() + args.warmup
            await asyncio.gather(
                *(
                    client(n, base_url, token, docs, ids, warm, Results())
                    for n in range(args.clients)
                ),
                sample_lag(base_url, warm, Results(), args.scrape_every),
            )
            results = Results()
            checks_before = await count_checks(url)
            cpu_before = {proc.name: proc.cpu_seconds() for proc in (*procs, target)}
            own_before = resource.getrusage(resource.RUSAGE_SELF)
            load_before = os.getloadavg()
            began = time.monotonic()
            until = began + args.seconds
            await asyncio.gather(
                *(
                    client(n, base_url, token, docs, ids, until, results)
                    for n in range(args.clients)
                ),
                sample_lag(base_url, until, results, args.scrape_every),
                sample_store_lag(url, until, results),
                sample_rss(procs, until, results),
            )
            wall = time.monotonic() - began
            own_after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = {
                proc.name: proc.cpu_seconds() - cpu_before[proc.name] for proc in (*procs, target)
            }
            total, failed = await count_checks(url)
            checks = (total - checks_before[0], failed - checks_before[1])
            load_after = os.getloadavg()
            alive = {proc.name: proc.process.poll() is None for proc in procs}
            stopped = {proc.name: proc.stop() for proc in procs}
    finally:
        for proc in procs:
            if proc.process.poll() is None:
                proc.stop()
        target.stop()
    report(args, results, wall, checks, cpu, own_after, own_before, load_before, load_after)
    print(f"service processes alive at the end: {alive}; exit status after SIGTERM: {stopped}")
    print(f"logs in {directory}")
    return 0


def report(
    args: argparse.Namespace,
    results: Results,
    wall: float,
    checks: tuple[int, int],
    cpu: dict[str, float],
    own_after: Any,
    own_before: Any,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    every = [v for values in results.latencies.values() for v in values]
    errors = sum(results.errors.values())
    print()
    print(
        f"backend {args.backend}: {args.clients} clients for {wall:.1f} s, "
        f"{args.connections} connections every {args.interval} s"
    )
    print(f"requests ok {len(every)} ({len(every) / wall:.1f}/s), errors {errors}")
    for message, count in results.errors.most_common(10):
        print(f"  {count:6d}  {message}")
    print(f"{'query':28s} {'n':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
    for name, values in sorted(results.latencies.items()):
        print(
            f"{name:28s} {len(values):6d} {pct(values, 50) * 1000:8.1f} "
            f"{pct(values, 99) * 1000:8.1f} {max(values) * 1000:8.1f}"
        )
    print(
        f"{'all':28s} {len(every):6d} {pct(every, 50) * 1000:8.1f} "
        f"{pct(every, 99) * 1000:8.1f} {max(every, default=0) * 1000:8.1f}"
    )
    # Outbound ones probed, inbound ones swept (a MISSED_HEARTBEAT row each): one per interval.
    expected = args.connections * wall / args.interval
    print(
        f"checks written {checks[0]} ({checks[0] / wall:.1f}/s; steady state would be "
        f"{expected / wall:.1f}/s), failed probes {checks[1]}"
    )
    lag = results.store_lag
    for label, series in (
        (f"/metrics, {results.scrape_errors} failed scrapes", results.lag),
        ("its query run by the bench", lag),
    ):
        print(
            f"scheduler lag (healthgraph_scheduler_lag_seconds; {label}; {len(series)} samples): "
            f"p50 {pct(series, 50):.2f} s, p99 {pct(series, 99):.2f} s, "
            f"max {max(series, default=float('nan')):.2f} s"
        )
    trends: dict[str, float] = {}
    for name, series in results.rss.items():
        third = max(1, len(series) // 3)
        first, last = statistics.mean(series[:third]), statistics.mean(series[-third:])
        trends[name] = last / first - 1
        print(
            f"RSS {name} (MB, every 5 s): {' '.join(f'{v:.0f}' for v in series)}; "
            f"before {series[0]:.0f}, after {series[-1]:.0f}, "
            f"first third {first:.0f} -> last third {last:.0f} ({trends[name] * 100:+.1f} %); "
            f"slope over the last two thirds {slope(series[third:]) * 12:+.1f} MB/min"
        )
    client_cpu = (own_after.ru_utime + own_after.ru_stime) - (
        own_before.ru_utime + own_before.ru_stime
    )
    shares = ", ".join(f"{name} {seconds / wall:.2f}" for name, seconds in cpu.items())
    print(
        f"CPU (cores busy on average): {shares}, load generator {client_cpu / wall:.2f} "
        f"of {os.cpu_count()}; load average {load_before[0]:.1f} -> {load_after[0]:.1f}"
    )
    print()
    verdicts = [
        (f"errors == {TARGET_ERRORS}", errors == TARGET_ERRORS, f"{errors}"),
        (
            f"scheduler lag p99 < {TARGET_LAG_P99_S:g} s",
            bool(lag) and pct(lag, 99) < TARGET_LAG_P99_S,
            f"{pct(lag, 99):.2f} s",
        ),
    ]
    for name, growth in trends.items():
        verdicts.append(
            (
                f"RSS {name}: no growth trend (last third <= first third +{TARGET_RSS_GROWTH:.0%})",
                growth <= TARGET_RSS_GROWTH,
                f"{growth * 100:+.1f} %",
            )
        )
    for name, ok, value in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}")
    p50, p99 = pct(every, 50) * 1000, pct(every, 99) * 1000
    print(f"(no target) GraphQL p99 {p99:.1f} ms, p50 {p50:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument(
        "--target-hosts",
        type=int,
        default=50,
        help="loopback addresses the target answers on, one per connector (1..50); 1: every "
        "connection on one host, under the per-host limit",
    )
    parser.add_argument("--interval", type=int, default=60, help="check interval, seconds")
    parser.add_argument(
        "--warmup", type=float, default=30, help="seconds of the same load before measuring"
    )
    parser.add_argument(
        "--scrape-every", type=float, default=1, help="seconds between /metrics scrapes; 0: none"
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN_URL, help="admin URL (postgresql)")
    parser.add_argument(
        "--probe-processes",
        type=int,
        default=0,
        help="HEALTHGRAPH_PROBE_PROCESSES for serve / the worker (0: probe in that process)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
