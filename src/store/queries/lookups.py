"""Batch lookups in the shape a DataLoader wants: ids in, one statement, a mapping out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    Row,
    Select,
    bindparam,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from store import domain, records
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncRequirementRow,
    SyncRow,
    UseKindRow,
    UseRow,
)

T = TypeVar("T")


def _by_ids(model: Any) -> Select[Any]:
    """`records.columns(model)` of the rows whose id is in the expanding parameter `ids`."""
    return select(*records.columns(model)).where(model.id.in_(bindparam("ids", expanding=True)))


# Built once: a statement built per call costs its construction and its cache key each time.
_CONSUMERS_BY_ID = _by_ids(ConsumerRow)
_CONNECTORS_BY_ID = _by_ids(ConnectorRow)
_CONNECTIONS_BY_ID = _by_ids(ConnectionRow)


async def _core_by_ids(
    session: AsyncSession, statement: Select[Any], ids: Iterable[int]
) -> Sequence[Row[Any]]:
    """Core rows on the session's connection: no ORM instance per row on the hot lookups."""
    connection = await session.connection()
    rows: Sequence[Row[Any]] = (await connection.execute(statement, {"ids": list(set(ids))})).all()
    return rows


async def consumers_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, domain.Consumer]:
    rows = await _core_by_ids(session, _CONSUMERS_BY_ID, ids)
    return {row.id: records.consumer(row) for row in rows}


async def consumers_by_external_id(
    session: AsyncSession, external_ids: Iterable[str]
) -> dict[str, domain.Consumer]:
    rows = await session.scalars(
        select(ConsumerRow).where(ConsumerRow.external_id.in_(set(external_ids)))
    )
    return {row.external_id: records.consumer(row) for row in rows}


async def connectors_by_id(
    session: AsyncSession, ids: Iterable[int]
) -> dict[int, domain.Connector]:
    rows = await _core_by_ids(session, _CONNECTORS_BY_ID, ids)
    return {row.id: records.connector(row) for row in rows}


async def connectors_by_slug(
    session: AsyncSession, slugs: Iterable[str]
) -> dict[str, domain.Connector]:
    rows = await session.scalars(select(ConnectorRow).where(ConnectorRow.slug.in_(set(slugs))))
    return {row.slug: records.connector(row) for row in rows}


async def connections_by_id(
    session: AsyncSession, ids: Iterable[int]
) -> dict[int, domain.Connection]:
    rows = await _core_by_ids(session, _CONNECTIONS_BY_ID, ids)
    return {row.id: records.connection_of_columns(row) for row in rows}


async def uses_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, domain.Use]:
    rows = await session.execute(
        select(UseRow, UseKindRow.label).join(UseKindRow).where(UseRow.id.in_(set(ids)))
    )
    return {row.id: records.use(row, label) for row, label in rows}


async def syncs_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, domain.Sync]:
    rows = await session.scalars(select(SyncRow).where(SyncRow.id.in_(set(ids))))
    return {row.id: records.sync(row) for row in rows}


async def syncs_by_name(session: AsyncSession, names: Iterable[str]) -> dict[str, domain.Sync]:
    rows = await session.scalars(select(SyncRow).where(SyncRow.name.in_(set(names))))
    return {row.name: records.sync(row) for row in rows}


async def sync_activations_by_id(
    session: AsyncSession, ids: Iterable[int]
) -> dict[int, domain.SyncActivation]:
    rows = await session.scalars(
        select(SyncActivationRow).where(SyncActivationRow.id.in_(set(ids)))
    )
    return {row.id: records.sync_activation(row) for row in rows}


async def required_connector_ids(
    session: AsyncSession, sync_ids: Iterable[int]
) -> dict[int, tuple[int, ...]]:
    rows = await session.execute(
        select(SyncRequirementRow.sync_id, SyncRequirementRow.connector_id)
        .where(SyncRequirementRow.sync_id.in_(set(sync_ids)))
        .order_by(SyncRequirementRow.sync_id, SyncRequirementRow.position)
    )
    out: dict[int, list[int]] = defaultdict(list)
    for sync_id, connector_id in rows:
        out[sync_id].append(connector_id)
    return {sync_id: tuple(ids) for sync_id, ids in out.items()}


async def use_kinds(session: AsyncSession) -> tuple[domain.UseKind, ...]:
    rows = await session.scalars(select(UseKindRow).order_by(UseKindRow.kind))
    return tuple(domain.UseKind(kind=row.kind, label=row.label) for row in rows)


async def connection_ids_by_name(
    session: AsyncSession, names: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    """The id of each connection named (consumer id, connection name) that exists."""
    wanted = set(names)
    if not wanted:
        return {}
    rows = await session.execute(
        select(ConnectionRow.consumer_id, ConnectionRow.name, ConnectionRow.id).where(
            ConnectionRow.consumer_id.in_(sorted({consumer for consumer, _ in wanted}))
        )
    )
    return {
        (consumer, name): connection_id
        for consumer, name, connection_id in rows
        if (consumer, name) in wanted
    }
