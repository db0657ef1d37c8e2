"""Webhook benchmark (issue 15): events delivered per second, and what delivery costs the checks.

    .venv/bin/python bench/webhook_bench.py [--sections rate,checks] [--events 5000]
        [--connections 3000] [--rounds 2] [--postgres ADMIN_URL]

Needs nginx (Debian package nginx-light), which stands in for the receiver: it answers every
POST with 200 at once, so what is timed is healthgraph's side (dispatch, sign, send, record).

rate    `--events` use.failed events are written to the outbox of a fresh database (as the
        transactions that cause them would), one endpoint takes them all; the service is
        started and the time from its first delivery to its last gives events/s. SQLite: one
        `healthgraph serve`; PostgreSQL: two `healthgraph worker` processes sharing them.
checks  `--connections` connections checked every second against nginx by a plain
        `healthgraph serve` (SQLite), checks/s from its `healthgraph_checks_total` over 20 s
        after a 10 s warm-up: without webhooks, then with one endpoint and 1,000 events a
        minute flowing (written by this script into the outbox, 17 every second, in
        transactions of their own), alternated `--rounds` times. Goal: with >= 0.95x without.

A script, never a test. The machine has 2 cores and is shared: run it on a quiet one, twice.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_bench import (
    Backend,
    background_cores,
    free_ports,
    hosts_on,
    nginx,
    postgres_backend,
    seed,
    sqlite_backend,
    table,
)
from running import check_rate, services

from probes.guard import AddressGuard
from store.commands.webhooks import create_webhook_endpoint
from store.crypto import KeyRing, generate_key
from store.domain import DeliveryState
from store.models import WebhookDeliveryRow, WebhookEndpointRow, WebhookEventRow

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
EVENTS_PER_MINUTE = 1000
WARM_UP_SECONDS = 10
MEASURE_SECONDS = 20
GOAL = 0.95


def _event(n: int, now: datetime) -> dict[str, Any]:
    """An outbox row as report_use_run writes it (store.outbox), about a connection 1."""
    return {
        "type": "use.failed",
        "occurred_at": now,
        "connection_id": 1,
        "connector_id": 1,
        "consumer_id": 1,
        "use_id": n,
        "data": {
            "connection": {"id": 1, "name": "connection 0", "state": "ACTIVE"},
            "connector": {"id": 1, "slug": "target-0", "name": "Target"},
            "consumer": {"id": 1, "external_id": "tenant-1", "name": "Tenant 1", "email": None},
            "use": {"id": n, "kind": "hypersync", "name": f"sync {n}", "status": "FAILED"},
        },
        "dispatched_at": None,
        "suppressed_reason": None,
    }


async def _endpoint(backend: Backend, url: str, key: str) -> None:
    async with backend.database.sessions.begin() as session:
        await create_webhook_endpoint(
            session,
            url=url,
            events=None,
            description="bench",
            consumer_id=None,
            outbound=AddressGuard(["127.0.0.1/32"]),
            key_ring=KeyRing([key]),
        )


async def _write_events(backend: Backend, count: int) -> None:
    now = datetime.now(UTC)
    async with backend.database.sessions.begin() as session:
        for start in range(0, count, 1000):
            rows = [_event(n, now) for n in range(start, min(count, start + 1000))]
            await session.execute(insert(table(WebhookEventRow)), rows)


async def _delivered(backend: Backend) -> int:
    async with backend.database.sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.state == DeliveryState.DELIVERED)
            )
            or 0
        )


async def section_rate(args: argparse.Namespace, receiver: str) -> None:
    print(f"\n== rate: {args.events:,} events to one endpoint (nginx answers 200) ==")
    for make, processes in ((sqlite_backend, 1), (lambda: postgres_backend(args.postgres), 2)):
        async with make() as backend:  # type: ignore[operator]
            key = generate_key()
            await _endpoint(backend, receiver, key)
            await _write_events(backend, args.events)
            background = await background_cores()
            async with services(backend, key, processes):
                first = last = None
                began = time.monotonic()
                while time.monotonic() - began < 600:
                    await asyncio.sleep(0.2)
                    done = await _delivered(backend)
                    if done and first is None:
                        first = (time.monotonic(), done)
                    if done >= args.events:
                        last = time.monotonic()
                        break
            who = "serve" if processes == 1 else f"{processes} workers"
            if first is None or last is None:
                print(f"  {backend.name} ({who}): did not finish in 600 s")
                continue
            seconds = max(last - first[0], 0.001)
            rate = (args.events - first[1]) / seconds
            print(
                f"  {backend.name} ({who}): {rate:,.0f} events/s "
                f"({args.events:,} in {last - began:.1f} s from start; "
                f"{background:.2f} cores busy before)"
            )


async def _checks_per_second(backend: Backend, key: str, events: bool) -> float:
    """One run of a fresh `serve`: checks/s over MEASURE_SECONDS after WARM_UP_SECONDS."""
    flowing: asyncio.Task[None] | None = None
    async with services(backend, key, 1) as (service,):
        if events:
            flowing = asyncio.create_task(_flow(backend))
        measured = await check_rate(
            service, warm_up_seconds=WARM_UP_SECONDS, measure_seconds=MEASURE_SECONDS
        )
        if flowing is not None:
            flowing.cancel()
    return measured.checks_per_second


async def _flow(backend: Backend) -> None:
    """EVENTS_PER_MINUTE into the outbox, spread over each second."""
    per_second = EVENTS_PER_MINUTE / 60
    owed = 0.0
    while True:
        await asyncio.sleep(1)
        owed += per_second
        count, owed = int(owed), owed - int(owed)
        await _write_events(backend, count)


async def section_checks(args: argparse.Namespace, receiver: str, ports: list[int]) -> None:
    print(
        f"\n== checks: {args.connections:,} connections every second, plain serve, without "
        f"and with {EVENTS_PER_MINUTE:,} events a minute =="
    )
    async with sqlite_backend() as backend:
        key = generate_key()
        await seed(
            backend,
            count=args.connections,
            origins=hosts_on(ports, 64),
            interval=1,
            key_ring=KeyRing([key]),
            credentials_share=0.5,
        )
        without: list[float] = []
        with_events: list[float] = []
        for round_ in range(args.rounds):
            for events, results in ((False, without), (True, with_events)):
                if events and round_ == 0:
                    await _endpoint(backend, receiver, key)
                if not events:
                    await _set_endpoints(backend, enabled=False)
                else:
                    await _set_endpoints(backend, enabled=True)
                await backend.reset()
                await backend.make_all_due()
                background = await background_cores()
                rate = await _checks_per_second(backend, key, events)
                results.append(rate)
                label = "with webhooks" if events else "without"
                print(
                    f"  round {round_ + 1} {label}: {rate:,.0f} checks/s "
                    f"({background:.2f} cores busy before)"
                )
        delivered = await _delivered(backend)
        a, b = statistics.median(without), statistics.median(with_events)
        print(
            f"  median without {a:,.0f} checks/s, with {b:,.0f} checks/s: ratio {b / a:.3f} "
            f"(goal >= {GOAL}: {'met' if b / a >= GOAL else 'MISSED'}); {delivered:,} delivered"
        )


async def _set_endpoints(backend: Backend, *, enabled: bool) -> None:
    async with backend.database.sessions.begin() as session:
        await session.execute(update(WebhookEndpointRow).values(enabled=enabled))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="rate,checks")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres", default=DEFAULT_PG_ADMIN_URL)
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    ports = free_ports(4)
    async with nginx(ports):
        receiver = f"http://127.0.0.1:{ports[0]}/hooks"
        if "rate" in sections:
            await section_rate(args, receiver)
        if "checks" in sections:
            await section_checks(args, receiver, ports)


if __name__ == "__main__":
    asyncio.run(main())
