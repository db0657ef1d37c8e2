"""Many connections at once (Core inserts), for tests of reads and streams that span blocks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Table, func, insert, select

from healthgraph.database import Database
from store.domain import ConnectionState, ConnectionStatus, FailureReason, UseStatus
from store.models import ConnectionRow, ConnectorRow, ConsumerRow, UseKindRow, UseRow
from tests.exporter.graph import NOW

CONNECTORS = 7
PER_CONSUMER = 3


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


async def many_connections(db: Database, count: int, *, offset: int = 0) -> None:
    """`count` connections (ids offset+1..offset+count) with a spread of states, a use each,
    on connectors and consumers of their own (ids from offset+1 too)."""
    states = list(ConnectionState)
    reasons = list(FailureReason)
    consumers = -(-count // PER_CONSUMER)
    async with db.engine.connect() as connection:
        kinds = (await connection.execute(select(func.count()).select_from(UseKindRow))).scalar()
    rows: dict[Table, list[dict[str, Any]]] = {
        _table(UseKindRow): [] if kinds else [{"kind": "hypersync", "label": "Hypersyncs"}],
        _table(ConnectorRow): [
            {
                "id": i,
                "slug": f"connector-{i}",
                "name": f'Connector "{i}"',
                "category": "accounting",
                "heartbeat": {"kind": "http", "url": f"https://api{i}.example/health"},
                "created_at": NOW,
            }
            for i in range(offset + 1, offset + CONNECTORS + 1)
        ],
        _table(ConsumerRow): [
            {"id": i, "external_id": f"c{i}", "name": f"Consumer {i}", "created_at": NOW}
            for i in range(offset + 1, offset + consumers + 1)
        ],
        _table(ConnectionRow): [
            {
                "id": i,
                "consumer_id": offset + (i - offset - 1) // PER_CONSUMER + 1,
                "connector_id": offset + i % CONNECTORS + 1,
                "name": f"Connection {i}",
                "state": states[i % len(states)],
                "status": ConnectionStatus.CONNECTION_FAILURE
                if i % 5 == 0
                else ConnectionStatus.CONNECTED,
                "failure_reason": reasons[i % len(reasons)] if i % 5 == 0 else None,
                "last_checked_at": NOW - timedelta(seconds=i) if i % 4 else None,
                "last_success_at": NOW - timedelta(seconds=2 * i),
                "latency_ms": float(i % 900) + 0.5,
                "consecutive_failures": i % 5,
                "check_interval_seconds": 60,
                "state_changed_at": NOW - timedelta(days=1, milliseconds=i),
                "tls_cert_expires_at": NOW + timedelta(days=i % 300) if i % 3 else None,
                "heartbeat": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(offset + 1, offset + count + 1)
        ],
        _table(UseRow): [
            {
                "id": i,
                "connection_id": i,
                "kind": "hypersync",
                "name": f"Invoices {i}",
                "status": UseStatus.HEALTHY if i % 7 else UseStatus.FAILED,
            }
            for i in range(offset + 1, offset + count + 1)
        ],
    }
    async with db.engine.begin() as connection:
        for table, values in rows.items():
            if values:
                await connection.execute(insert(table), values)
