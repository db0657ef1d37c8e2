"""Heartbeat scheduler benchmark (issue 4): checks/s, lag at 100k, workers, blackbox_exporter.

    .venv/bin/python bench/probe_bench.py [--sections e2e,lag,workers] [--postgres ADMIN_URL]
        [--repeat 2] [--py-spy DIR] ...   (--help for every knob; see bench/PROBES.md)

Needs nginx, wrk and prometheus-blackbox-exporter (Debian packages) and a PostgreSQL admin URL
(default postgresql://postgres@127.0.0.1:5432/test; a database is created and dropped per
section). Everything runs on this machine against loopback targets started and stopped here:
  nginx      a tiny static 200 ("ok") on --ports ports of 127.0.0.1 and ::1 (temp-dir config);
  slow       an asyncio server answering every request after 200 ms (`--serve-slow`, a
             subprocess of this script), on --slow-ports ports;
  blackbox   prometheus-blackbox-exporter with an http_2xx module, driven by wrk.
Connections are bulk-inserted into a migrated SQLite file and a fresh PostgreSQL database:
OUTBOUND, ACTIVE, status CONNECTED as in steady state, each its own URL on one of --hosts
host names (apiK.localhost, which the probes' guard maps to loopback without DNS, so every
name gets its own pool and per-host limit as distinct remote APIs would), and half of them
with a Fernet-encrypted bearer credential. The scheduler always runs as real worker
processes (`python -m healthgraph.worker`, default options unless stated), so what is timed
is probe + persist + history; this script only watches the database.

Sections (each prints its figures; a summary table with targets closes the run):
  e2e      --e2e-connections made due at once, one worker: checks/s between 10 % and 90 %
           written (and overall), SQLite and PostgreSQL; then blackbox_exporter's probes/s on
           the same nginx, driven by wrk at each --wrk-connections (best kept); the ratio.
           Target >= 1.0.
  lag      --lag-connections at a --lag-interval, first due times spread evenly over one
           interval (then the scheduler's own jitter), for --lag-seconds: per-check lag =
           checked_at minus the due time in force just before (read from snapshots of every
           next_check_at), and store.scheduling.scheduler_lag sampled each second.
           Target p99 < 5 s. Statistics are refreshed after the due times are set; on a
           PostgreSQL with autovacuum off, VACUUM ANALYZE connections runs every 30 s.
  workers  PostgreSQL, target answering after 200 ms: one worker vs three, each with
           --worker-concurrency. Target >= 2.5x.
Each timed run also reports CPU: ms per check in the workers, and cores used by the workers,
PostgreSQL's backends for this database, the target, and the whole machine (with how busy it
was just before the run: other people's work shows there).

A script, never a test. The machine is shared and has 2 cores: numbers are noisy, run it twice.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import itertools
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import asyncpg
import httpx
from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.engine import make_url

from healthgraph.database import Database, open_database
from store.crypto import KeyRing, generate_key
from store.domain import ConnectionState, ConnectionStatus, Direction
from store.engine import create_engine
from store.migrate import upgrade_database
from store.models import CheckRow, ConnectionRow, ConnectorRow, ConsumerRow
from store.scheduling import scheduler_lag

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_RATIO = 1.0
TARGET_P99_LAG_S = 5.0
TARGET_SCALING = 2.5
SLOW_DELAY_S = 0.2
SNAPSHOT_EVERY_S = 4.0  # lag: how often the due times of all connections are read
VACUUM_EVERY_S = 30.0  # lag on PostgreSQL with autovacuum off
CONNECTIONS_PER_CONSUMER = 100
INSERT_CHUNK = 5_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SLOW_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: keep-alive\r\n\r\nok\n"
)


def table(model: Any) -> Table:
    result: Table = model.__table__
    return result


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (free when asked; nothing holds them)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def wait_for_port(port: int, process: subprocess.Popen[Any], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def spawn(command: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
    """Start a process (a plain function: the async code around it only polls it)."""
    return subprocess.Popen(list(command), stdin=subprocess.DEVNULL, **options)


def stop_process(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> int:
    """Stop one process this script started: `sig`, then SIGKILL after 20 s."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (0 once it is gone)."""
    try:
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields_[11]) + int(fields_[12])) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (nginx's master and its workers; serve's probe processes,
    which its scheduler thread starts: each thread lists the children it started)."""
    found = [pid]
    with suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with suppress(OSError):
                for child in (task / "children").read_text().split():
                    found.extend(process_tree(int(child)))
    return found


def rss_mib(pid: int) -> float:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def system_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, for a busy share between two readings."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


async def background_cores(seconds: float = 1.0) -> float:
    """Cores the machine keeps busy over `seconds` before a measurement (other people's tests)."""
    before = system_busy()
    await asyncio.sleep(seconds)
    after = system_busy()
    share = (after[0] - before[0]) / max(1.0, after[1] - before[1])
    return share * (os.cpu_count() or 1)


class Usage:
    """CPU used by some processes, and by the machine, between start and stop."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.started = time.monotonic()
        self.cpu_at_start = {pid: cpu_seconds(pid) for pid in self.pids}
        self.machine = system_busy()

    def add(self, pids: Sequence[int]) -> None:
        """Processes that appeared since start (all their CPU counts as used since start)."""
        for pid in pids:
            if pid not in self.cpu_at_start:
                self.pids.append(pid)
                self.cpu_at_start[pid] = 0.0

    def cpu(self) -> float:
        """CPU seconds the processes used since start."""
        return sum(cpu_seconds(pid) - self.cpu_at_start[pid] for pid in self.pids)

    def cores(self) -> tuple[float, float]:
        """(cores used by the processes, cores used by the whole machine) since start."""
        wall = max(1e-9, time.monotonic() - self.started)
        used = self.cpu()
        busy, total = system_busy()
        share = (busy - self.machine[0]) / max(1.0, total - self.machine[1])
        return used / wall, share * (os.cpu_count() or 1)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values` (nan when empty)."""
    if not values:
        return math.nan
    rank = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))
    return values[rank]


# --- targets -------------------------------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
{listen}
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""


@asynccontextmanager
async def nginx(ports: Sequence[int]) -> AsyncIterator[subprocess.Popen[bytes]]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    folder = Path(tempfile.mkdtemp(prefix="hg-probe-bench-nginx-"))
    listen = "\n".join(
        f"        listen {address}:{port};" for port in ports for address in ("127.0.0.1", "[::1]")
    )
    (folder / "nginx.conf").write_text(NGINX_CONF.format(tmp=folder, listen=listen))
    process = spawn(
        [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", "nginx.conf"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for port in ports:
            await wait_for_port(port, process)
        yield process
    finally:
        stop_process(process, signal.SIGQUIT)  # graceful: the workers drain and exit
        shutil.rmtree(folder, ignore_errors=True)


class _SlowProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: every request (GET, no body) answered 200 after a delay."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        loop = asyncio.get_running_loop()
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4 :]
            loop.call_later(self.delay, self._answer)  # same delay: answers stay in order

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(SLOW_RESPONSE)


async def serve_slow(ports: Sequence[int], delay: float) -> None:
    """The slow target's process: listen until SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    servers = [
        await loop.create_server(
            lambda: _SlowProtocol(delay), ["127.0.0.1", "::1"], port, backlog=4096
        )
        for port in ports
    ]
    print("ready", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


@asynccontextmanager
async def slow_target(ports: Sequence[int]) -> AsyncIterator[subprocess.Popen[bytes]]:
    process = spawn(
        [
            sys.executable,
            __file__,
            "--serve-slow",
            ",".join(map(str, ports)),
            "--slow-delay",
            str(SLOW_DELAY_S),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for port in ports:
            await wait_for_port(port, process)
        yield process
    finally:
        stop_process(process)


BLACKBOX_CONF = """
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""

WRK_SCRIPT = """
local paths = {{ {paths} }}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


@dataclass
class WrkResult:
    connections: int
    requests_per_s: float
    requests: int
    errors: str
    non_2xx: int
    # CPU the server under test used per request (set by blackbox_probes_per_s).
    cpu_ms_per_request: float | None = None


async def run_wrk(
    url: str, script: Path, connections: int, seconds: int, threads: int = 2
) -> WrkResult:
    binary = shutil.which("wrk") or "/usr/bin/wrk"
    process = await asyncio.create_subprocess_exec(
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(seconds + 30):
        output = (await process.communicate())[0].decode()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Socket errors:([^\n]*)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if rate is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return WrkResult(
        connections,
        float(rate.group(1)),
        int(total.group(1)),
        errors.group(1).strip() if errors else "none",
        int(non_2xx.group(1)) if non_2xx else 0,
    )


async def blackbox_probes_per_s(
    target_ports: Sequence[int], wrk_connections: Sequence[int], seconds: int, wrk_threads: int = 2
) -> list[WrkResult]:
    """blackbox_exporter probing the nginx target as fast as wrk makes it."""
    binary = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"
    folder = Path(tempfile.mkdtemp(prefix="hg-probe-bench-blackbox-"))
    (folder / "blackbox.yml").write_text(BLACKBOX_CONF)
    port = free_ports(1)[0]
    paths = ", ".join(
        f'"/probe?module=http_2xx&target=http%3A%2F%2F127.0.0.1%3A{p}%2Fhc%2F{n}"'
        for n, p in enumerate(target_ports)
    )
    script = folder / "rotate.lua"
    script.write_text(WRK_SCRIPT.format(paths=paths))
    with (folder / "blackbox.log").open("w") as log:
        process = spawn(
            [
                binary,
                f"--config.file={folder / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=log,
        )
    try:
        await wait_for_port(port, process)
        base = f"http://127.0.0.1:{port}"
        probe = f"{base}/probe?module=http_2xx&target=http://127.0.0.1:{target_ports[0]}/hc/0"
        async with httpx.AsyncClient(trust_env=False) as client:
            body = (await client.get(probe)).text
        if "probe_success 1" not in body:
            raise RuntimeError(f"blackbox_exporter's probe of nginx failed:\n{body}")
        results = []
        for connections in wrk_connections:
            usage = Usage([process.pid])
            result = await run_wrk(base, script, connections, seconds, wrk_threads)
            cores, machine = usage.cores()
            result.cpu_ms_per_request = 1000 * usage.cpu() / max(1, result.requests)
            print(
                f"    wrk -c{connections}: {result.requests_per_s:8.0f} probes/s "
                f"({result.requests} in {seconds} s, socket errors: {result.errors}, "
                f"non-2xx: {result.non_2xx}); blackbox_exporter CPU "
                f"{result.cpu_ms_per_request:.2f} ms/probe, {cores:.2f} "
                f"cores; machine {machine:.2f}",
                flush=True,
            )
            results.append(result)
        async with httpx.AsyncClient(trust_env=False) as client:
            body = (await client.get(probe)).text
        if "probe_success 1" not in body:
            raise RuntimeError(f"blackbox_exporter's probes failed after the load:\n{body}")
        return results
    finally:
        stop_process(process)
        shutil.rmtree(folder, ignore_errors=True)


# --- databases -----------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str  # "SQLite" or "PostgreSQL"
    url: str  # as HEALTHGRAPH_DATABASE_URL
    database: Database
    sqlite_file: Path | None = None
    pg_dsn: str | None = None

    async def reset(self) -> None:
        """No history, nothing claimed, nothing due."""
        async with self.database.sessions.begin() as session:
            await session.execute(delete(CheckRow))
            await session.execute(
                update(ConnectionRow).values(
                    next_check_at=None, lease_expires_at=None, claimed_by=None
                )
            )
        if self.pg_dsn is not None:
            connection = await asyncpg.connect(self.pg_dsn)
            try:
                await connection.execute("VACUUM ANALYZE connections")
                await connection.execute("VACUUM ANALYZE checks")
            finally:
                await connection.close()

    async def make_all_due(self) -> None:
        async with self.database.sessions.begin() as session:
            await session.execute(update(ConnectionRow).values(next_check_at=datetime.now(UTC)))

    async def spread_due(self, start: float, interval: int, count: int) -> None:
        """Due times spread evenly over [start, start + interval), scrambled across ids."""

        def due(connection_id: int) -> float:
            return start + ((connection_id * 7919) % count) / count * interval

        if self.sqlite_file is not None:
            path = self.sqlite_file

            def write() -> None:
                connection = sqlite3.connect(path, timeout=30)
                try:
                    ids = [row[0] for row in connection.execute("SELECT id FROM connections")]
                    connection.executemany(
                        "UPDATE connections SET next_check_at = ? WHERE id = ?",
                        [
                            (
                                datetime.fromtimestamp(due(i), UTC).strftime(
                                    "%Y-%m-%d %H:%M:%S.%f"
                                ),
                                i,
                            )
                            for i in ids
                        ],
                    )
                    connection.commit()
                finally:
                    connection.close()

            await asyncio.to_thread(write)
            return
        assert self.pg_dsn is not None
        connection = await asyncpg.connect(self.pg_dsn)
        try:
            await connection.execute(
                "UPDATE connections SET next_check_at = to_timestamp("
                "$1::float8 + ((id::bigint * 7919) % $2)::float8 / $2 * $3)",
                start,
                count,
                float(interval),
            )
            # As autovacuum would have by now: a planner that believes no row has a due time
            # is not the steady state this measures.
            await connection.execute("ANALYZE connections")
        finally:
            await connection.close()

    async def autovacuum_is_off(self) -> bool:
        if self.pg_dsn is None:
            return False
        connection = await asyncpg.connect(self.pg_dsn)
        try:
            return bool(await connection.fetchval("SHOW autovacuum") == "off")
        finally:
            await connection.close()

    async def vacuum_every(self, seconds: float) -> None:
        """Stand in for autovacuum (off on a test server): VACUUM ANALYZE connections, which
        every check updates twice, so claims do not wade through dead rows and old stats."""
        connection = await asyncpg.connect(self.pg_dsn)
        try:
            while True:
                await asyncio.sleep(seconds)
                await connection.execute("VACUUM ANALYZE connections")
        finally:
            await connection.close()

    async def server_pids(self) -> list[int]:
        """PostgreSQL's backends serving this database (none for SQLite: it runs in-process)."""
        if self.pg_dsn is None:
            return []
        connection = await asyncpg.connect(self.pg_dsn)
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await connection.close()
        return [row["pid"] for row in rows]

    async def count_checks(self) -> int:
        async with self.database.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(CheckRow)) or 0)

    async def close(self) -> None:
        await self.database.close()


@asynccontextmanager
async def sqlite_backend() -> AsyncIterator[Backend]:
    folder = Path(tempfile.mkdtemp(prefix="hg-probe-bench-sqlite-"))
    path = folder / "bench.db"
    url = f"sqlite:///{path}"
    database = await open_database(url)
    try:
        yield Backend("SQLite", url, database, sqlite_file=path)
    finally:
        await database.close()
        shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def postgres_backend(admin_url: str) -> AsyncIterator[Backend]:
    admin = make_url(admin_url).set(drivername="postgresql")
    admin_dsn = admin.render_as_string(hide_password=False)
    name = f"hg_bench_probe_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        engine = create_engine(url)
        try:
            await upgrade_database(engine)
        finally:
            await engine.dispose()
        database = await open_database(url)
        try:
            yield Backend("PostgreSQL", url, database, pg_dsn=url)
        finally:
            await database.close()
    finally:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def hosts_on(ports: Sequence[int], hosts: int) -> list[tuple[str, int]]:
    """`hosts` distinct origins over `ports`: apiK.localhost, which the guard (and so every
    probe) maps to 127.0.0.1 and ::1 without DNS. Distinct names, so each has its own pool
    and per-host limit as distinct remote APIs would."""
    return [(f"api{k}.localhost", ports[k % len(ports)]) for k in range(hosts)]


async def seed(
    backend: Backend,
    *,
    count: int,
    origins: Sequence[tuple[str, int]],
    interval: int,
    key_ring: KeyRing,
    credentials_share: float,
) -> None:
    """`count` OUTBOUND ACTIVE CONNECTED connections, none due yet, each its own URL.

    One connector per origin (its template names it), connections spread round-robin over the
    origins; `credentials_share` of them carry a Fernet-encrypted bearer token.
    """
    started = time.perf_counter()
    now = datetime.now(UTC)
    ciphertexts = [
        key_ring.encrypt({"kind": "bearer", "token": f"bench-token-{n:04d}"}) for n in range(64)
    ]
    every = round(1 / credentials_share) if credentials_share > 0 else 0
    consumers = -(-count // CONNECTIONS_PER_CONSUMER)
    async with backend.database.engine.begin() as connection:
        await connection.execute(
            insert(table(ConnectorRow)),
            [
                {
                    "id": k + 1,
                    "slug": f"target-{k}",
                    "name": f"Target {host}:{port}",
                    "category": "bench",
                    "heartbeat": {
                        "kind": "http",
                        "url": f"http://{host}:{port}/",
                        "timeout_seconds": 5,
                    },
                    "created_at": now,
                }
                for k, (host, port) in enumerate(origins)
            ],
        )
        for start in range(0, consumers, INSERT_CHUNK):
            await connection.execute(
                insert(table(ConsumerRow)),
                [
                    {
                        "id": c,
                        "external_id": f"tenant-{c}",
                        "name": f"Tenant {c}",
                        "created_at": now,
                    }
                    for c in range(start + 1, min(consumers, start + INSERT_CHUNK) + 1)
                ],
            )
        for start in range(0, count, INSERT_CHUNK):
            rows = []
            for n in range(start, min(count, start + INSERT_CHUNK)):
                k = n % len(origins)
                host, port = origins[k]
                consumer = n // CONNECTIONS_PER_CONSUMER + 1
                rows.append(
                    {
                        "id": n + 1,
                        "consumer_id": consumer,
                        "connector_id": k + 1,
                        "name": f"connection {n}",
                        "direction": Direction.OUTBOUND,
                        "state": ConnectionState.ACTIVE,
                        "status": ConnectionStatus.CONNECTED,
                        "last_checked_at": now - timedelta(seconds=interval),
                        "last_success_at": now - timedelta(seconds=interval),
                        "latency_ms": 1.0,
                        "check_interval_seconds": interval,
                        "failure_threshold": 1,
                        "consecutive_failures": 0,
                        "next_check_at": None,
                        "heartbeat": {
                            "url": f"http://{host}:{port}/hc/{n}?tenant=tenant-{consumer}"
                        },
                        "credentials_ciphertext": ciphertexts[n % len(ciphertexts)]
                        if every and n % every == 0
                        else None,
                        "state_changed_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            await connection.execute(insert(table(ConnectionRow)), rows)
    if backend.pg_dsn is not None:
        pg = await asyncpg.connect(backend.pg_dsn)
        try:
            await pg.execute("VACUUM ANALYZE")
        finally:
            await pg.close()
    print(
        f"  seeded {count:,} connections on {backend.name} over {len(origins)} hosts in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )


# --- workers -------------------------------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: TextIO

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_started(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if re.search(r"healthgraph worker \S+ started on", self.log()):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"worker did not start:\n{self.log()}")

    def stop(self) -> tuple[int, int, int]:
        """(exit status, checks it wrote, warnings and errors it logged)."""
        returncode = stop_process(self.process)
        self.log_file.close()
        text = self.log()
        found = re.search(r"stopped after (\d+) checks", text)
        troubles = len(re.findall(r" (WARNING|ERROR) ", text))
        return returncode, int(found.group(1)) if found else -1, troubles


class Workers:
    def __init__(self, folder: Path, secret_key: str, py_spy: Path | None = None) -> None:
        self.folder = folder
        self.secret_key = secret_key
        self.started: list[Worker] = []
        self.py_spy = py_spy  # record each worker's stacks into this folder (collapsed format)
        self.profilers: list[subprocess.Popen[bytes]] = []

    def env(self, database_url: str, probe_processes: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHGRAPH_")}
        env.update(
            HEALTHGRAPH_DATABASE_URL=database_url,
            HEALTHGRAPH_ALLOW_TARGETS="127.0.0.1/32,::1/128",
            HEALTHGRAPH_SECRET_KEYS=self.secret_key,
            HEALTHGRAPH_LOG_LEVEL="INFO",
            HEALTHGRAPH_PROBE_PROCESSES=str(probe_processes),
        )
        return env

    async def start(self, database_url: str, *options: str, probe_processes: int = 0) -> Worker:
        log_path = self.folder / f"worker-{len(self.started)}.log"
        log_file = log_path.open("w")
        process = spawn(
            [sys.executable, "-m", "healthgraph.worker", *options],
            env=self.env(database_url, probe_processes),
            cwd=self.folder,
            stdout=log_file,
            stderr=log_file,
        )
        worker = Worker(process, log_path, log_file)
        self.started.append(worker)
        await worker.wait_started()
        if self.py_spy is not None:
            self.py_spy.mkdir(parents=True, exist_ok=True)
            output = self.py_spy / f"worker-{len(self.started) - 1}-{process.pid}.txt"
            self.profilers.append(
                spawn(
                    [
                        shutil.which("py-spy") or "py-spy",
                        "record",
                        "--pid",
                        str(process.pid),
                        "--rate",
                        "250",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--output",
                        str(output),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                stop_process(worker.process)
            if not worker.log_file.closed:
                worker.log_file.close()
        for profiler in self.profilers:
            with suppress(subprocess.TimeoutExpired):
                profiler.wait(30)
            stop_process(profiler, signal.SIGINT)


@dataclass
class Throughput:
    checks: int
    total_s: float
    steady_per_s: float  # between 10 % and 90 % of the checks written
    worker_cores: float
    machine_cores: float
    written: list[int]
    troubles: int
    background: float
    cpu_ms_per_check: float
    database_cores: float
    target_cores: float

    @property
    def overall_per_s(self) -> float:
        return self.checks / self.total_s


async def drain(
    backend: Backend,
    workers: Workers,
    count: int,
    worker_options: Sequence[str],
    *,
    worker_count: int = 1,
    probe_processes: int = 0,
    target_pid: int,
    limit_s: float = 300,
) -> Throughput:
    """Start the workers, make every connection due at once, time until all are checked."""
    await backend.reset()
    started = [
        await workers.start(backend.url, *worker_options, probe_processes=probe_processes)
        for _ in range(worker_count)
    ]
    try:
        background = await background_cores()
        # The worker and its probe processes (HEALTHGRAPH_PROBE_PROCESSES), if any.
        usage = Usage([pid for worker in started for pid in process_tree(worker.process.pid)])
        database = Usage(await backend.server_pids())
        target = Usage(process_tree(target_pid))
        await backend.make_all_due()
        t0 = time.monotonic()
        marks: dict[float, float] = {}
        done = 0
        while done < count:
            if time.monotonic() - t0 > limit_s:
                raise TimeoutError(f"{done} of {count} checked after {limit_s} s")
            await asyncio.sleep(0.1)
            done = await backend.count_checks()
            now = time.monotonic() - t0
            for share in (0.1, 0.9):
                if done >= share * count and share not in marks:
                    marks[share] = now
        total = time.monotonic() - t0
        database.add(await backend.server_pids())
        worker_cores, machine_cores = usage.cores()
        cpu_ms = 1000 * usage.cpu() / count
        database_cores, target_cores = database.cores()[0], target.cores()[0]
    finally:
        stopped = [worker.stop() for worker in started]
    steady = 0.8 * count / max(1e-9, marks[0.9] - marks[0.1])
    return Throughput(
        checks=count,
        total_s=total,
        steady_per_s=steady,
        worker_cores=worker_cores,
        machine_cores=machine_cores,
        written=[checks for _, checks, _ in stopped],
        troubles=sum(troubles for _, _, troubles in stopped),
        background=background,
        cpu_ms_per_check=cpu_ms,
        database_cores=database_cores,
        target_cores=target_cores,
    )


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def describe_workers(backend: str, count: int, probe_processes: int) -> str:
    """E.g. "SQLite, 1 worker + 2 probe processes"."""
    text = f"{backend}, {count} worker{'s' if count > 1 else ''}"
    if probe_processes:
        text += f" + {probe_processes} probe process{'es' if probe_processes > 1 else ''}"
        if count > 1:
            text += " each"
    return text


def describe(result: Throughput) -> str:
    return (
        f"{result.steady_per_s:7.0f} checks/s steady (10-90 %), {result.overall_per_s:7.0f} "
        f"overall ({result.checks:,} in {result.total_s:.1f} s)\n      worker CPU "
        f"{result.cpu_ms_per_check:.2f} ms/check; cores: workers {result.worker_cores:.2f}, "
        f"PostgreSQL {result.database_cores:.2f}, target {result.target_cores:.2f}, machine "
        f"{result.machine_cores:.2f} of {os.cpu_count()} (busy before start: "
        f"{result.background:.2f}); checks per worker {result.written}; "
        f"warnings {result.troubles}"
    )


# --- lag -----------------------------------------------------------------------------------------


class DueTimes:
    """Snapshots of every connection's next_check_at, to find the due time each check served."""

    def __init__(self, backend: Backend, size: int) -> None:
        self.backend = backend
        self.size = size
        self.snapshots: list[tuple[float, array.array[float]]] = []
        self.last_check_id = 0
        self.lags: list[tuple[float, float]] = []  # (checked_at, lag seconds)
        self.unmatched = 0
        self._pg: asyncpg.Connection | None = None

    async def open(self) -> None:
        if self.backend.pg_dsn is not None:
            self._pg = await asyncpg.connect(self.backend.pg_dsn)

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()

    async def _rows(self, sql_sqlite: str, sql_pg: str, *args: Any) -> list[Sequence[Any]]:
        if self._pg is not None:
            return list(await self._pg.fetch(sql_pg, *args))
        path = self.backend.sqlite_file
        assert path is not None

        def read() -> list[Sequence[Any]]:
            connection = sqlite3.connect(path, timeout=30)
            try:
                return connection.execute(sql_sqlite, args).fetchall()
            finally:
                connection.close()

        return await asyncio.to_thread(read)

    async def snapshot(self) -> None:
        taken = time.time()
        rows = await self._rows(
            "SELECT id, (julianday(next_check_at) - 2440587.5) * 86400.0 FROM connections",
            "SELECT id, extract(epoch FROM next_check_at)::float8 FROM connections",
        )
        values = array.array("d", [math.nan]) * (self.size + 1)
        for connection_id, due in rows:
            if due is not None and connection_id <= self.size:
                values[connection_id] = due
        self.snapshots.append((taken, values))
        del self.snapshots[:-8]

    async def collect(self) -> None:
        """Match the checks written since the last call with their due times."""
        rows = await self._rows(
            "SELECT id, connection_id, (julianday(checked_at) - 2440587.5) * 86400.0 "
            "FROM checks WHERE id > ? ORDER BY id",
            "SELECT id, connection_id, extract(epoch FROM checked_at)::float8 "
            "FROM checks WHERE id > $1 ORDER BY id",
            self.last_check_id,
        )
        for check_id, connection_id, checked_at in rows:
            self.last_check_id = max(self.last_check_id, check_id)
            due = math.nan
            for taken, values in reversed(self.snapshots):
                if taken < checked_at:
                    due = values[connection_id]
                    break
            if math.isnan(due):
                self.unmatched += 1
            else:
                self.lags.append((checked_at, checked_at - due))


@dataclass
class LagResult:
    backend: str
    connections: int
    interval: int
    seconds: float
    checks: int
    required_per_s: float
    lags: list[float]
    per_interval: list[tuple[int, float, float, int]]  # (interval, p50, p99, checks)
    sampled: list[float]  # scheduler_lag: seconds the oldest due connection is overdue
    overdue: list[int]  # scheduler_lag: connections due and not yet checked
    unmatched: int
    worker_cores: float
    machine_cores: float
    rss_mib: float
    troubles: int
    cpu_ms_per_check: float
    observer_cores: float
    history: list[tuple[float, int, float]] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.checks / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.lags, q)


async def measure_lag(
    backend: Backend,
    workers: Workers,
    *,
    count: int,
    interval: int,
    seconds: float,
    worker_options: Sequence[str],
    probe_processes: int = 0,
) -> LagResult:
    await backend.reset()
    worker = await workers.start(backend.url, *worker_options, probe_processes=probe_processes)
    due_times = DueTimes(backend, count)
    await due_times.open()
    history: list[tuple[float, int, float]] = []
    sampled: list[float] = []
    overdue: list[int] = []
    vacuum: asyncio.Task[None] | None = None
    if await backend.autovacuum_is_off():
        print(
            f"    autovacuum is off on this server: VACUUM ANALYZE connections every "
            f"{VACUUM_EVERY_S:.0f} s stands in for it",
            flush=True,
        )
        vacuum = asyncio.create_task(backend.vacuum_every(VACUUM_EVERY_S))
    try:
        start = time.time() + 3.0
        await backend.spread_due(start, interval, count)
        await due_times.snapshot()
        usage = Usage(process_tree(worker.process.pid))
        observer = Usage([os.getpid()])
        end = start + seconds
        next_snapshot = next_report = time.time()
        while (now := time.time()) < end:
            if worker.process.poll() is not None:
                raise RuntimeError(f"the worker died:\n{worker.log()[-3000:]}")
            async with backend.database.sessions() as session:
                count_due, oldest = await scheduler_lag(session, datetime.now(UTC))
            if now >= start:
                sampled.append(oldest)
                overdue.append(count_due)
            if now >= next_snapshot:
                await due_times.snapshot()
                await due_times.collect()
                next_snapshot = now + SNAPSHOT_EVERY_S
            if now >= next_report:
                done = len(due_times.lags) + due_times.unmatched
                recent = sorted(lag for at, lag in due_times.lags if at >= now - 10)
                history.append((now - start, done, percentile(recent, 99)))
                print(
                    f"    t={now - start:6.1f} s  checked {done:7,}  overdue now {count_due:6,} "
                    f"(oldest {oldest:5.1f} s)  lag p99 last 10 s {percentile(recent, 99):6.2f} s",
                    flush=True,
                )
                next_report = now + 15.0
            await asyncio.sleep(max(0.0, min(1.0, end - time.time())))
        worker_cores, machine_cores = usage.cores()
        worker_cpu = usage.cpu()
        observer_cores = observer.cores()[0]
        rss = rss_mib(worker.process.pid)
        await asyncio.sleep(2.0)  # what was probed before the end gets written
        await due_times.snapshot()
        await due_times.collect()
    finally:
        if vacuum is not None:
            vacuum.cancel()
            with suppress(asyncio.CancelledError):
                await vacuum
        _, _, troubles = worker.stop()
        await due_times.close()
    inside = [(at, lag) for at, lag in due_times.lags if start <= at < end]
    lags = sorted(lag for _, lag in inside)
    per_interval = []
    for k in range(math.ceil(seconds / interval)):
        chunk = sorted(
            lag
            for at, lag in inside
            if start + k * interval <= at < min(end, start + (k + 1) * interval)
        )
        per_interval.append((k + 1, percentile(chunk, 50), percentile(chunk, 99), len(chunk)))
    return LagResult(
        backend=backend.name,
        connections=count,
        interval=interval,
        seconds=seconds,
        checks=len(lags),
        required_per_s=count / interval,
        lags=lags,
        per_interval=per_interval,
        sampled=sorted(sampled),
        overdue=sorted(overdue),
        unmatched=due_times.unmatched,
        worker_cores=worker_cores,
        machine_cores=machine_cores,
        rss_mib=rss,
        troubles=troubles,
        cpu_ms_per_check=1000 * worker_cpu / max(1, len(lags)),
        observer_cores=observer_cores,
        history=history,
    )


def print_lag(result: LagResult) -> None:
    print(
        f"  {result.backend}: {result.checks:,} checks in {result.seconds:.0f} s = "
        f"{result.per_s:.0f}/s (steady state needs {result.required_per_s:.0f}/s)"
    )
    print(
        f"    per-check lag (checked_at - due): p50 {result.p(50):.2f} s, p90 {result.p(90):.2f} "
        f"s, p99 {result.p(99):.2f} s, max {result.p(100):.2f} s"
        + (f"; {result.unmatched} checks unmatched" if result.unmatched else "")
    )
    for k, p50, p99, checks in result.per_interval:
        print(f"      interval {k}: {checks:7,} checks, lag p50 {p50:6.2f} s, p99 {p99:6.2f} s")
    print(
        f"    scheduler_lag sampled each second: oldest overdue p50 "
        f"{percentile(result.sampled, 50):.2f} s, p99 {percentile(result.sampled, 99):.2f} s, "
        f"max {percentile(result.sampled, 100):.2f} s; overdue connections p50 "
        f"{percentile(result.overdue, 50):.0f}, max {percentile(result.overdue, 100):.0f}"
    )
    print(
        f"    worker CPU {result.cpu_ms_per_check:.2f} ms/check, {result.worker_cores:.2f} cores, "
        f"machine {result.machine_cores:.2f} of "
        f"{os.cpu_count()} (this script's sampling: {result.observer_cores:.2f}), worker RSS "
        f"{result.rss_mib:.0f} MiB, warnings {result.troubles}",
        flush=True,
    )


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Summary:
    rows: list[tuple[str, str, str, bool | None]] = field(default_factory=list)

    def add(
        self, name: str, values: Sequence[float], fmt: str, target: str, ok: bool | None
    ) -> None:
        shown = " / ".join(format(v, fmt) for v in values)
        self.rows.append((name, shown, target, ok))

    def print(self) -> None:
        width = max(len(row[0]) for row in self.rows)
        vwidth = max(len(row[1]) for row in self.rows)
        print(f"\n{'figure':<{width}}  {'value (each run)':<{vwidth}}  {'target':<14}  result")
        for name, shown, target, ok in self.rows:
            verdict = "-" if ok is None else "PASS" if ok else "FAIL"
            print(f"{name:<{width}}  {shown:<{vwidth}}  {target:<14}  {verdict}")


@contextmanager
def scratch_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="hg-probe-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def section_e2e(
    args: argparse.Namespace, workers: Workers, key_ring: KeyRing, summary: Summary
) -> None:
    ports = free_ports(args.ports)
    print(
        f"\n== e2e: {args.e2e_connections:,} connections due now, workers with default options, "
        f"nginx on {len(ports)} ports as {args.hosts} host names; blackbox_exporter on the "
        "same target ==",
        flush=True,
    )
    rates: dict[str, list[float]] = {}
    blackbox: list[float] = []
    async with nginx(ports) as target:
        for make in backends(args):
            async with make() as backend:
                await seed(
                    backend,
                    count=args.e2e_connections,
                    origins=hosts_on(ports, args.hosts),
                    interval=3600,
                    key_ring=key_ring,
                    credentials_share=args.credentials_share,
                )
                counts = args.e2e_pg_workers if backend.pg_dsn else [1]
                for count, processes in itertools.product(counts, args.probe_processes):
                    name = describe_workers(backend.name, count, processes)
                    for run in range(args.repeat):
                        result = await drain(
                            backend,
                            workers,
                            args.e2e_connections,
                            (),
                            worker_count=count,
                            probe_processes=processes,
                            target_pid=target.pid,
                        )
                        print(f"  {name}, run {run + 1}: {describe(result)}", flush=True)
                        rates.setdefault(name, []).append(result.steady_per_s)
        for run in range(args.repeat if args.blackbox else 0):
            print(f"  blackbox_exporter run {run + 1} (wrk -t2, {args.wrk_seconds} s each):")
            results = await blackbox_probes_per_s(ports, args.wrk_connections, args.wrk_seconds)
            blackbox.append(max(result.requests_per_s for result in results))
    for name, values in rates.items():
        summary.add(f"e2e checks/s, {name}", values, ".0f", "", None)
    if not blackbox:
        return
    summary.add("blackbox_exporter probes/s (best wrk -c)", blackbox, ".0f", "", None)
    bb = statistics.mean(blackbox)
    for name, values in rates.items():
        ratios = [value / bb for value in values]
        summary.add(
            f"ratio e2e {name} / blackbox",
            ratios,
            ".2f",
            f">= {TARGET_RATIO:.1f}",
            statistics.mean(ratios) >= TARGET_RATIO,
        )


async def section_lag(
    args: argparse.Namespace, workers: Workers, key_ring: KeyRing, summary: Summary
) -> None:
    ports = free_ports(args.ports)
    print(
        f"\n== lag: {args.lag_connections:,} connections every {args.lag_interval} s for "
        f"{args.lag_seconds:.0f} s, one worker (default options), nginx on {len(ports)} ports "
        f"as {args.hosts} host names ==",
        flush=True,
    )
    async with nginx(ports):
        for make, processes in itertools.product(
            backends(args, lag=True), args.lag_probe_processes
        ):
            async with make() as backend:
                await seed(
                    backend,
                    count=args.lag_connections,
                    origins=hosts_on(ports, args.hosts),
                    interval=args.lag_interval,
                    key_ring=key_ring,
                    credentials_share=args.credentials_share,
                )
                result = await measure_lag(
                    backend,
                    workers,
                    count=args.lag_connections,
                    interval=args.lag_interval,
                    seconds=args.lag_seconds,
                    worker_options=(),
                    probe_processes=processes,
                )
                print_lag(result)
                label = (
                    f"{args.lag_connections // 1000}k/{args.lag_interval}s, "
                    f"{describe_workers(backend.name, 1, processes)}"
                )
                summary.add(f"lag p50 s, {label}", [result.p(50)], ".2f", "", None)
                summary.add(
                    f"lag p99 s, {label}",
                    [result.p(99)],
                    ".2f",
                    f"< {TARGET_P99_LAG_S:.0f} s",
                    result.p(99) < TARGET_P99_LAG_S,
                )
                summary.add(
                    f"checks/s sustained, {label}",
                    [result.per_s],
                    ".0f",
                    f"({result.required_per_s:.0f} needed)",
                    None,
                )


async def section_workers(
    args: argparse.Namespace, workers: Workers, key_ring: KeyRing, summary: Summary
) -> None:
    ports = free_ports(args.slow_ports)
    options = ("--concurrency", str(args.worker_concurrency))
    print(
        f"\n== workers: PostgreSQL, {args.slow_connections:,} connections due now, target "
        f"answers after {SLOW_DELAY_S * 1000:.0f} ms on {len(ports)} ports as {args.hosts} host "
        f"names, each worker {' '.join(options)} ==",
        flush=True,
    )
    one: list[float] = []
    three: list[float] = []
    async with slow_target(ports) as target, postgres_backend(args.postgres) as backend:
        await seed(
            backend,
            count=args.slow_connections,
            origins=hosts_on(ports, args.hosts),
            interval=3600,
            key_ring=key_ring,
            credentials_share=args.credentials_share,
        )
        for run in range(args.repeat):
            for count, into in ((1, one), (3, three)):
                result = await drain(
                    backend,
                    workers,
                    args.slow_connections,
                    options,
                    worker_count=count,
                    target_pid=target.pid,
                )
                print(f"  {count} worker(s) run {run + 1}: {describe(result)}", flush=True)
                into.append(result.steady_per_s)
    ceiling = args.worker_concurrency / SLOW_DELAY_S
    summary.add("checks/s, 1 PG worker, 200 ms target", one, ".0f", f"(<= {ceiling:.0f})", None)
    summary.add("checks/s, 3 PG workers, 200 ms target", three, ".0f", "", None)
    scaling = [b / a for a, b in zip(one, three, strict=True)]
    summary.add(
        "scaling 3 workers / 1",
        scaling,
        ".2f",
        f">= {TARGET_SCALING:.1f}x",
        statistics.mean(scaling) >= TARGET_SCALING,
    )


def backends(args: argparse.Namespace, *, lag: bool = False) -> list[Callable[[], Any]]:
    chosen = args.lag_backends if lag else args.backends
    makers: list[Callable[[], Any]] = []
    if "sqlite" in chosen:
        makers.append(sqlite_backend)
    if "postgresql" in chosen:
        makers.append(lambda: postgres_backend(args.postgres))
    return makers


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sections", default="e2e,lag,workers")
    parser.add_argument("--postgres", default=DEFAULT_PG_ADMIN_URL, metavar="ADMIN_URL")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=2, help="runs of the e2e/workers figures")
    parser.add_argument("--ports", type=int, default=16, help="target ports")
    parser.add_argument("--hosts", type=int, default=64, help="host names over those ports")
    parser.add_argument("--credentials-share", type=float, default=0.5)
    parser.add_argument("--e2e-connections", type=int, default=20_000)
    parser.add_argument("--e2e-pg-workers", default="1,2", help="worker counts on PostgreSQL")
    parser.add_argument("--blackbox", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--wrk-connections", default="32,128")
    parser.add_argument("--wrk-seconds", type=int, default=8)
    parser.add_argument("--lag-connections", type=int, default=100_000)
    parser.add_argument("--lag-interval", type=int, default=60)
    parser.add_argument("--lag-seconds", type=float, default=180.0)
    parser.add_argument("--lag-backends", default="sqlite,postgresql")
    parser.add_argument("--slow-ports", type=int, default=16)
    parser.add_argument("--slow-connections", type=int, default=8_000)
    parser.add_argument("--worker-concurrency", type=int, default=100)
    parser.add_argument(
        "--probe-processes",
        type=int_list,
        default=[0, 2],
        help="e2e: HEALTHGRAPH_PROBE_PROCESSES values to run each worker count with "
        "(0: probe in the worker itself)",
    )
    parser.add_argument(
        "--lag-probe-processes",
        type=int_list,
        default=[2],
        help="lag: HEALTHGRAPH_PROBE_PROCESSES values for the one worker",
    )
    parser.add_argument(
        "--py-spy", type=Path, metavar="DIR", help="record the workers with py-spy (raw stacks)"
    )
    parser.add_argument("--serve-slow", metavar="PORTS", help=argparse.SUPPRESS)
    parser.add_argument("--slow-delay", type=float, default=SLOW_DELAY_S, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.wrk_connections = [int(part) for part in args.wrk_connections.split(",")]
    args.e2e_pg_workers = [int(part) for part in args.e2e_pg_workers.split(",")]
    return args


SECTIONS: dict[str, Callable[..., Awaitable[None]]] = {
    "e2e": section_e2e,
    "lag": section_lag,
    "workers": section_workers,
}


async def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    key = generate_key()
    key_ring = KeyRing([key])
    summary = Summary()
    print(
        f"probe bench: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"sections {args.sections}, repeat {args.repeat}",
        flush=True,
    )
    with scratch_folder() as folder:
        workers = Workers(folder, key, args.py_spy)
        try:
            for name in args.sections.split(","):
                await SECTIONS[name](args, workers, key_ring, summary)
        finally:
            workers.stop_all()
    summary.print()
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    arguments_ = arguments()
    if arguments_.serve_slow:
        asyncio.run(
            serve_slow([int(p) for p in arguments_.serve_slow.split(",")], arguments_.slow_delay)
        )
    else:
        asyncio.run(main(arguments_))
