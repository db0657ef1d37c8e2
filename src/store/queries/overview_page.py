"""The overview page: every figure in four statements, run one after another or at once."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import BindParameter, Executable

from store import derived, domain, records
from store.domain import (
    ConnectionState,
    ConnectionStatus,
)
from store.engine import pool_slots
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncRow,
    step_bit,
)

T = TypeVar("T")

# --- overview ---------------------------------------------------------------------------------
#
# Four independent statements. `overview` runs them one after another on one session;
# `overview_concurrently` runs them at once, each on its own pooled connection, so the page
# takes about as long as its slowest statement instead of their sum; `overview_on_pool` picks
# one of the two so that concurrent overviews can never exhaust the pool.
#
# Both forms see the same thing: the request session reads under READ COMMITTED on PostgreSQL
# (each statement takes its own snapshot) and pysqlite starts no transaction for a SELECT on
# SQLite (each statement sees the latest commit), so four statements on one session were never
# one snapshot either; figures written between them may disagree by that write in both forms.

ConsumerScope = tuple[int, ...] | None
# Per sync: the sync, and its activations counted per completion bitmask.
SyncMasks = dict[int, tuple[domain.Sync, dict[int, int]]]

# What `overview_concurrently` holds at most: the request's session and three of its own.
OVERVIEW_CONNECTIONS = 4


@dataclass(frozen=True, slots=True)
class _ConnectionFigures:
    connectors: tuple[domain.ConnectorUsage, ...]
    by_state: Mapping[ConnectionState, int]
    by_status: Mapping[ConnectionStatus, int]
    categories: tuple[domain.CategoryUsage, ...] | None


async def overview(
    session: AsyncSession, consumer_ids: ConsumerScope = None, *, categories: bool = False
) -> domain.Overview:
    """Every figure of the seeds' overview page in four statements, whatever the data size.

    `consumer_ids` restricts every figure to those consumers (tenant-scoped tokens).
    `categories`: also sum the figures up per category (the Unified API), in the same four
    statements; left None otherwise, because its active consumers cost a distinct count over
    every ACTIVE connection (bench/graphql_bench.py (b): about as much again as the rest).
    """
    return _overview(
        await _consumer_counts(session, consumer_ids),
        await _connection_figures(session, consumer_ids, categories),
        await _activations_per_mask(session, consumer_ids),
        await _active_activations_per_sync(session, consumer_ids),
    )


async def overview_concurrently(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    consumer_ids: ConsumerScope = None,
    *,
    categories: bool = False,
) -> domain.Overview:
    """`overview` with its four statements at once: the slowest on `session`, the others on
    short-lived sessions from `sessions`, each closed before this returns or raises (a task
    group cancels the others when one fails or this is cancelled, and waits for them).

    Unbounded: callers serving requests go through `overview_on_pool`.
    """
    try:
        async with asyncio.TaskGroup() as group:
            active = group.create_task(_active_activations_per_sync(session, consumer_ids))
            counts = group.create_task(_on_own_session(sessions, _consumer_counts, consumer_ids))
            connection_figures = functools.partial(_connection_figures, categories=categories)
            connections = group.create_task(
                _on_own_session(sessions, connection_figures, consumer_ids)
            )
            masks = group.create_task(
                _on_own_session(sessions, _activations_per_mask, consumer_ids)
            )
    except BaseExceptionGroup as failures:
        # The first failure as itself, as the sequential form raises it: callers and error
        # masking look at an exception's type, which a group would hide.
        raise failures.exceptions[0] from None
    return _overview(counts.result(), connections.result(), masks.result(), active.result())


async def overview_on_pool(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    consumer_ids: ConsumerScope = None,
    *,
    categories: bool = False,
) -> domain.Overview:
    """`overview_concurrently` if one of the pool's overview slots is free now, otherwise
    `overview` on `session` alone.

    Never waits for a slot: a request waiting for one would hold its own connection, which the
    overviews holding the slots may need.
    """
    slots = pool_slots(session.bind, OVERVIEW_CONNECTIONS)
    if not slots.acquire(blocking=False):
        return await overview(session, consumer_ids, categories=categories)
    try:
        return await overview_concurrently(session, sessions, consumer_ids, categories=categories)
    finally:
        slots.release()


async def _on_own_session(
    sessions: async_sessionmaker[AsyncSession],
    part: Callable[[AsyncSession, ConsumerScope], Awaitable[T]],
    consumer_ids: ConsumerScope,
) -> T:
    async with sessions() as session:
        return await part(session, consumer_ids)


# Each statement is built once per shape (whole, or scoped to the consumers bound at execution):
# building them took more CPU than reading their results (~5 ms for the aliases of
# `derived.activation_is_active`, ~4 ms for the per-connector pivot). SQL expressions are
# immutable, so concurrent overviews share them safely.
_CONSUMER_IDS: BindParameter[int] = bindparam("consumer_ids", expanding=True)


def _scope(column: Any, scoped: bool) -> list[ColumnElement[bool]]:
    return [column.in_(_CONSUMER_IDS)] if scoped else []


async def _execute_scoped(
    session: AsyncSession, statement: Callable[[bool], Executable], consumer_ids: ConsumerScope
) -> Any:
    if consumer_ids is None:
        return await session.execute(statement(False))
    return await session.execute(statement(True), {"consumer_ids": list(consumer_ids)})


async def _consumer_counts(session: AsyncSession, consumer_ids: ConsumerScope) -> tuple[int, int]:
    """(all consumers, active consumers)."""
    total, active = (await _execute_scoped(session, _consumer_counts_statement, consumer_ids)).one()
    return int(total), int(active)


@functools.cache
def _consumer_counts_statement(scoped: bool) -> Select[Any]:
    return select(
        select(func.count())
        .select_from(ConsumerRow)
        .where(*_scope(ConsumerRow.id, scoped))
        .scalar_subquery(),
        _active_consumer_count(_scope(ConnectionRow.consumer_id, scoped)),
    )


def _active_consumer_count(connection_scope: list[ColumnElement[bool]]) -> Any:
    """How many consumers `derived.consumer_is_active` holds for, counted from the connections.

    Equal because every connection has its consumer (a foreign key): one distinct count over
    the (state, consumer_id) index instead of an EXISTS probe per consumer (3x faster on
    SQLite at 20k consumers, 2.5x on PostgreSQL). tests/store/test_queries.py holds the two
    equal.
    """
    return (
        select(func.count(ConnectionRow.consumer_id.distinct()))
        .where(derived.connection_is_active(), *connection_scope)
        .scalar_subquery()
    )


_STATES = tuple(ConnectionState)
_STATUSES = tuple(ConnectionStatus)


async def _connection_figures(
    session: AsyncSession, consumer_ids: ConsumerScope, categories: bool = False
) -> _ConnectionFigures:
    statement = functools.partial(_connection_figures_statement, categories=categories)
    rows = await _execute_scoped(session, statement, consumer_ids)
    by_state = dict.fromkeys(_STATES, 0)
    by_status = dict.fromkeys(_STATUSES, 0)
    connectors = []
    # Per category: its connectors' usages, and its active consumers (the same on every row of
    # the category; None when no consumer has an ACTIVE connection to it).
    per_category: dict[str, tuple[list[domain.ConnectorUsage], int]] = {}
    for connector_row, *figures in rows:
        category_consumers = figures.pop() if categories else None
        counts = [int(n or 0) for n in figures]  # None: a connector without connections
        states = dict(zip(_STATES, counts, strict=False))
        for state, n in states.items():
            by_state[state] += n
        for status, n in zip(_STATUSES, counts[len(_STATES) :], strict=True):
            by_status[status] += n
        usage = domain.ConnectorUsage(
            records.connector(connector_row),
            states[ConnectionState.ACTIVE],
            states[ConnectionState.PENDING],
            states[ConnectionState.FAILED],
        )
        connectors.append(usage)
        category = per_category.setdefault(usage.connector.category, ([], category_consumers or 0))
        category[0].append(usage)
    if not categories:
        return _ConnectionFigures(tuple(connectors), by_state, by_status, None)
    per_category_usage = tuple(
        domain.CategoryUsage(
            category=name,
            connectors=len(usages),
            active_connections=sum(u.active_connections for u in usages),
            pending_connections=sum(u.pending_connections for u in usages),
            failed_connections=sum(u.failed_connections for u in usages),
            active_consumers=int(active_consumers),
        )
        for name, (usages, active_consumers) in sorted(per_category.items())
    )
    return _ConnectionFigures(tuple(connectors), by_state, by_status, per_category_usage)


@functools.cache
def _connection_figures_statement(scoped: bool, categories: bool = False) -> Select[Any]:
    """Each connector with its connections counted per state, then per status (DISABLED ones
    left out of those), and with `categories` the consumers with an ACTIVE connection to a
    connector of its category.

    Counted per (connector, state, status) from the index of those three columns alone, then
    pivoted to one row per connector (a few hundred groups to 50 rows): a row loads a connector
    and decodes its heartbeat JSON, which cost more than the pivot in SQL.
    """
    per_group = (
        select(
            ConnectionRow.connector_id,
            ConnectionRow.state,
            ConnectionRow.status,
            func.count().label("count"),
        )
        .where(*_scope(ConnectionRow.consumer_id, scoped))
        .group_by(ConnectionRow.connector_id, ConnectionRow.state, ConnectionRow.status)
        .subquery()
    )
    counted = per_group.c["count"]
    enabled = per_group.c.state != ConnectionState.DISABLED
    per_connector = (
        select(
            per_group.c.connector_id,
            *(_sum_where(per_group.c.state == state, counted) for state in _STATES),
            *(_sum_where(and_(enabled, per_group.c.status == s), counted) for s in _STATUSES),
        )
        .group_by(per_group.c.connector_id)
        .subquery()
    )
    per_connector_figures = (
        select(ConnectorRow, *list(per_connector.c)[1:])
        .outerjoin(per_connector, per_connector.c.connector_id == ConnectorRow.id)
        .order_by(ConnectorRow.name, ConnectorRow.id)
    )
    if not categories:
        return per_connector_figures
    # A consumer active on two connectors of one category counts once there: a distinct count
    # per category, which the per-connector figures cannot be summed into. Joined here rather
    # than run as a fifth statement (one more round trip and pooled connection per overview).
    # It reads every ACTIVE connection with its connector and sorts them per category: 30 to
    # 60 ms at 100k connections, as much again as the rest of the page (bench/graphql_bench.py
    # (b), either backend), so only a caller that asks for the categories pays for it.
    connector = aliased(ConnectorRow)
    active_per_category = (
        select(
            connector.category,
            func.count(ConnectionRow.consumer_id.distinct()).label("active_consumers"),
        )
        .join(connector, connector.id == ConnectionRow.connector_id)
        .where(derived.connection_is_active(), *_scope(ConnectionRow.consumer_id, scoped))
        .group_by(connector.category)
        .subquery()
    )
    return per_connector_figures.add_columns(active_per_category.c.active_consumers).outerjoin(
        active_per_category, active_per_category.c.category == ConnectorRow.category
    )


def _sum_where(condition: ColumnElement[bool], counted: Any) -> ColumnElement[int]:
    return func.sum(case((condition, counted), else_=0))


async def _activations_per_mask(session: AsyncSession, consumer_ids: ConsumerScope) -> SyncMasks:
    rows = await _execute_scoped(session, _activations_per_mask_statement, consumer_ids)
    sync_masks: SyncMasks = {}
    for sync_row, mask, count in rows:
        _, masks = sync_masks.setdefault(sync_row.id, (records.sync(sync_row), {}))
        if mask is not None:
            masks[int(mask)] = int(count)
    return sync_masks


@functools.cache
def _activations_per_mask_statement(scoped: bool) -> Select[Any]:
    # One row per (sync, mask), read from the (sync_id, completed_steps, consumer_id) index alone.
    per_mask = (
        select(
            SyncActivationRow.sync_id,
            SyncActivationRow.completed_steps,
            func.count().label("count"),
        )
        .where(*_scope(SyncActivationRow.consumer_id, scoped))
        .group_by(SyncActivationRow.sync_id, SyncActivationRow.completed_steps)
        .subquery()
    )
    return (
        select(SyncRow, per_mask.c.completed_steps, per_mask.c["count"])
        .outerjoin(per_mask, per_mask.c.sync_id == SyncRow.id)
        .order_by(SyncRow.name, SyncRow.id)
    )


async def _active_activations_per_sync(
    session: AsyncSession, consumer_ids: ConsumerScope
) -> dict[int, int]:
    rows = await _execute_scoped(session, _active_activations_statement, consumer_ids)
    return {sync_id: int(count) for sync_id, count in rows}


@functools.cache
def _active_activations_statement(scoped: bool) -> Select[int, int]:
    # Apart from the masks: the requirement check runs only for activations with every step done.
    return (
        select(SyncActivationRow.sync_id, func.count())
        .where(derived.activation_is_active(), *_scope(SyncActivationRow.consumer_id, scoped))
        .group_by(SyncActivationRow.sync_id)
    )


def _overview(
    consumer_counts: tuple[int, int],
    connections: _ConnectionFigures,
    sync_masks: SyncMasks,
    active_per_sync: Mapping[int, int],
) -> domain.Overview:
    consumers, active_consumers = consumer_counts
    by_state, by_status = connections.by_state, connections.by_status
    syncs = tuple(
        domain.SyncUsage(
            sync=sync,
            activations=sum(masks.values()),
            active_activations=active_per_sync.get(sync.id, 0),
            step_funnel=tuple(_funnel_entry(step, masks) for step in domain.SYNC_STEPS),
        )
        for sync, masks in sync_masks.values()
    )
    return domain.Overview(
        consumers=consumers,
        active_consumers=active_consumers,
        active_connections=by_state[ConnectionState.ACTIVE],
        pending_connections=by_state[ConnectionState.PENDING],
        failed_connections=by_state[ConnectionState.FAILED],
        disabled_connections=by_state[ConnectionState.DISABLED],
        connections_by_status=domain.StatusCounts(
            connected=by_status[ConnectionStatus.CONNECTED],
            connection_failure=by_status[ConnectionStatus.CONNECTION_FAILURE],
            unknown=by_status[ConnectionStatus.UNKNOWN],
        ),
        connectors=connections.connectors,
        syncs=syncs,
        categories=connections.categories,
    )


def _funnel_entry(
    step: domain.SyncStep, activations_per_mask: dict[int, int]
) -> domain.StepFunnelEntry:
    """Complete and incomplete activations at `step`, from counts per completion bitmask."""
    bit = step_bit(step)
    complete = sum(n for mask, n in activations_per_mask.items() if mask & bit)
    return domain.StepFunnelEntry(step, complete, sum(activations_per_mask.values()) - complete)
