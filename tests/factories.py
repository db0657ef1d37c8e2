"""Factory helpers: build a small graph of rows in one session, with sensible defaults."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.domain import ConnectionState, ConnectionStatus, Direction, SyncStep, UseStatus
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

SEED_USE_KINDS = {
    "hypersync": "Hypersyncs",
    "task_integration": "Task integrations",
    "livesync": "Cloud files",
}


class GraphFactory:
    """Adds rows to `session` and flushes, so ids are there for the next call."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._kinds_added = False

    async def _add(self, row: object) -> None:
        self.session.add(row)
        await self.session.flush()

    async def use_kinds(self) -> None:
        if not self._kinds_added:
            self.session.add_all(UseKindRow(kind=k, label=v) for k, v in SEED_USE_KINDS.items())
            await self.session.flush()
            self._kinds_added = True

    async def connector(
        self, slug: str, name: str | None = None, category: str = "accounting"
    ) -> ConnectorRow:
        row = ConnectorRow(
            slug=slug,
            name=name or slug.title(),
            category=category,
            heartbeat={"kind": "http", "url": f"https://api.{slug}.example/health"},
        )
        await self._add(row)
        return row

    async def consumer(self, external_id: str, name: str | None = None) -> ConsumerRow:
        row = ConsumerRow(external_id=external_id, name=name or external_id.title())
        await self._add(row)
        return row

    async def connection(
        self,
        consumer: ConsumerRow,
        connector: ConnectorRow,
        *,
        state: ConnectionState = ConnectionState.ACTIVE,
        status: ConnectionStatus = ConnectionStatus.CONNECTED,
        direction: Direction = Direction.OUTBOUND,
        name: str | None = None,
    ) -> ConnectionRow:
        row = ConnectionRow(
            consumer_id=consumer.id,
            connector_id=connector.id,
            name=name or f"{consumer.external_id} {connector.slug}",
            state=state,
            status=status,
            direction=direction,
            last_checked_at=datetime(2026, 11, 1, tzinfo=UTC)
            if status is not ConnectionStatus.UNKNOWN
            else None,
        )
        await self._add(row)
        return row

    async def use(
        self, connection: ConnectionRow, kind: str, name: str, status: UseStatus = UseStatus.HEALTHY
    ) -> UseRow:
        await self.use_kinds()
        row = UseRow(connection_id=connection.id, kind=kind, name=name, status=status)
        await self._add(row)
        return row

    async def sync(self, name: str, requires: list[ConnectorRow]) -> SyncRow:
        row = SyncRow(
            name=name,
            requirements=[
                SyncRequirementRow(connector_id=c.id, position=i) for i, c in enumerate(requires)
            ],
        )
        await self._add(row)
        return row

    async def activation(
        self,
        sync: SyncRow,
        consumer: ConsumerRow,
        *,
        connection: bool = True,
        mapping: bool = True,
        configuration: bool = True,
    ) -> SyncActivationRow:
        done = {
            SyncStep.CONNECTION: connection,
            SyncStep.MAPPING: mapping,
            SyncStep.CONFIGURATION: configuration,
        }
        row = SyncActivationRow(
            sync_id=sync.id,
            consumer_id=consumer.id,
            steps=[
                SyncActivationStepRow(step=step, complete=value) for step, value in done.items()
            ],
        )
        await self._add(row)
        return row


async def seed_healthy_and_failed(session: AsyncSession, consumers: int = 4) -> None:
    """Two connectors; consumer c<i> has a healthy connection to quickbooks with i healthy
    hypersyncs and a FAILED one to drive with i failed cloud files."""
    graph = GraphFactory(session)
    quickbooks = await graph.connector("quickbooks")
    drive = await graph.connector("drive", category="storage")
    for index in range(consumers):
        consumer = await graph.consumer(f"c{index}")
        up = await graph.connection(consumer, quickbooks)
        down = await graph.connection(
            consumer,
            drive,
            state=ConnectionState.FAILED,
            status=ConnectionStatus.CONNECTION_FAILURE,
        )
        for n in range(index):
            await graph.use(up, "hypersync", f"sync {n}", UseStatus.HEALTHY)
            await graph.use(down, "livesync", f"file {n}", UseStatus.FAILED)


async def seed_outbound_connections(
    session: AsyncSession,
    urls: Sequence[str],
    *,
    interval_seconds: int,
    due: bool = True,
    timeout_seconds: float | None = None,
) -> None:
    """One ACTIVE outbound connection per URL (consumer "acme", connector "target"), inserted
    in one statement, due now or never: for tests of many connections."""
    consumer = ConsumerRow(external_id="acme", name="Acme")
    connector = ConnectorRow(
        slug="target",
        name="Target",
        category="testing",
        heartbeat={"kind": "http", "url": "http://127.0.0.1/", "timeout_seconds": 50},
    )
    session.add_all([consumer, connector])
    await session.flush()
    now = datetime.now(UTC)
    override: dict[str, Any] = (
        {} if timeout_seconds is None else {"timeout_seconds": timeout_seconds}
    )
    await session.execute(
        insert(ConnectionRow),
        [
            {
                "consumer_id": consumer.id,
                "connector_id": connector.id,
                "name": f"connection {n}",
                "direction": Direction.OUTBOUND,
                "state": ConnectionState.ACTIVE,
                "status": ConnectionStatus.UNKNOWN,
                "check_interval_seconds": interval_seconds,
                "failure_threshold": 1,
                "consecutive_failures": 0,
                "next_check_at": now if due else None,
                "heartbeat": {"url": url, **override},
                "state_changed_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for n, url in enumerate(urls)
        ],
    )
