"""Probe processes: checks run in child processes give the outcomes they give in-process."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from healthgraph.database import Database
from probes import ProbeContext
from probes.check import check_connection
from probes.pool import ProbeProcessConfig, ProbeProcesses
from probes.scheduler import Scheduler
from store.crypto import KeyRing, generate_key
from store.domain import CheckOutcome, ConnectionStatus, FailureReason
from store.scheduling import DueCheck
from tests.probes.conftest import LOOPBACK, HttpServer
from tests.probes.test_scheduler import FAST, all_checks, due, no_jitter
from tests.servers import process_running
from tests.store.test_scheduling import Graph, make_graph

KEY_RING = KeyRing([generate_key()])


def due_check(connection_id: int, url: str, **fields: Any) -> DueCheck:
    return DueCheck(
        connection_id=connection_id,
        external_id="acme",
        heartbeat={"kind": "http", "url": url, "timeout_seconds": fields.pop("timeout", 5)},
        credentials_ciphertext=fields.pop("ciphertext", None),
        check_interval_seconds=60,
        failure_threshold=1,
        due_at=None,
        lease_expires_at=None,
    )


def summary(outcome: CheckOutcome) -> tuple[bool, FailureReason | None, int | None, str | None]:
    return (outcome.success, outcome.failure_reason, outcome.http_status, outcome.error)


@pytest.fixture
async def processes() -> AsyncIterator[ProbeProcesses]:
    config = ProbeProcessConfig(allow=tuple(LOOPBACK), key_ring=KEY_RING, connections_per_origin=4)
    async with ProbeProcesses(2, config) as started:
        yield started


async def test_checks_in_probe_processes_match_checks_in_this_process(
    processes: ProbeProcesses,
    http_server: HttpServer,
    closed_port: int,
    loopback_context: ProbeContext,
) -> None:
    sealed = KEY_RING.encrypt({"kind": "bearer", "token": "in-the-child"})
    checks = [
        due_check(1, http_server.url("/status/200")),
        due_check(2, http_server.url("/status/500")),
        due_check(3, http_server.url("/status/401")),
        due_check(4, http_server.url("/echo"), ciphertext=sealed),
        due_check(5, f"http://127.0.0.1:{closed_port}/"),
        due_check(6, "http://10.0.0.1/"),
    ]
    remote = await asyncio.gather(*(processes.check(check) for check in checks))
    here = [await check_connection(check, loopback_context, KEY_RING) for check in checks]
    assert [summary(outcome) for outcome, _ in remote] == [summary(o) for o in here]
    assert [summary(outcome) for outcome, _ in remote] == [
        (True, None, 200, None),
        (False, FailureReason.HTTP_STATUS, 500, "HTTP 500 Internal Server Error; expected 200"),
        (False, FailureReason.AUTH, 401, "HTTP 401 Unauthorized; expected 200"),
        (True, None, 200, None),
        (
            False,
            FailureReason.CONNECT,
            None,
            f"connection to 127.0.0.1:{closed_port} failed: Connection refused",
        ),
        (
            False,
            FailureReason.BLOCKED,
            None,
            "refused 10.0.0.1 (a private address); "
            "if it is a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS",
        ),
    ]
    assert all(0 < seconds < 5 for _, seconds in remote)
    # The child decrypted the credential itself; the server saw it once per run.
    assert [s.headers.get("Authorization") for s in http_server.seen if s.path == "/echo"] == [
        "Bearer in-the-child",
        "Bearer in-the-child",
    ]


async def test_a_probe_process_that_dies_fails_its_checks_and_is_replaced(
    processes: ProbeProcesses, http_server: HttpServer, silent_port: int
) -> None:
    # One host, so both checks go to the same child.
    hanging = asyncio.create_task(
        processes.check(due_check(1, f"http://127.0.0.1:{silent_port}/", timeout=30))
    )
    await asyncio.sleep(0.5)
    before = processes.pids()
    assert len(before) == 2
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    outcome, seconds = await asyncio.wait_for(hanging, 10)
    assert summary(outcome) == (
        False,
        FailureReason.CONNECT,
        None,
        "cannot run the check: the probe process stopped unexpectedly; see the worker log",
    )
    assert seconds == 0.0
    again, _ = await asyncio.wait_for(processes.check(due_check(2, http_server.url("/echo"))), 10)
    assert summary(again) == (True, None, 200, None)
    assert set(processes.pids()).isdisjoint(before)


async def test_closing_waits_for_checks_in_flight_and_ends_the_processes(
    http_server: HttpServer,
) -> None:
    config = ProbeProcessConfig(allow=tuple(LOOPBACK), key_ring=None, connections_per_origin=4)
    pool = ProbeProcesses(2, config)
    await pool.start()
    pids = pool.pids()
    pending = [
        asyncio.create_task(pool.check(due_check(n, http_server.url("/status/204"))))
        for n in range(20)
    ]
    await asyncio.sleep(0)  # queued, not yet answered
    await pool.aclose()
    results = await asyncio.gather(*pending)
    assert {summary(outcome) for outcome, _ in results} == {
        (False, FailureReason.HTTP_STATUS, 204, "HTTP 204 No Content; expected 200")
    }
    assert pool.pids() == []
    assert not [pid for pid in pids if process_running(pid)]


@pytest.fixture
async def graph(db: Database) -> Graph:
    return await make_graph(db)


async def test_the_scheduler_records_what_probe_processes_checked(
    graph: Graph, processes: ProbeProcesses, http_server: HttpServer
) -> None:
    healthy = await due(graph, http_server.url("/status/200"))
    broken = await due(graph, http_server.url("/status/503"))
    later = await due(
        graph, http_server.url("/status/200"), next_check_at=datetime.now(UTC) + timedelta(hours=1)
    )
    async with ProbeContext.create(allow=LOOPBACK) as context:
        worker = Scheduler(
            graph.db.sessions,
            context,
            worker_id="test:pool",
            config=FAST,
            run_check=processes.check,
            jitter=no_jitter,
        )
        assert await worker.run_once() == 2
    assert (await graph.row(healthy)).status == ConnectionStatus.CONNECTED
    row = await graph.row(broken)
    assert (row.status, row.failure_reason, row.last_error) == (
        ConnectionStatus.CONNECTION_FAILURE,
        FailureReason.HTTP_STATUS,
        "HTTP 503 Service Unavailable; expected 200",
    )
    assert (await graph.row(later)).last_checked_at is None
    assert sorted(check.connection_id for check in await all_checks(graph)) == [healthy, broken]


async def test_probe_processes_exit_cleanly_when_closed(http_server: HttpServer) -> None:
    config = ProbeProcessConfig(allow=tuple(LOOPBACK), key_ring=KEY_RING, connections_per_origin=4)
    processes = ProbeProcesses(2, config)
    await processes.start()
    outcomes = await asyncio.gather(
        *(processes.check(due_check(n, http_server.url("/status/200"))) for n in range(1, 5))
    )
    assert [outcome.success for outcome, _ in outcomes] == [True] * 4
    # Each child drains its answers and exits 0 (it used to die closing its pipe).
    assert await processes.aclose() == [0, 0]
