"""Rows for the consumers CSV, a constant number of statements per batch with the issue column
computed from grouped reads, so an export of 100k consumers streams in flat memory.

Each row comes as its CSV cells (booleans as "true"/"false", timestamps as `isoformat()`
writes them, None for an empty cell): the per-row work of the export is its cost, so nothing
is built twice per row."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, String, any_, bindparam, case, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from store import derived
from store.domain import Issue, IssueCode, SyncStep
from store.filters import ConsumerFilter, SyncActivationFilter
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncRequirementRow,
    SyncRow,
    step_bit,
)
from store.queries import consumer_conditions, sync_activation_conditions

ISSUE_SEPARATOR = "; "

CONSUMER_COLUMNS = ("consumer_id", "name", "email", "active", "connections", "issue", "created_at")
SYNC_COLUMNS = (
    "consumer_id",
    "name",
    "sync",
    "active",
    "connection_step",
    "mapping_step",
    "configuration_step",
    "issue_code",
    "issue",
    "updated_at",
)

Cells = tuple[str | int | None, ...]


@dataclass(frozen=True, slots=True)
class ExportBatch:
    """One batch of CSV rows; `last_id` is where the next batch starts after."""

    last_id: int
    rows: list[Cells]


_BOOL = ("false", "true")


class _isoformat_utc(FunctionElement[str]):
    """A UTC timestamp column as `datetime.isoformat()` writes the aware value
    ("2024-05-06T07:08:09.123456+00:00", the microseconds only when not zero), in SQL: parsing
    it into a datetime, setting its zone and formatting it again cost more per row than the
    rest of the row together."""

    type = String()
    inherit_cache = True


@compiles(_isoformat_utc, "sqlite")
def _isoformat_sqlite(element: _isoformat_utc, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps the naive UTC text UTCDateTime writes, always with six microsecond digits.
    column = compiler.process(element.clauses, **kw)
    return (
        f"substr({column}, 1, 10) || 'T' || replace(substr({column}, 12), '.000000', '') "
        "|| '+00:00'"
    )


@compiles(_isoformat_utc, "postgresql")
def _isoformat_postgresql(element: _isoformat_utc, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return (
        f"replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), "
        "'.000000', '') || '+00:00'"
    )


@lru_cache(maxsize=64)
def _consumer_page(f: ConsumerFilter) -> Select[int, str, str, str | None, str]:
    """Built once per filter (building it cost more than running it); `after_id`/`limit` bound."""
    return (
        select(
            ConsumerRow.id,
            ConsumerRow.external_id,
            ConsumerRow.name,
            ConsumerRow.email,
            _isoformat_utc(ConsumerRow.created_at),
        )
        .where(ConsumerRow.id > bindparam("after_id"), *consumer_conditions(f))
        .order_by(ConsumerRow.id)
        .limit(bindparam("limit"))
    )


# The connections of the batch's consumers by their id range alone: a filtered page leaves
# other consumers in the range, whose rows are read and dropped (consecutive ranges do not
# overlap, so an export reads each connection once). The ids as an IN list as well cost more
# than that on PostgreSQL (2000 parameters bound and planned per statement: 0.6 s of SQL at
# 20k consumers instead of 0.2 s).
_IN_BATCH = ConnectionRow.consumer_id.between(bindparam("low"), bindparam("high"))


# Per consumer: its connections, and whether one is ACTIVE (derived.consumer_is_active).
_CONNECTION_COUNTS = (
    select(
        ConnectionRow.consumer_id,
        func.count(),
        func.max(case((derived.connection_is_active(), 1), else_=0)),
    )
    .where(_IN_BATCH)
    .group_by(ConnectionRow.consumer_id)
)

# The failed connections (derived.connection_is_failed) in connection order, as the
# GraphQL issue column (queries.consumer_issues) lists them.
_FAILED_CONNECTIONS = (
    select(ConnectionRow.consumer_id, ConnectorRow.name)
    .join(ConnectorRow, ConnectorRow.id == ConnectionRow.connector_id)
    .where(_IN_BATCH, derived.connection_is_failed())
    .order_by(ConnectionRow.consumer_id, ConnectionRow.id)
)


async def consumers_by_connections(
    session: AsyncSession, f: ConsumerFilter, after_id: int, limit: int
) -> ExportBatch | None:
    """The next `limit` consumers after `after_id` as CONSUMER_COLUMNS cells, with the "by
    connections" issue column; None after the last one.

    Three statements per batch whatever its size: the page, its connections counted per
    consumer, and its failed connections. Correlated subqueries per consumer (active, count,
    failed names) cost 2.5x more SQL on PostgreSQL.
    """
    connection = await session.connection()
    page = (
        await connection.execute(_consumer_page(f), {"after_id": after_id, "limit": limit})
    ).all()
    if not page:
        return None
    batch = {"low": page[0][0], "high": page[-1][0]}
    counts = {
        consumer_id: (count, _BOOL[active])
        for consumer_id, count, active in (
            await connection.execute(_CONNECTION_COUNTS, batch)
        ).all()
    }
    failed: dict[int, list[str]] = defaultdict(list)
    for consumer_id, connector_name in (await connection.execute(_FAILED_CONNECTIONS, batch)).all():
        failed[consumer_id].append(connector_name)
    nothing = (0, _BOOL[False])
    nothing_issue = Issue(IssueCode.NOTHING).message
    messages: dict[str, str] = {}
    rows: list[Cells] = []
    append = rows.append
    for row_id, external_id, name, email, created_at in page:
        count, active = counts.get(row_id, nothing)
        if not count:
            issue = nothing_issue
        elif row_id in failed:
            issue = ISSUE_SEPARATOR.join(
                messages.get(n) or messages.setdefault(n, _failed_message(n))
                for n in failed[row_id]
            )
        else:
            issue = ""
        append((external_id, name, email, active, count, issue, created_at))
    return ExportBatch(page[-1][0], rows)


def _failed_message(connector_name: str) -> str:
    return Issue(IssueCode.CONNECTION_FAILED, connector_name=connector_name).message


@lru_cache(maxsize=64)
def _activation_page(
    f: SyncActivationFilter,
) -> Select[int, int, int, int, str, str, str, str]:
    """Built once per filter (building it cost more than running it); `after_id`/`limit` bound."""
    # Aliases: the filter's subqueries over consumers and syncs would otherwise correlate to
    # these joins and lose their FROM (search and issue filters failed so).
    consumer, sync = aliased(ConsumerRow), aliased(SyncRow)
    return (
        select(
            SyncActivationRow.id,
            SyncActivationRow.consumer_id,
            SyncActivationRow.sync_id,
            SyncActivationRow.completed_steps,
            _isoformat_utc(SyncActivationRow.updated_at),
            consumer.external_id,
            consumer.name,
            sync.name,
        )
        .join(consumer, consumer.id == SyncActivationRow.consumer_id)
        .join(sync, sync.id == SyncActivationRow.sync_id)
        .where(SyncActivationRow.id > bindparam("after_id"), *sync_activation_conditions(f))
        .order_by(SyncActivationRow.id)
        .limit(bindparam("limit"))
    )


_REQUIREMENTS = (
    select(SyncRequirementRow.sync_id, SyncRequirementRow.connector_id, ConnectorRow.name)
    .join(ConnectorRow, ConnectorRow.id == SyncRequirementRow.connector_id)
    .where(SyncRequirementRow.sync_id.in_(bindparam("sync_ids", expanding=True)))
    .order_by(SyncRequirementRow.sync_id, SyncRequirementRow.position, ConnectorRow.id)
)


def _requirement_health(in_batch: ColumnElement[bool]) -> Select[Any]:
    return (
        select(
            ConnectionRow.consumer_id,
            ConnectionRow.connector_id,
            *derived.requirement_health_flags(),
        )
        # The range lets PostgreSQL scan its consumer index (a long IN list alone is a
        # sequential scan). The required connectors are tested inside a CASE on purpose:
        # SQLite, without statistics, takes a plain connector_id IN (...) to its connector
        # index and reads every connection to those connectors (60 ms a batch); as a filter it
        # keeps the consumer index and returns a third of the rows (20 -> 7 ms a batch).
        .where(
            ConnectionRow.consumer_id.between(bindparam("low"), bindparam("high")),
            in_batch,
            case(
                (ConnectionRow.connector_id.in_(bindparam("connector_ids", expanding=True)), 1),
                else_=0,
            )
            == 1,
        )
        .group_by(ConnectionRow.consumer_id, ConnectionRow.connector_id)
    )


# The batch's consumers: PostgreSQL takes them as one array; expanded into ~1000 parameters
# they cost more to render, send and parse than the statement takes to run.
_REQUIREMENT_HEALTH = {
    "postgresql": _requirement_health(
        ConnectionRow.consumer_id == any_(bindparam("consumer_ids", type_=ARRAY(Integer)))
    ),
    "sqlite": _requirement_health(
        ConnectionRow.consumer_id.in_(bindparam("consumer_ids", expanding=True))
    ),
}

# The eight possible flag sets, shared: a batch would otherwise allocate one per row.
_FLAGS = {
    (healthy, failed, active): derived.RequirementHealth(healthy, failed, active)
    for healthy in (False, True)
    for failed in (False, True)
    for active in (False, True)
}


def _step_cells(completed_steps: int) -> tuple[str, str, str]:
    return (
        _BOOL[bool(completed_steps & step_bit(SyncStep.CONNECTION))],
        _BOOL[bool(completed_steps & step_bit(SyncStep.MAPPING))],
        _BOOL[bool(completed_steps & step_bit(SyncStep.CONFIGURATION))],
    )


async def consumers_by_syncs(
    session: AsyncSession, f: SyncActivationFilter, after_id: int, limit: int
) -> ExportBatch | None:
    """The next `limit` sync activations after `after_id` as SYNC_COLUMNS cells, with the
    "by syncs" issue column; None after the last one.

    Three statements per batch whatever its size: the page, the syncs' requirements, and the
    consumers' connections grouped into flags per connector; `derived.activation_state` then
    applies the issue precedence in Python (correlated subqueries per activation ran at 8k
    rows/s on SQLite and 5k on PostgreSQL).
    """
    connection = await session.connection()
    page = (
        await connection.execute(_activation_page(f), {"after_id": after_id, "limit": limit})
    ).all()
    if not page:
        return None
    required: dict[int, list[int]] = defaultdict(list)
    connector_names: dict[int, str] = {}
    requirements = await connection.execute(
        _REQUIREMENTS, {"sync_ids": sorted({row[2] for row in page})}
    )
    for sync_id, connector_id, connector_name in requirements.all():
        required[sync_id].append(connector_id)
        connector_names[connector_id] = connector_name
    health: dict[int, dict[int, derived.RequirementHealth]] = defaultdict(dict)
    if connector_names:
        consumer_ids = sorted({row[1] for row in page})
        flags = await connection.execute(
            _REQUIREMENT_HEALTH[connection.dialect.name],
            {
                "low": consumer_ids[0],
                "high": consumer_ids[-1],
                "consumer_ids": consumer_ids,
                "connector_ids": sorted(connector_names),
            },
        )
        # .all(): one fetch for the batch; iterating the result fetches row by row.
        for consumer_id, connector_id, healthy, failed, active in flags.all():
            health[consumer_id][connector_id] = _FLAGS[bool(healthy), bool(failed), bool(active)]
    # The cells after the names depend on few values: made once per batch for each.
    outcomes: dict[tuple[bool, IssueCode | None, int | None, int], Cells] = {}
    rows: list[Cells] = []
    append = rows.append
    for (
        _row_id,
        consumer_id,
        sync_id,
        completed,
        updated_at,
        external_id,
        consumer_name,
        sync_name,
    ) in page:
        state = derived.activation_state(required[sync_id], health[consumer_id], completed)
        key = (*state, completed)
        if (outcome := outcomes.get(key)) is None:
            outcome = outcomes[key] = _outcome_cells(*state, completed, connector_names)
        append((external_id, consumer_name, sync_name, *outcome, updated_at))
    return ExportBatch(page[-1][0], rows)


def _outcome_cells(
    active: bool,
    code: IssueCode | None,
    issue_connector: int | None,
    completed_steps: int,
    connector_names: dict[int, str],
) -> Cells:
    """active, the three steps, issue_code and issue."""
    if code is None:
        return (_BOOL[active], *_step_cells(completed_steps), "", "")
    name = connector_names.get(issue_connector) if issue_connector else None
    issue = Issue(code, None, name).message
    return (_BOOL[active], *_step_cells(completed_steps), code.value, issue)
