"""Derived values in batches, computed in SQL: activity, the issue column, "Used for",
instance health, rollups, sync activation state."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TypeVar

from sqlalchemy import (
    and_,
    bindparam,
    cast,
    func,
    null,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from store import derived, domain
from store.domain import (
    ConnectionState,
    ConnectionStatus,
    IssueCode,
    UseStatus,
)
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    UseKindRow,
    UseRow,
)
from store.queries.conditions import count_where, in_values

T = TypeVar("T")


async def consumers_active(session: AsyncSession, ids: Iterable[int]) -> dict[int, bool]:
    rows = await session.execute(
        select(ConsumerRow.id, derived.consumer_is_active()).where(ConsumerRow.id.in_(set(ids)))
    )
    return {consumer_id: bool(active) for consumer_id, active in rows}


async def consumer_issues(
    session: AsyncSession, ids: Iterable[int]
) -> dict[int, tuple[domain.Issue, ...]]:
    """The "by connections" issue column: one CONNECTION_FAILED per failed connection, in
    connection order, or NOTHING for a consumer that never started a connection."""
    wanted = set(ids)
    failed = (
        select(
            ConnectionRow.consumer_id.label("consumer_id"),
            ConnectionRow.id.label("connection_id"),
            ConnectorRow.id.label("connector_id"),
            ConnectorRow.name.label("connector_name"),
        )
        .join(ConnectorRow, ConnectorRow.id == ConnectionRow.connector_id)
        .where(ConnectionRow.consumer_id.in_(wanted), derived.connection_is_failed())
    )
    nothing = select(
        ConsumerRow.id.label("consumer_id"),
        cast(null(), ConnectionRow.id.type).label("connection_id"),
        cast(null(), ConnectorRow.id.type).label("connector_id"),
        cast(null(), ConnectorRow.name.type).label("connector_name"),
    ).where(ConsumerRow.id.in_(wanted), derived.consumer_has_no_connection())
    union = failed.union_all(nothing).subquery()
    rows = await session.execute(select(union).order_by(union.c.consumer_id, union.c.connection_id))
    out: dict[int, list[domain.Issue]] = {consumer_id: [] for consumer_id in wanted}
    for consumer_id, connection_id, connector_id, connector_name in rows:
        if connection_id is None:
            out[consumer_id].append(domain.Issue(IssueCode.NOTHING))
        else:
            out[consumer_id].append(
                domain.Issue(IssueCode.CONNECTION_FAILED, connector_id, connector_name)
            )
    return {consumer_id: tuple(issues) for consumer_id, issues in out.items()}


async def sync_activations_state(
    session: AsyncSession, ids: Iterable[int]
) -> dict[int, tuple[bool, domain.Issue | None]]:
    """(active, issue) per activation, from the same expressions the filters use."""
    code, connector_id = derived.activation_issue()
    rows = await session.execute(
        select(
            SyncActivationRow.id,
            derived.activation_is_active(),
            code,
            connector_id,
            ConnectorRow.name,
        )
        .outerjoin(ConnectorRow, ConnectorRow.id == connector_id)
        .where(SyncActivationRow.id.in_(set(ids)))
    )
    out: dict[int, tuple[bool, domain.Issue | None]] = {}
    for activation_id, active, issue_code, issue_connector_id, connector_name in rows:
        issue = (
            domain.Issue(IssueCode(issue_code), issue_connector_id, connector_name)
            if issue_code is not None
            else None
        )
        out[activation_id] = (bool(active), issue)
    return out


_USE_SUMMARIES = (
    select(UseRow.connection_id, UseKindRow.kind, UseKindRow.label, UseRow.status, func.count())
    .join(UseKindRow, UseKindRow.kind == UseRow.kind)
    .where(UseRow.connection_id.in_(bindparam("ids", expanding=True)))
    .group_by(UseRow.connection_id, UseKindRow.kind, UseKindRow.label, UseRow.status)
)


async def use_summaries(
    session: AsyncSession, connection_ids: Iterable[int]
) -> dict[int, domain.UseSummary]:
    """ "Used for" and instance health of each connection, from one GROUP BY."""
    wanted = set(connection_ids)
    connection = await session.connection()
    rows = await connection.execute(_USE_SUMMARIES, {"ids": list(wanted)})
    kinds: dict[int, dict[tuple[str, str], int]] = {connection_id: {} for connection_id in wanted}
    statuses: dict[int, dict[UseStatus, int]] = {
        connection_id: defaultdict(int) for connection_id in wanted
    }
    for connection_id, kind, label, status, count in rows:
        key = (kind, label)
        kinds[connection_id][key] = kinds[connection_id].get(key, 0) + int(count)
        statuses[connection_id][status] += int(count)
    return {
        connection_id: domain.UseSummary(
            used_for=tuple(
                domain.UsedFor(kind, label, count)
                for (kind, label), count in sorted(
                    kinds[connection_id].items(), key=lambda e: e[0][1]
                )
            ),
            instance_health=domain.InstanceHealth(
                healthy=statuses[connection_id][UseStatus.HEALTHY],
                failed=statuses[connection_id][UseStatus.FAILED],
                unknown=statuses[connection_id][UseStatus.UNKNOWN],
            ),
        )
        for connection_id in wanted
    }


async def _health_per_parent(
    session: AsyncSession,
    parent_column: InstrumentedAttribute[int],
    parent_ids: Iterable[int],
    consumer_ids: tuple[int, ...] | None,
) -> dict[int, domain.Health]:
    wanted = set(parent_ids)
    failing_use = (
        select(UseRow.id)
        .where(UseRow.connection_id == ConnectionRow.id, UseRow.status == UseStatus.FAILED)
        .exists()
    )
    failed = derived.connection_is_failed()
    rows = await session.execute(
        select(
            parent_column,
            func.count(),
            count_where(failed),
            count_where(and_(~failed, ConnectionRow.status == ConnectionStatus.UNKNOWN)),
            count_where(failing_use),
        )
        .where(
            parent_column.in_(wanted),
            ConnectionRow.state != ConnectionState.DISABLED,
            *in_values(ConnectionRow.consumer_id, consumer_ids),
        )
        .group_by(parent_column)
    )
    health = {parent_id: domain.Health.UNKNOWN for parent_id in wanted}
    for parent_id, total, failed_count, unknown, with_failing_uses in rows:
        health[parent_id] = domain.health_rollup(
            int(total), int(failed_count), int(unknown), int(with_failing_uses)
        )
    return health


async def consumer_health(
    session: AsyncSession, consumer_ids: Iterable[int]
) -> dict[int, domain.Health]:
    """Rollup over each consumer's connections (disabled ones left out)."""
    return await _health_per_parent(session, ConnectionRow.consumer_id, consumer_ids, None)


async def connector_health(
    session: AsyncSession, connector_ids: Iterable[int], consumer_ids: tuple[int, ...] | None = None
) -> dict[int, domain.Health]:
    """Rollup over each connector's connections, optionally only those of some consumers."""
    return await _health_per_parent(
        session, ConnectionRow.connector_id, connector_ids, consumer_ids
    )


async def sync_activation_counts(
    session: AsyncSession, sync_ids: Iterable[int], consumer_ids: tuple[int, ...] | None = None
) -> dict[int, tuple[int, int]]:
    """(activations, active activations) per sync."""
    wanted = set(sync_ids)
    rows = await session.execute(
        select(
            SyncActivationRow.sync_id,
            func.count(),
            count_where(derived.activation_is_active()),
        )
        .where(
            SyncActivationRow.sync_id.in_(wanted),
            *in_values(SyncActivationRow.consumer_id, consumer_ids),
        )
        .group_by(SyncActivationRow.sync_id)
    )
    counts = {sync_id: (0, 0) for sync_id in wanted}
    counts.update({sync_id: (int(total), int(active)) for sync_id, total, active in rows})
    return counts
