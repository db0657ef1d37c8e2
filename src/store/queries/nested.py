"""Nested lists: the pages of every parent in one statement (ROW_NUMBER per parent)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    bindparam,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from store import domain, records
from store.filters import (
    ConnectionFilter,
    SyncActivationFilter,
    UseFilter,
)
from store.models import (
    ConnectionRow,
    SyncActivationRow,
    UseKindRow,
    UseRow,
)
from store.pagination import (
    Page,
    PageRequest,
    page_of,
)
from store.queries.conditions import (
    connection_conditions,
    sync_activation_conditions,
    use_conditions,
)

T = TypeVar("T")


class _RankedPages(NamedTuple):
    """A statement for the first rows of each parent, and where a row names its parent."""

    statement: Select[Any]
    parent_key: str
    # Where a Core row holds the parent's id; None for rows of SyncActivationRow entities.
    parent_index: int | None


def _ranked_pages(
    entity: Any,
    parent_column: InstrumentedAttribute[int],
    conditions: list[ColumnElement[bool]],
    after: bool,
    extra_columns: tuple[Any, ...] = (),
    joins: tuple[Any, ...] = (),
) -> _RankedPages:
    """The first `:row_limit` rows (ROW_NUMBER per parent) of each parent in the expanding
    `:parent_ids`, after `:after_id` when `after`: rows of `records.columns(entity)` then
    `extra_columns`, or for SyncActivationRow, whose record needs its `steps` relationship,
    rows of the ORM entity then `extra_columns`.

    One statement whatever the number of parents: a page of 200 consumers costs what 10 do.
    Callers cache it per filter: building and keying it cost more than running its SQL.
    """
    id_column = entity.id
    rank = func.row_number().over(partition_by=parent_column, order_by=id_column).label("rank")
    own_columns = records.columns(entity)
    selected = (entity,) if entity is SyncActivationRow else own_columns
    inner = select(*selected, *extra_columns, rank)
    for target, on in joins:
        inner = inner.join(target, on)
    inner = inner.where(parent_column.in_(bindparam("parent_ids", expanding=True)), *conditions)
    if after:
        inner = inner.where(id_column > bindparam("after_id"))
    ranked = inner.subquery()
    extras = [ranked.c[column.key] for column in extra_columns]
    first_rows = ranked.c.rank <= bindparam("row_limit")
    ordered = (ranked.c[parent_column.key], ranked.c.id)
    if entity is SyncActivationRow:
        statement = select(aliased(entity, ranked), *extras).where(first_rows).order_by(*ordered)
        return _RankedPages(statement, parent_column.key, None)
    own = [ranked.c[column.key] for column in own_columns]
    statement = select(*own, *extras).where(first_rows).order_by(*ordered)
    parent_index = [column.key for column in own_columns].index(parent_column.key)
    return _RankedPages(statement, parent_column.key, parent_index)


async def _pages_per_parent(
    session: AsyncSession,
    ranked: _RankedPages,
    parent_ids: Iterable[int],
    page: PageRequest,
) -> dict[int, list[Row[Any]]]:
    """The first `page.first + 1` rows of each parent, keyed by parent (every parent listed)."""
    wanted = set(parent_ids)
    parameters: dict[str, Any] = {"parent_ids": list(wanted), "row_limit": page.first + 1}
    if page.after_id is not None:
        parameters["after_id"] = page.after_id
    out: dict[int, list[Row[Any]]] = {parent_id: [] for parent_id in wanted}
    parent_index = ranked.parent_index
    if parent_index is None:
        for row in await session.execute(ranked.statement, parameters):
            out[getattr(row[0], ranked.parent_key)].append(row)
        return out
    connection = await session.connection()
    for row in (await connection.execute(ranked.statement, parameters)).all():
        out[row[parent_index]].append(row)
    return out


async def _counts_per_parent(
    session: AsyncSession,
    parent_column: InstrumentedAttribute[int],
    parent_ids: Iterable[int],
    conditions: list[ColumnElement[bool]],
) -> dict[int, int]:
    wanted = set(parent_ids)
    rows = await session.execute(
        select(parent_column, func.count())
        .where(parent_column.in_(wanted), *conditions)
        .group_by(parent_column)
    )
    counts = {parent_id: 0 for parent_id in wanted}
    counts.update({parent_id: int(count) for parent_id, count in rows})
    return counts


def _cut(
    rows: dict[int, list[Row[Any]]], page: PageRequest, convert: Callable[[Row[Any]], Any]
) -> dict[int, Page[Any]]:
    return {
        parent_id: page_of(list(map(convert, parent_rows)), page, _row_id)
        for parent_id, parent_rows in rows.items()
    }


_row_id = attrgetter("id")


async def connections_per_parent(
    session: AsyncSession,
    parent: str,
    parent_ids: Iterable[int],
    f: ConnectionFilter,
    page: PageRequest,
) -> dict[int, Page[domain.Connection]]:
    """Pages of connections per consumer (`parent="consumer"`) or per connector."""
    ranked = _connection_pages(parent, f, page.after is not None)
    rows = await _pages_per_parent(session, ranked, parent_ids, page)
    return _cut(rows, page, records.connection_of_columns)


@functools.lru_cache(maxsize=128)
def _connection_pages(parent: str, f: ConnectionFilter, after: bool) -> _RankedPages:
    column = ConnectionRow.consumer_id if parent == "consumer" else ConnectionRow.connector_id
    return _ranked_pages(ConnectionRow, column, connection_conditions(f), after)


async def count_connections_per_parent(
    session: AsyncSession, parent: str, parent_ids: Iterable[int], f: ConnectionFilter
) -> dict[int, int]:
    column = ConnectionRow.consumer_id if parent == "consumer" else ConnectionRow.connector_id
    return await _counts_per_parent(session, column, parent_ids, connection_conditions(f))


async def uses_per_connection(
    session: AsyncSession, connection_ids: Iterable[int], f: UseFilter, page: PageRequest
) -> dict[int, Page[domain.Use]]:
    rows = await _pages_per_parent(
        session, _use_pages(f, page.after is not None), connection_ids, page
    )
    return _cut(rows, page, records.use_of_columns)


@functools.lru_cache(maxsize=128)
def _use_pages(f: UseFilter, after: bool) -> _RankedPages:
    return _ranked_pages(
        UseRow,
        UseRow.connection_id,
        use_conditions(f),
        after,
        extra_columns=(UseKindRow.label,),
        joins=((UseKindRow, UseKindRow.kind == UseRow.kind),),
    )


async def count_uses_per_connection(
    session: AsyncSession, connection_ids: Iterable[int], f: UseFilter
) -> dict[int, int]:
    return await _counts_per_parent(
        session, UseRow.connection_id, connection_ids, use_conditions(f)
    )


async def activations_per_parent(
    session: AsyncSession,
    parent: str,
    parent_ids: Iterable[int],
    f: SyncActivationFilter,
    page: PageRequest,
) -> dict[int, Page[domain.SyncActivation]]:
    """Pages of sync activations per consumer (`parent="consumer"`) or per sync."""
    ranked = _activation_pages(parent, f, page.after is not None)
    rows = await _pages_per_parent(session, ranked, parent_ids, page)
    return _cut(rows, page, lambda row: records.sync_activation(row[0]))


@functools.lru_cache(maxsize=128)
def _activation_pages(parent: str, f: SyncActivationFilter, after: bool) -> _RankedPages:
    column = SyncActivationRow.consumer_id if parent == "consumer" else SyncActivationRow.sync_id
    return _ranked_pages(SyncActivationRow, column, sync_activation_conditions(f), after)


async def count_activations_per_parent(
    session: AsyncSession, parent: str, parent_ids: Iterable[int], f: SyncActivationFilter
) -> dict[int, int]:
    column = SyncActivationRow.consumer_id if parent == "consumer" else SyncActivationRow.sync_id
    return await _counts_per_parent(session, column, parent_ids, sync_activation_conditions(f))
