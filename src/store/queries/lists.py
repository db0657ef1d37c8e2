"""Top-level lists and their counts: a filter and a keyset page in, records out."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from store import domain, records
from store.filters import (
    ConnectionFilter,
    ConnectorFilter,
    ConsumerFilter,
    SyncActivationFilter,
    SyncFilter,
    UseFilter,
)
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncRow,
    UseKindRow,
    UseRow,
)
from store.pagination import (
    Page,
    PageRequest,
    keyset_page,
    page_of,
    page_parameters,
    paginate,
    paginate_rows,
    paginate_rows_of,
)
from store.queries.conditions import (
    connection_conditions,
    connector_conditions,
    consumer_conditions,
    sync_activation_conditions,
    sync_conditions,
    use_conditions,
)

T = TypeVar("T")


async def count_rows(
    session: AsyncSession, model: Any, conditions: list[ColumnElement[bool]]
) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0
    )


@functools.lru_cache(maxsize=128)
def _list_page(
    model: Any, conditions: Callable[[Any], list[ColumnElement[bool]]], f: Hashable, after: bool
) -> Select[Any]:
    """A `keyset_page` of `records.columns(model)` under `conditions(f)`, built once per filter:
    building and keying it cost more than running its SQL."""
    statement = select(*records.columns(model)).where(*conditions(f))
    return keyset_page(statement, model.id, after)


async def list_consumers(
    session: AsyncSession, f: ConsumerFilter, page: PageRequest
) -> Page[domain.Consumer]:
    keyset = _list_page(ConsumerRow, consumer_conditions, f, page.after is not None)
    return await paginate_rows(session, keyset, page, records.consumer)


async def count_consumers(session: AsyncSession, f: ConsumerFilter) -> int:
    return await count_rows(session, ConsumerRow, consumer_conditions(f))


async def list_connectors(
    session: AsyncSession, f: ConnectorFilter, page: PageRequest
) -> Page[domain.Connector]:
    keyset = _list_page(ConnectorRow, connector_conditions, f, page.after is not None)
    return await paginate_rows(session, keyset, page, records.connector)


async def count_connectors(session: AsyncSession, f: ConnectorFilter) -> int:
    return await count_rows(session, ConnectorRow, connector_conditions(f))


async def list_connections(
    session: AsyncSession, f: ConnectionFilter, page: PageRequest
) -> Page[domain.Connection]:
    keyset = _list_page(ConnectionRow, connection_conditions, f, page.after is not None)
    return await paginate_rows(session, keyset, page, records.connection_of_columns)


class ConnectionsWithEnds(NamedTuple):
    """A page of connections with the consumer and the connector of each, by id."""

    page: Page[domain.Connection]
    consumers: dict[int, domain.Consumer]
    connectors: dict[int, domain.Connector]


async def list_connections_with_ends(
    session: AsyncSession, f: ConnectionFilter, page: PageRequest
) -> ConnectionsWithEnds:
    """`list_connections` with each connection's consumer and connector in the same statement:
    a page that shows them costs one statement, not three."""
    keyset = _connections_with_ends(f, page.after is not None)
    connection = await session.connection()
    rows = (await connection.execute(keyset, page_parameters(page))).all()
    consumers: dict[int, domain.Consumer] = {}
    connectors: dict[int, domain.Connector] = {}

    def connection_record(row: Row[Any]) -> domain.Connection:
        record, consumer, connector = records.connection_with_ends(row)
        consumers[consumer.id] = consumer
        connectors[connector.id] = connector
        return record

    return ConnectionsWithEnds(
        paginate_rows_of(rows, page, connection_record), consumers, connectors
    )


@functools.lru_cache(maxsize=128)
def _connections_with_ends(f: ConnectionFilter, after: bool) -> Select[Any]:
    statement = (
        select(*records.CONNECTION_WITH_ENDS_COLUMNS)
        .join(ConsumerRow, ConsumerRow.id == ConnectionRow.consumer_id)
        .join(ConnectorRow, ConnectorRow.id == ConnectionRow.connector_id)
        .where(*connection_conditions(f))
    )
    return keyset_page(statement, ConnectionRow.id, after)


async def count_connections(session: AsyncSession, f: ConnectionFilter) -> int:
    return await count_rows(session, ConnectionRow, connection_conditions(f))


async def list_uses(session: AsyncSession, f: UseFilter, page: PageRequest) -> Page[domain.Use]:
    stmt = select(UseRow, UseKindRow.label).join(UseKindRow).where(*use_conditions(f))
    after_id = page.after_id
    if after_id is not None:
        stmt = stmt.where(UseRow.id > after_id)
    rows = (await session.execute(stmt.order_by(UseRow.id).limit(page.first + 1))).all()
    return page_of([records.use(row, label) for row, label in rows], page, lambda u: u.id)


async def count_uses(session: AsyncSession, f: UseFilter) -> int:
    return await count_rows(session, UseRow, use_conditions(f))


async def list_syncs(session: AsyncSession, f: SyncFilter, page: PageRequest) -> Page[domain.Sync]:
    stmt = select(SyncRow).where(*sync_conditions(f))
    return await paginate(session, stmt, SyncRow.id, page, records.sync)


async def count_syncs(session: AsyncSession, f: SyncFilter) -> int:
    return await count_rows(session, SyncRow, sync_conditions(f))


async def list_sync_activations(
    session: AsyncSession, f: SyncActivationFilter, page: PageRequest
) -> Page[domain.SyncActivation]:
    stmt = select(SyncActivationRow).where(*sync_activation_conditions(f))
    return await paginate(session, stmt, SyncActivationRow.id, page, records.sync_activation)


async def count_sync_activations(session: AsyncSession, f: SyncActivationFilter) -> int:
    return await count_rows(session, SyncActivationRow, sync_activation_conditions(f))
