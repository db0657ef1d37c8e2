"""1,000 targets that accept and never answer beside 1,000 healthy ones: the healthy ones are
still checked on schedule.

The hanging targets sit on 50 loopback addresses (20 connections each), so the per-host limit
does not shield the healthy ones: only the scheduler's global budget and its claim order do.
They are inserted first, so at start every hanging check is ahead of every healthy one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from healthgraph.database import Database, open_database
from probes import ProbeContext
from probes.pool import ProbeProcessConfig, ProbeProcesses
from probes.scheduler import Scheduler, SchedulerConfig
from store.domain import FailureReason
from store.models import CheckRow, ConnectionRow
from tests.faults.conftest import seed_connections

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.0/8"
HANGING_HOSTS = [f"127.0.0.{n}" for n in range(10, 60)]
PER_HOST = 20
HEALTHY = 1000
INTERVAL = 8  # seconds; jitter ±10 %
TIMEOUT = 1.0
RUN_SECONDS = 20  # start + two more rounds
LAG_BOUND = 3.0  # how late a healthy check may be, beyond its interval and jitter


@dataclass(frozen=True)
class RemoteTargets:
    healthy: str  # base URL of GET /fast/{n}
    hanging: list[str]  # host:port, one silent server per address in HANGING_HOSTS


@pytest.fixture
async def remote() -> AsyncIterator[RemoteTargets]:
    """The targets in their own process (tests/faults/remote_targets.py), as real ones are: in
    this event loop, their work on a loaded CI machine was charged to the scheduler's timing."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.faults.remote_targets",
        *HANGING_HOSTS,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        started = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        yield RemoteTargets(started["healthy"], started["hanging"])
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


Checks = dict[str, list[tuple[datetime, bool, FailureReason | None, str | None]]]


async def history(database: Database) -> Checks:
    async with database.sessions() as session:
        rows = await session.execute(
            select(
                ConnectionRow.heartbeat,
                CheckRow.checked_at,
                CheckRow.success,
                CheckRow.failure_reason,
                CheckRow.error,
            )
            .join(CheckRow, CheckRow.connection_id == ConnectionRow.id)
            .order_by(CheckRow.checked_at)
        )
        found: Checks = defaultdict(list)
        for heartbeat, at, success, reason, error in rows.all():
            found[heartbeat["url"]].append((at, success, reason, error))
    return found


async def run_scheduler(
    url: str, seconds: float, probe_processes: int = 0
) -> tuple[Checks, datetime]:
    """One worker's Scheduler with the default budget (20 per host; 200 probes in flight in
    this process, 200 more per probe process) for `seconds`; then every check it wrote, per
    heartbeat URL, and when it was told to stop (its shutdown and the history read are no part
    of the schedule)."""
    database = await open_database(url)
    stop = asyncio.Event()
    config = SchedulerConfig().sized_for(probe_processes)
    try:
        async with contextlib.AsyncExitStack() as stack:
            context = await stack.enter_async_context(ProbeContext.create(allow=[LOOPBACK]))
            run_check = None
            if probe_processes:
                processes = ProbeProcesses(
                    probe_processes,
                    ProbeProcessConfig(
                        allow=(LOOPBACK,),
                        key_ring=None,
                        connections_per_origin=config.per_host_concurrency,
                    ),
                )
                run_check = (await stack.enter_async_context(processes)).check
            scheduler = Scheduler(
                database.sessions,
                context,
                worker_id="faults:1",
                config=config,
                run_check=run_check,
            )
            running = asyncio.create_task(scheduler.run(stop))
            await asyncio.sleep(seconds)
            stopped_at = datetime.now(UTC)
            stop.set()
            await asyncio.wait_for(running, 30)
        return await history(database), stopped_at
    finally:
        await database.close()


# In this process (200 probes in flight), and as `serve` runs a catalog asking for more
# checks than one process does: one probe process, 400 in flight.
@pytest.mark.parametrize("probe_processes", [0, 1])
async def test_healthy_connections_stay_on_schedule_beside_1000_hanging_ones(
    tmp_path: Path, remote: RemoteTargets, probe_processes: int
) -> None:
    url = f"sqlite:///{tmp_path / 'hg.db'}"
    hanging_urls = [
        f"http://{address}/health/{n}" for address in remote.hanging for n in range(PER_HOST)
    ]
    healthy_urls = [f"{remote.healthy}/fast/{n}" for n in range(HEALTHY)]
    await seed_connections(
        url, hanging_urls + healthy_urls, interval_seconds=INTERVAL, timeout_seconds=TIMEOUT
    )

    started = datetime.now(UTC)
    checks, ended = await run_scheduler(url, RUN_SECONDS, probe_processes)

    # Every healthy connection: its first check within an interval of the start, then one at
    # least every interval (+ jitter) + LAG_BOUND, until the end.
    # Said apart: a check that ran late, and one that ran and failed.
    late: dict[str, list[float]] = {}
    failed: dict[str, list[tuple[FailureReason | None, str | None]]] = {}
    for healthy in healthy_urls:
        times = [started] + [at for at, _, _, _ in checks[healthy]] + [ended]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        if max(gaps) > INTERVAL * 1.1 + LAG_BOUND:
            late[healthy] = gaps
        if failures := [(r, e) for _, success, r, e in checks[healthy] if not success]:
            failed[healthy] = failures
    assert (late, failed) == ({}, {})

    # Every hanging one was tried, and each try is a TIMEOUT that says where and how long.
    for hanging_url in hanging_urls:
        address = hanging_url.split("/")[2]
        tries = checks[hanging_url]
        assert tries, hanging_url
        assert {(s, r, e) for _, s, r, e in tries} == {
            (False, FailureReason.TIMEOUT, f"no complete answer from {address} within 1 s")
        }


async def test_healthy_connections_stay_on_schedule_while_one_host_hangs_1000_checks(
    tmp_path: Path, remote: RemoteTargets
) -> None:
    """The likelier outage: one vendor's API hangs for all 1,000 of its connections. The
    per-host limit keeps 20 probes on it at a time; the other hosts must not wait for it."""
    url = f"sqlite:///{tmp_path / 'hg.db'}"
    hanging_urls = [f"http://{remote.hanging[0]}/health/{n}" for n in range(1000)]
    healthy_urls = [f"{remote.healthy}/fast/{n}" for n in range(HEALTHY)]
    await seed_connections(
        url, hanging_urls + healthy_urls, interval_seconds=INTERVAL, timeout_seconds=TIMEOUT
    )
    deadline = datetime.now(UTC) + timedelta(seconds=INTERVAL + LAG_BOUND)
    checks, _ = await run_scheduler(url, INTERVAL + LAG_BOUND)
    # Within an interval and the bound, every healthy connection has had its first check.
    unchecked = [u for u in healthy_urls if not checks[u] or checks[u][0][0] > deadline]
    assert unchecked == []
