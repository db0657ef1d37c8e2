"""The worker role as real processes: one per SQLite file, many on PostgreSQL, kill -9 safe."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, update

from healthgraph.database import Database, open_database
from healthgraph.open_files import files_for
from healthgraph.probe_cores import probe_processes_for, usable_cores
from healthgraph.settings import load_settings
from healthgraph.worker import WorkerLockedError, run_worker
from probes.scheduler import SchedulerConfig
from store.crypto import generate_key
from store.engine import create_engine
from store.migrate import upgrade_database
from store.models import CheckRow, ConnectionRow
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.factories import seed_outbound_connections
from tests.servers import process_running
from tests.waiting import wait_until

KEY = generate_key()


# --- a target that counts, and can hold every answer -----------------------------------------


@dataclass
class Target:
    base_url: str
    hits: Counter[str] = field(default_factory=Counter)
    gate: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """GET /fast/{n}: 200 after 30 ms. GET /gated/{n}: 200 once the gate opens."""
    state = Target(base_url="")

    async def fast(request: web.Request) -> web.Response:
        state.hits[request.match_info["n"]] += 1
        await asyncio.sleep(0.03)
        return web.Response(text="ok")

    async def gated(request: web.Request) -> web.Response:
        state.hits[request.match_info["n"]] += 1
        async with asyncio.timeout(60):
            await state.gate.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/fast/{n}", fast)
    app.router.add_get("/gated/{n}", gated)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.base_url = f"http://127.0.0.1:{server.port}"
    yield state
    state.gate.set()
    await server.close()


# --- databases and rows --------------------------------------------------------------------------


async def add_connections(
    database: Database, base_url: str, count: int, *, path: str, due: bool
) -> None:
    """`count` outbound ACTIVE connections, hourly, each its own URL."""
    async with database.sessions.begin() as session:
        await seed_outbound_connections(
            session,
            [f"{base_url}/{path}/{n}" for n in range(count)],
            interval_seconds=3600,
            due=due,
        )


async def make_all_due(database: Database) -> None:
    async with database.sessions.begin() as session:
        await session.execute(update(ConnectionRow).values(next_check_at=datetime.now(UTC)))


async def checks_per_connection(database: Database) -> dict[int, int]:
    async with database.sessions() as session:
        rows = await session.execute(
            select(ConnectionRow.id, func.count(CheckRow.id))
            .outerjoin(CheckRow, CheckRow.connection_id == ConnectionRow.id)
            .group_by(ConnectionRow.id)
        )
        return {connection_id: count for connection_id, count in rows.all()}


async def count_checks(database: Database) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(CheckRow)) or 0)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    url = await create_postgres_database()
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    yield url
    await drop_postgres_database(url)


@pytest.fixture
async def postgres(postgres_url: str) -> AsyncIterator[Database]:
    database = await open_database(postgres_url)
    yield database
    await database.close()


# --- worker processes ---------------------------------------------------------------------------


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    log_path: Path
    log_file: IO[str]

    async def log(self) -> str:
        return await asyncio.to_thread(self.log_path.read_text)

    async def wait_started(self) -> None:
        async def started() -> bool:
            if self.process.returncode is not None:
                raise AssertionError(f"worker exited early:\n{await self.log()}")
            log = await self.log()
            # The worker's line, then its scheduler's (its budget) as the loop starts.
            return " started on " in log and " probes at once " in log

        await wait_until(started, 20)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(self.process.wait(), 20)
        self.log_file.close()
        return returncode

    async def checks_done(self) -> int:
        found = re.search(r"stopped after (\d+) checks", await self.log())
        assert found, await self.log()
        return int(found.group(1))


def worker_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHGRAPH_")}
    env.update(
        HEALTHGRAPH_DATABASE_URL=database_url,
        HEALTHGRAPH_ALLOW_TARGETS="127.0.0.1/32",
        HEALTHGRAPH_SECRET_KEYS=KEY,
        HEALTHGRAPH_LOG_LEVEL="INFO",
    )
    return env


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    started: list[Worker] = []

    async def start(
        database_url: str, *options: str, open_files: int | None = None, **env: str
    ) -> Worker:
        """`open_files`: the soft open-files limit the worker starts with."""
        log_path = tmp_path / f"worker-{len(started)}.log"
        log_file = log_path.open("w")

        def limit_open_files() -> None:
            if open_files is not None:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "healthgraph.worker",
            *options,
            env={**worker_env(database_url), **env},
            cwd=tmp_path,
            stdout=log_file,
            stderr=log_file,
            preexec_fn=limit_open_files,
        )
        worker = Worker(process, log_path, log_file)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()
        worker.log_file.close()


# --- SQLite: exactly one worker ---------------------------------------------------------------


async def test_sqlite_worker_checks_and_a_second_one_is_refused(
    tmp_path: Path, target: Target, workers: Callable[..., Awaitable[Worker]]
) -> None:
    url = f"sqlite:///{tmp_path / 'hg.db'}"
    database = await open_database(url)
    try:
        await add_connections(database, target.base_url, 3, path="fast", due=True)
        first = await workers(url)
        await first.wait_started()

        second = await workers(url)
        assert await asyncio.wait_for(second.process.wait(), 20) == 2
        assert (
            f"healthgraph: another healthgraph worker already uses {tmp_path / 'hg.db'}; "
            "SQLite supports exactly one worker — use PostgreSQL for more"
        ) in await second.log()

        async def all_checked() -> bool:
            return await count_checks(database) == 3

        await wait_until(all_checked)
        assert await first.stop() == 0
        assert await first.checks_done() == 3
        assert sorted(target.hits.values()) == [1, 1, 1]
    finally:
        await database.close()

    # Once the first has stopped, the file is free again.
    third = await workers(url)
    await third.wait_started()
    assert await third.stop() == 0


def child_pids(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_a_sqlite_worker_with_probe_processes_checks_each_connection_once(
    tmp_path: Path, target: Target, workers: Callable[..., Awaitable[Worker]]
) -> None:
    url = f"sqlite:///{tmp_path / 'hg.db'}"
    database = await open_database(url)
    try:
        await add_connections(database, target.base_url, 300, path="fast", due=True)
        worker = await workers(url, HEALTHGRAPH_PROBE_PROCESSES="2")
        await worker.wait_started()
        assert "probing in 2 processes" in await worker.log()
        probe_processes = child_pids(worker.process.pid)
        assert len(probe_processes) == 2

        async def all_checked() -> bool:
            return await count_checks(database) == 300

        await wait_until(all_checked)
        assert await worker.stop() == 0
        assert await worker.checks_done() == 300
        assert Counter(target.hits.values()) == {1: 300}
        assert Counter((await checks_per_connection(database)).values()) == {1: 300}
        # They end with their worker: none is left behind.
        assert [pid for pid in probe_processes if process_running(pid)] == []
    finally:
        await database.close()


async def test_auto_probes_a_small_catalog_in_its_own_process(
    tmp_path: Path, target: Target, workers: Callable[..., Awaitable[Worker]]
) -> None:
    url = f"sqlite:///{tmp_path / 'hg.db'}"
    database = await open_database(url)
    try:
        await add_connections(database, target.base_url, 300, path="fast", due=False)
    finally:
        await database.close()
    worker = await workers(url)  # HEALTHGRAPH_PROBE_PROCESSES unset: auto
    await worker.wait_started()
    log = await worker.log()
    assert (
        f"HEALTHGRAPH_PROBE_PROCESSES=auto: the catalog asks for 0 checks/s on {usable_cores()} "
        "cores: 0 probe processes" in log
    )
    assert "probing in this process" in log
    assert child_pids(worker.process.pid) == []
    assert await worker.stop() == 0


async def catalog_asking_3000_checks_a_second(tmp_path: Path, target: Target) -> str:
    """A SQLite catalog of 3,000 connections checked every second, none due during the test:
    its URL."""
    url = f"sqlite:///{tmp_path / 'hg.db'}"
    database = await open_database(url)
    try:
        await add_connections(database, target.base_url, 3000, path="fast", due=False)
        async with database.sessions.begin() as session:
            await session.execute(update(ConnectionRow).values(check_interval_seconds=1))
    finally:
        await database.close()
    return url


async def test_auto_starts_probe_processes_when_the_catalog_asks_for_many_checks(
    tmp_path: Path, target: Target, workers: Callable[..., Awaitable[Worker]]
) -> None:
    url = await catalog_asking_3000_checks_a_second(tmp_path, target)
    cores = usable_cores()
    expected = probe_processes_for(3000, cores)
    assert expected == min(2, cores - 1)  # one per 1,500 checks/s, within the spare cores
    worker = await workers(url, open_files=1024)
    await worker.wait_started()
    log = await worker.log()
    assert f"the catalog asks for 3000 checks/s on {cores} cores: {expected} probe processes" in log
    # 200 probes in flight for the worker's own event loop and 200 for each probe process's,
    # with the descriptors for them, inherited by the probe processes.
    budget = 200 * (1 + expected)
    assert f"up to {budget} probes at once (20 per host)" in log
    children = child_pids(worker.process.pid)
    assert len(children) == expected
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for pid in [worker.process.pid, *children]:
        assert open_files_limits(pid) == (min(files_for(budget), hard), hard)
    assert await worker.stop() == 0


async def test_a_budget_given_stays_whatever_the_probe_processes(
    tmp_path: Path, target: Target, workers: Callable[..., Awaitable[Worker]]
) -> None:
    url = await catalog_asking_3000_checks_a_second(tmp_path, target)
    # The setting, and an option over it.
    worker = await workers(url, HEALTHGRAPH_PROBE_PROCESSES="2", HEALTHGRAPH_PROBES_IN_FLIGHT="70")
    await worker.wait_started()
    log = await worker.log()
    assert "probing in 2 processes" in log
    assert "up to 70 probes at once (20 per host)" in log
    assert await worker.stop() == 0
    worker = await workers(
        url,
        "--concurrency",
        "30",
        HEALTHGRAPH_PROBE_PROCESSES="2",
        HEALTHGRAPH_PROBES_IN_FLIGHT="70",
    )
    await worker.wait_started()
    assert "up to 30 probes at once (20 per host)" in await worker.log()
    assert await worker.stop() == 0


def open_files_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line in /proc/PID/limits")


async def test_a_worker_raises_its_open_files_limit_for_its_probes_in_flight(
    tmp_path: Path, workers: Callable[..., Awaitable[Worker]]
) -> None:
    # Started as many systems start services: a soft limit of 1,024 far below the hard one.
    worker = await workers(f"sqlite:///{tmp_path / 'hg.db'}", open_files=1024)
    await worker.wait_started()
    soft, hard = open_files_limits(worker.process.pid)
    wanted = files_for(SchedulerConfig().probes_in_flight)
    assert wanted == 1424  # each of 200 probes' socket, as many kept alive, and the rest
    assert (soft, hard) == (min(wanted, hard), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    assert await worker.stop() == 0


@pytest.mark.postgres
async def test_auto_on_postgresql_probes_in_the_workers_own_process(
    postgres: Database,
    postgres_url: str,
    target: Target,
    workers: Callable[..., Awaitable[Worker]],
) -> None:
    await add_connections(postgres, target.base_url, 3000, path="fast", due=False)
    async with postgres.sessions.begin() as session:
        await session.execute(update(ConnectionRow).values(check_interval_seconds=1))
    worker = await workers(postgres_url)
    await worker.wait_started()
    log = await worker.log()
    assert "HEALTHGRAPH_PROBE_PROCESSES=auto on PostgreSQL: probing in this process" in log
    assert child_pids(worker.process.pid) == []
    assert await worker.stop() == 0


async def test_run_worker_in_process_refuses_a_second_one_on_sqlite(tmp_path: Path) -> None:
    settings = load_settings({"HEALTHGRAPH_DATABASE_URL": f"sqlite:///{tmp_path / 'hg.db'}"})
    stop = asyncio.Event()
    config = SchedulerConfig(idle_poll_seconds=0.05)
    running = asyncio.create_task(run_worker(settings, stop, config=config))
    async with asyncio.timeout(20):
        while not (tmp_path / "hg.db.worker.lock").exists():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    with pytest.raises(WorkerLockedError, match="SQLite supports exactly one worker"):
        await run_worker(settings, asyncio.Event())
    stop.set()
    await asyncio.wait_for(running, 20)


async def test_an_unreachable_database_stops_the_worker_with_a_message(
    workers: Callable[..., Awaitable[Worker]],
) -> None:
    worker = await workers("postgresql://nobody@127.0.0.1:1/none")
    assert await asyncio.wait_for(worker.process.wait(), 30) == 1
    assert "healthgraph: cannot reach the database" in await worker.log()
    assert "Traceback" not in await worker.log()


# --- PostgreSQL: many workers ----------------------------------------------------------------


@pytest.mark.postgres
async def test_three_workers_check_each_of_2000_connections_exactly_once(
    postgres: Database,
    postgres_url: str,
    target: Target,
    workers: Callable[..., Awaitable[Worker]],
) -> None:
    await add_connections(postgres, target.base_url, 2000, path="fast", due=False)
    # At most 20 probes in flight per worker (one host, 20 slots, 30 ms a check): one worker
    # alone would need 3 s, so the others, polling every 0.5 s, surely find work. With the
    # default 200 a worker claimed 1,800 rows before the third first looked (CI, 0/200/1800).
    started = [await workers(postgres_url, "--concurrency", "20") for _ in range(3)]
    for worker in started:
        await worker.wait_started()
    await make_all_due(postgres)  # all three are polling when the work appears

    async def all_checked() -> bool:
        return await count_checks(postgres) >= 2000

    await wait_until(all_checked, 40)
    await asyncio.sleep(1)  # a duplicate would need a moment more to land
    assert [await worker.stop() for worker in started] == [0, 0, 0]

    per_connection = await checks_per_connection(postgres)
    assert len(per_connection) == 2000
    assert Counter(per_connection.values()) == {1: 2000}
    assert len(target.hits) == 2000 and set(target.hits.values()) == {1}
    done = [await worker.checks_done() for worker in started]
    assert sum(done) == 2000
    assert all(n > 0 for n in done), done  # the work was shared


@pytest.mark.postgres
async def test_a_killed_workers_claims_are_checked_by_the_others_after_the_lease(
    postgres: Database,
    postgres_url: str,
    target: Target,
    workers: Callable[..., Awaitable[Worker]],
) -> None:
    await add_connections(postgres, target.base_url, 400, path="gated", due=False)
    victim = await workers(postgres_url, "--lease-seconds", "3", "--concurrency", "100")
    await victim.wait_started()
    await make_all_due(postgres)

    async def holding_claims() -> bool:
        async with postgres.sessions() as session:
            claimed = await session.scalar(
                select(func.count()).where(ConnectionRow.claimed_by.is_not(None))
            )
        # It claims every row: the ones waiting for the host's 20 slots do not take its room.
        return claimed == 400 and sum(target.hits.values()) >= 10  # probes under way

    await wait_until(holding_claims)
    victim.process.kill()  # SIGKILL: no clean-up of any kind
    assert await asyncio.wait_for(victim.process.wait(), 10) == -signal.SIGKILL
    async with postgres.sessions() as session:
        orphaned = dict(
            (
                await session.execute(
                    select(ConnectionRow.id, ConnectionRow.lease_expires_at).where(
                        ConnectionRow.claimed_by == f"{socket.gethostname()}:{victim.process.pid}"
                    )
                )
            ).all()
        )
    assert len(orphaned) == 400
    assert await count_checks(postgres) == 0

    target.gate.set()  # from now on the target answers at once
    rescuers = [await workers(postgres_url, "--lease-seconds", "3") for _ in range(2)]

    async def all_checked() -> bool:
        return await count_checks(postgres) >= 400

    await wait_until(all_checked, 40)
    await asyncio.sleep(0.5)
    assert [await worker.stop() for worker in rescuers] == [0, 0]

    assert Counter((await checks_per_connection(postgres)).values()) == {1: 400}
    async with postgres.sessions() as session:
        rows = (
            await session.execute(
                select(CheckRow.connection_id, CheckRow.checked_at).where(
                    CheckRow.connection_id.in_(orphaned)
                )
            )
        ).all()
        unclaimed = await session.scalar(
            select(func.count()).where(ConnectionRow.claimed_by.is_not(None))
        )
    assert len(rows) == 400
    for connection_id, checked_at in rows:
        assert checked_at >= orphaned[connection_id]  # only once the lease had run out
    assert unclaimed == 0
