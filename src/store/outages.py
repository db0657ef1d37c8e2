"""Connector outages: when enough of a connector's connections fail at once, for reasons that
are not their own credentials, the provider is down, not each customer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.domain import (
    ConnectionState,
    ConnectionStatus,
    ConnectorOutage,
    Direction,
    FailureReason,
    OutageReason,
)
from store.errors import ValidationError
from store.models import ConnectionRow, ConnectorOutageRow

# A customer's own credentials failing says nothing about the provider.
NOT_AN_OUTAGE = frozenset({FailureReason.AUTH, FailureReason.PERMISSION})


@dataclass(frozen=True, slots=True)
class OutageRules:
    """When a connector is in outage, and how long a `connection.failed` waits to see one."""

    min_connections: int = 5
    ratio: float = 0.5
    # The longest a connection's failure is held before it is told, so an outage that shows
    # within one check interval tells once instead of once per customer (a connection checked
    # more often than this is held one interval).
    hold_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.min_connections < 1:
            raise ValidationError("min_connections", self.min_connections, "must be at least 1")
        if not 0 < self.ratio <= 1:
            raise ValidationError("ratio", self.ratio, "must be more than 0 and at most 1")
        if self.hold_seconds < 0:
            raise ValidationError("hold_seconds", self.hold_seconds, "must be 0 or more")

    def in_outage(self, count: ConnectorCount) -> bool:
        return (
            count.total >= self.min_connections
            and count.failing > 0
            and count.failing >= self.ratio * count.total
        )


@dataclass(frozen=True, slots=True)
class ConnectorCount:
    """A connector's ACTIVE, checked outbound connections, and those failing now for a reason
    that can be the provider's."""

    total: int
    failing: int
    reasons: dict[str, int]


async def connector_counts(
    connection: AsyncConnection, connector_ids: Iterable[int]
) -> dict[int, ConnectorCount]:
    """The count of each connector (one grouped statement; connectors with none are absent)."""
    ids = sorted(set(connector_ids))
    if not ids:
        return {}
    rows = await connection.execute(
        select(
            ConnectionRow.connector_id,
            ConnectionRow.status,
            ConnectionRow.failure_reason,
            func.count(),
        )
        .where(
            ConnectionRow.connector_id.in_(ids),
            ConnectionRow.state == ConnectionState.ACTIVE,
            ConnectionRow.direction == Direction.OUTBOUND,
            ConnectionRow.last_checked_at.is_not(None),
        )
        .group_by(ConnectionRow.connector_id, ConnectionRow.status, ConnectionRow.failure_reason)
    )
    totals: dict[int, int] = {}
    reasons: dict[int, dict[str, int]] = {}
    for connector_id, status, reason, count in rows:
        totals[connector_id] = totals.get(connector_id, 0) + count
        if (
            status == ConnectionStatus.CONNECTION_FAILURE
            and reason is not None
            and reason not in NOT_AN_OUTAGE
        ):
            found = reasons.setdefault(connector_id, {})
            found[str(reason)] = found.get(str(reason), 0) + count
    return {
        connector_id: ConnectorCount(
            total=total,
            failing=sum(reasons.get(connector_id, {}).values()),
            reasons=reasons.get(connector_id, {}),
        )
        for connector_id, total in totals.items()
    }


def outage_of(row: Any) -> ConnectorOutage:
    """From a connector_outages row (ORM or Core)."""
    return ConnectorOutage(
        connector_id=row.connector_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        failing_connections=row.failing_connections,
        total_connections=row.total_connections,
        reasons=reasons_of(row.reasons),
    )


def reasons_of(counts: dict[str, Any]) -> tuple[OutageReason, ...]:
    """Most connections first, then by name."""
    return tuple(
        OutageReason(reason=FailureReason(reason), connections=int(count))
        for reason, count in sorted(counts.items(), key=lambda item: (-int(item[1]), item[0]))
    )


async def open_outages(
    connection: AsyncConnection, connector_ids: Iterable[int] | None = None
) -> dict[int, ConnectorOutage]:
    """The outage going on now of each connector in one (of the given ones, or all)."""
    table = ConnectorOutageRow.__table__
    query = select(table).where(ConnectorOutageRow.ended_at.is_(None))
    if connector_ids is not None:
        query = query.where(ConnectorOutageRow.connector_id.in_(sorted(set(connector_ids))))
    rows = await connection.execute(query)
    return {row.connector_id: outage_of(row) for row in rows}
