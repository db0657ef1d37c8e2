"""The store collector on SQLite and PostgreSQL: exactly the contract's samples for a known graph."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from exporter import contract
from exporter.collector import StoreCollector
from exporter.exposition import header
from healthgraph.database import Database
from store import queries
from store.metrics import MetricsSnapshot
from store.models import ConnectionRow
from tests.exporter.graph import CANARY, EXPECTED, NOW, known_graph


def expected_text() -> str:
    parts = []
    for family in contract.STORE_FAMILIES:
        lines = EXPECTED[family.name]
        parts.append(header(family) + "".join(f"{family.name}{line}\n" for line in lines))
    return "".join(parts)


@pytest.fixture
async def collector(db: Database) -> StoreCollector:
    await known_graph(db)
    return StoreCollector(db.sessions, clock=lambda: NOW)


async def test_exposition_is_exactly_the_contract_for_a_known_graph(
    collector: StoreCollector,
) -> None:
    text = (await collector.exposition()).decode()
    assert text == expected_text()


async def test_every_contract_family_is_present_even_when_empty(db: Database) -> None:
    text = (await StoreCollector(db.sessions, clock=lambda: NOW).exposition()).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert list(families) == [family.name for family in contract.STORE_FAMILIES]
    assert [s.value for s in families["healthgraph_connections"].samples] == [0, 0, 0, 0]
    assert families["healthgraph_connection_up"].samples == []


async def test_no_secret_reaches_a_metric(collector: StoreCollector) -> None:
    text = (await collector.exposition()).decode()
    assert CANARY not in text
    assert CANARY.upper().replace("-", "_") not in text  # the credential reference
    assert "api.example.com" not in text  # heartbeat URLs and error texts are not exported


async def test_counts_agree_with_the_overview(collector: StoreCollector, db: Database) -> None:
    """The exporter's set-based counts and the API's derived ones are the same numbers."""
    snapshot = await collector.snapshot()
    async with db.sessions() as session:
        overview = await queries.overview(session)
    assert snapshot.connections_by_state == {
        "PENDING": overview.pending_connections,
        "ACTIVE": overview.active_connections,
        "FAILED": overview.failed_connections,
        "DISABLED": overview.disabled_connections,
    }
    assert len(snapshot.consumers) == overview.consumers
    assert snapshot.consumers_active == overview.active_consumers
    assert {sync.name: (sync.activations, sync.active) for sync in snapshot.syncs} == {
        usage.sync.name: (usage.activations, usage.active_activations) for usage in overview.syncs
    }


async def test_reads_the_store_at_each_scrape(collector: StoreCollector, db: Database) -> None:
    """Nothing is cached: a change in the store shows in the very next scrape."""
    before = (await collector.exposition()).decode()
    async with db.sessions.begin() as session:
        await session.execute(
            update(ConnectionRow).where(ConnectionRow.id == 1).values(consecutive_failures=7)
        )
    after = (await collector.exposition()).decode()
    assert 'healthgraph_connection_consecutive_failures{connection_id="1"} 0\n' in before
    assert 'healthgraph_connection_consecutive_failures{connection_id="1"} 7\n' in after


async def test_concurrent_scrapes_share_one_read(
    collector: StoreCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    original = collector.snapshot

    async def counted() -> MetricsSnapshot:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.05)
        return await original()

    monkeypatch.setattr(collector, "snapshot", counted)
    first, second, third = await asyncio.gather(*(collector.exposition() for _ in range(3)))
    assert reads == 1
    assert first == second == third
    await collector.exposition()
    assert reads == 2  # the next scrape reads again


async def test_a_client_giving_up_does_not_cancel_the_shared_scrape(
    collector: StoreCollector,
) -> None:
    impatient = asyncio.ensure_future(collector.exposition())
    patient = asyncio.ensure_future(collector.exposition())
    await asyncio.sleep(0)
    impatient.cancel()
    assert (await patient).decode() == expected_text()


def test_expected_values_are_the_datetimes_they_name() -> None:
    # The literals in graph.EXPECTED, recomputed: 2026-11-01T00:01:30.5Z and friends.
    assert datetime.fromisoformat("2026-11-01T00:01:30.500+00:00").timestamp() == 1793491290.5
    assert datetime.fromisoformat("2027-01-01T00:00:00+00:00").timestamp() == 1798761600.0
    assert datetime.fromisoformat("2026-10-30T08:00:00+00:00").timestamp() == 1793347200.0
