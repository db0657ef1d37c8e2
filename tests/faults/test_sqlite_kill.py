"""`kill -9` of `healthgraph serve` on its SQLite file while it writes, twice, then restarts.

What is provable after a SIGKILL: the file is intact, and each connection's row agrees with
its own history, because a check row and the connection's new state are written in one
transaction — either both are there or neither is. A result probed but not yet written dies
with the process: the target saw that request and the table never will, so for each
connection the target's hits exceed its check rows by at most one per kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.faults.conftest import Service, Target, seed_connections
from tests.waiting import wait_until

CONNECTIONS = 200  # at 1 s each: a write transaction every flush interval
KILLS = 2


def count_checks(path: Path) -> int:
    with sqlite3.connect(path, timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM checks").fetchone()[0])


def audit(path: Path) -> tuple[list[tuple[str, ...]], list[tuple[object, ...]], dict[str, int]]:
    """integrity_check, the connections whose row disagrees with their last check, and the
    check rows per target path number. Opening the file recovers it as a restart would."""
    with sqlite3.connect(path, timeout=10) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchall()
        disagreeing = db.execute(
            """
            SELECT c.id, c.last_checked_at, c.status, c.consecutive_failures, c.failure_reason,
                   k.checked_at, k.success, k.failure_reason
            FROM connections c
            LEFT JOIN checks k ON k.id = (
                SELECT id FROM checks WHERE connection_id = c.id
                ORDER BY checked_at DESC, id DESC LIMIT 1)
            WHERE c.last_checked_at IS NOT k.checked_at
               OR (k.success = 1 AND NOT (
                   c.status = 'CONNECTED' AND c.consecutive_failures = 0
                   AND c.failure_reason IS NULL))
               OR (k.success = 0 AND NOT (
                   c.status = 'CONNECTION_FAILURE' AND c.consecutive_failures >= 1
                   AND c.failure_reason IS k.failure_reason))
               OR c.claimed_by IS NOT NULL AND c.lease_expires_at IS NULL
            """
        ).fetchall()
        per_path = dict(
            db.execute(
                """
                SELECT substr(json_extract(c.heartbeat, '$.url'),
                              length(rtrim(json_extract(c.heartbeat, '$.url'), '0123456789')) + 1),
                       count(k.id)
                FROM connections c LEFT JOIN checks k ON k.connection_id = c.id
                GROUP BY c.id
                """
            ).fetchall()
        )
    return integrity, disagreeing, per_path


async def test_kill_9_while_writing_leaves_an_intact_file_and_consistent_rows(
    tmp_path: Path, target: Target, services: Callable[..., Awaitable[Service]]
) -> None:
    path = tmp_path / "hg.db"
    url = f"sqlite:///{path}"
    # Half the targets fail, so the rows carry failure state as well as success.
    urls = [target.url(n, "fast" if n % 2 else "fail") for n in range(CONNECTIONS)]
    await seed_connections(url, urls, interval_seconds=1)
    wal = path.with_name(path.name + "-wal")

    for cycle in range(KILLS + 1):
        written_before = await asyncio.to_thread(count_checks, path)
        serve = await services(url, "serve")
        await serve.wait_ready()
        hits = dict(target.hits)

        async def resumed() -> bool:
            return all(target.hits[str(n)] > hits.get(str(n), 0) for n in range(CONNECTIONS))

        # Each (re)start checks every connection again, those the killed process had claimed
        # included (the restart releases them: the test below).
        await wait_until(resumed, 20, f"start {cycle + 1}: every connection checked")
        if cycle == KILLS:
            break
        # Kill on the next change of the write-ahead log: in the middle of a write, or a
        # hair after one.
        seen = os.stat(wal).st_mtime_ns

        async def writing(seen: int = seen) -> bool:
            return os.stat(wal).st_mtime_ns != seen

        await wait_until(writing, 10, "a write to the WAL", step=0.002)
        assert await serve.kill() == -9

        integrity, disagreeing, per_path = await asyncio.to_thread(audit, path)
        assert integrity == [("ok",)]
        assert disagreeing == []
        for n in range(CONNECTIONS):
            assert 0 <= target.hits[str(n)] - per_path[str(n)] <= cycle + 1, n

    # A clean stop writes everything it probed. (uvicorn re-raises SIGTERM once it has shut
    # down gracefully, so the exit status may say so; the log line says the stop was clean.)
    assert await serve.stop() in (0, -signal.SIGTERM)
    written = await asyncio.to_thread(count_checks, path) - written_before
    assert f"stopped after {written} checks" in serve.log()
    integrity, disagreeing, per_path = await asyncio.to_thread(audit, path)
    assert integrity == [("ok",)]
    assert disagreeing == []
    for n in range(CONNECTIONS):
        assert 0 <= target.hits[str(n)] - per_path[str(n)] <= KILLS, n


async def test_after_a_kill_the_dead_workers_claims_are_checked_at_once(
    tmp_path: Path, target: Target, services: Callable[..., Awaitable[Service]]
) -> None:
    path = tmp_path / "hg.db"
    url = f"sqlite:///{path}"
    await seed_connections(url, [target.url(n) for n in range(20)], interval_seconds=1)
    # The rows as a SIGKILL leaves them (the test above finds them so after each kill): claimed
    # by a process that no longer exists, under a lease that runs a minute more.
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE connections SET claimed_by = ?, lease_expires_at = ?",
            (
                f"{socket.gethostname()}:{dead.pid}",
                f"{datetime.now(UTC) + timedelta(seconds=60):%Y-%m-%d %H:%M:%S.%f}",
            ),
        )
    serve = await services(url, "serve")
    await serve.wait_ready()

    async def all_checked() -> bool:
        return all(target.hits[str(n)] >= 1 for n in range(20))

    # A 1 s interval: 20 s leaves a busy machine room, and is far below the 60 s lease the
    # dead worker's claims would otherwise hold.
    await wait_until(all_checked, 20, "every connection checked after the restart")
