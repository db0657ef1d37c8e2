"""Real processes for the fault tests: a private PostgreSQL cluster, `healthgraph` commands as
subprocesses, and a local target that counts what it is asked.

The machine's shared PostgreSQL is never stopped: colleagues and CI use it. A test that needs
to pull the database out from under the service starts its own throwaway cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from healthgraph.database import open_database
from store.crypto import generate_key
from store.domain import TokenScope
from store.tokens import create_token
from tests.conftest import _missing_postgres
from tests.factories import seed_outbound_connections
from tests.servers import free_port
from tests.waiting import wait_until

KEY = generate_key()


# --- a private PostgreSQL cluster ------------------------------------------------------------


def postgres_bindir() -> Path:
    """The server binaries (initdb, pg_ctl); a missing install skips, or fails in CI."""
    candidates: list[str] = []
    if shutil.which("pg_config"):
        result = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        )
        candidates.append(result.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    _missing_postgres(
        "no PostgreSQL server binaries (initdb, pg_ctl) found via pg_config --bindir or "
        "/usr/lib/postgresql/*/bin; install the Debian package postgresql"
    )
    raise AssertionError("unreachable")


@dataclass
class PrivateCluster:
    """A throwaway cluster in its own directory on a free loopback port."""

    bindir: Path
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def _run(self, *command: str) -> None:
        # initdb refuses to run as root: as root, run the tools as the postgres OS user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=False, timeout=60
        )
        if result.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{tail}"
            )

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c full_page_writes=off -c unix_socket_directories={self.directory}"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: the server dies as in a crash; what was committed is in the WAL."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[Path, Path]]:
    """One initdb per session (it takes seconds); each test runs on a copy of it."""
    bindir = postgres_bindir()
    # Not under pytest's tmp_path: its parents are root's, closed to the postgres user.
    directory = Path(tempfile.mkdtemp(prefix="hg-faults-pg-template-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    try:
        PrivateCluster(bindir, directory, 0).init()
        yield bindir, directory / "data"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def private_postgres(postgres_template: tuple[Path, Path]) -> Iterator[PrivateCluster]:
    bindir, template = postgres_template
    directory = Path(tempfile.mkdtemp(prefix="hg-faults-pg-"))
    cluster = PrivateCluster(bindir, directory, free_port())
    # cp -a keeps the owner and the 0700 mode the server insists on.
    subprocess.run(["cp", "-a", str(template), str(cluster.data)], check=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    try:
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            if (cluster.data / "postmaster.pid").exists():
                cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def read_token(database_url: str) -> str:
    """A read token, minted in-process (a CLI start costs seconds on a busy machine)."""
    database = await open_database(database_url, upgrade_embedded=False)
    try:
        async with database.sessions.begin() as session:
            token, _ = await create_token(session, scope=TokenScope.READ)
    finally:
        await database.close()
    return token


# --- healthgraph as real processes --------------------------------------------------------------


def healthgraph_command() -> list[str]:
    """The installed console script next to this interpreter."""
    script = Path(sys.executable).parent / "healthgraph"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from healthgraph.cli import main; raise SystemExit(main())"]


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    """The developer's HEALTHGRAPH_* variables left out; loopback targets admitted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHGRAPH_")}
    env.update(
        HEALTHGRAPH_DATABASE_URL=database_url,
        HEALTHGRAPH_ALLOW_TARGETS="127.0.0.1/32",
        HEALTHGRAPH_SECRET_KEYS=KEY,
        HEALTHGRAPH_LOG_LEVEL="INFO",
        HEALTHGRAPH_WORKER_METRICS_PORT=str(free_port()),
    )
    env.update(extra)
    return env


def run_healthgraph(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*healthgraph_command(), *args],
        env=service_env(database_url),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@dataclass
class Service:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    log_file: IO[str]
    base_url: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, seconds: float = 30) -> None:
        """/readyz answers 200 (an API) — or, for a worker, its start line is logged."""

        async def ready() -> bool:
            if self.process.returncode is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}:\n{self.log()}")
            if not self.base_url:
                return " started on " in self.log()
            async with httpx.AsyncClient(timeout=2) as client:
                try:
                    return (await client.get(f"{self.base_url}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

        await wait_until(ready, seconds, f"{self.name} ready", step=0.2)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 30)

    async def kill(self) -> int:
        self.process.kill()
        return await asyncio.wait_for(self.process.wait(), 10)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """Start `healthgraph ARGS...`; whatever is still running at the end is killed."""
    started: list[Service] = []

    async def start(database_url: str, *args: str, **env: str) -> Service:
        name = f"{args[0]}-{len(started)}"
        base_url = ""
        extra: list[str] = []
        if args[0] in ("serve", "api"):
            port = free_port()
            extra = ["--port", str(port)]
            base_url = f"http://127.0.0.1:{port}"
        log_path = tmp_path / f"{name}.log"
        log_file = log_path.open("w")
        process = await asyncio.create_subprocess_exec(
            *healthgraph_command(),
            *args,
            *extra,
            env=service_env(database_url, **env),
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        service = Service(name, process, log_path, log_file, base_url)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.process.returncode is None:
            service.process.kill()
            await service.process.wait()
        service.log_file.close()


# --- a target that counts -------------------------------------------------------------------------


@dataclass
class Target:
    base_url: str = ""
    hits: Counter[str] = field(default_factory=Counter)

    def url(self, n: int, path: str = "fast") -> str:
        return f"{self.base_url}/{path}/{n}"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """GET /fast/{n}: 200 "ok" at once; GET /fail/{n}: 500 at once; both counted per n."""
    state = Target()

    async def fast(request: web.Request) -> web.Response:
        state.hits[request.match_info["n"]] += 1
        return web.Response(text="ok")

    async def fail(request: web.Request) -> web.Response:
        state.hits[request.match_info["n"]] += 1
        return web.Response(status=500, text="down")

    app = web.Application()
    app.router.add_get("/fast/{n}", fast)
    app.router.add_get("/fail/{n}", fail)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.base_url = f"http://127.0.0.1:{server.port}"
    yield state
    await server.close()


# --- rows ---------------------------------------------------------------------------------------


async def seed_connections(
    database_url: str,
    urls: Sequence[str],
    *,
    interval_seconds: int,
    timeout_seconds: float = 5,
    due: bool = True,
) -> None:
    """One ACTIVE outbound connection per URL, inserted in bulk, due now (or never)."""
    database = await open_database(database_url, upgrade_embedded=True)
    try:
        async with database.sessions.begin() as session:
            await seed_outbound_connections(
                session,
                urls,
                interval_seconds=interval_seconds,
                due=due,
                timeout_seconds=timeout_seconds,
            )
    finally:
        await database.close()
