"""Read queries shared by the GraphQL API, the CSV export and the exporter.

Lists take a filter and a page; batch functions take a set of ids and answer in one statement
(the shape a DataLoader wants). Aggregates run in SQL, never as a loop over every row.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    bindparam,
    case,
    cast,
    func,
    null,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import BindParameter, Executable
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String

from store import derived, domain, records
from store.domain import (
    ConnectionState,
    ConnectionStatus,
    IssueCode,
    UseStatus,
)
from store.engine import UNICODE_LOWER
from store.filters import (
    ConnectionFilter,
    ConnectorFilter,
    ConsumerFilter,
    SyncActivationFilter,
    SyncFilter,
    UseFilter,
)
from store.models import (
    CheckRow,
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncRequirementRow,
    SyncRow,
    UseKindRow,
    UseRow,
    step_bit,
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

T = TypeVar("T")

# --- filtering helpers -------------------------------------------------------------------------


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _folded(FunctionElement[str]):
    """lower() that folds every letter: on SQLite the Unicode one `store.engine` registers."""

    type = String()
    name = "folded"
    inherit_cache = True


@compiles(_folded)
def _compile_folded(element: _folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_folded, "sqlite")
def _compile_folded_sqlite(element: _folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{UNICODE_LOWER}({compiler.process(element.clauses, **kw)})"


def _search(
    term: str | None,
    id_column: InstrumentedAttribute[int],
    *text_columns: InstrumentedAttribute[Any],
) -> list[ColumnElement[bool]]:
    """Case-insensitive substring on the text columns, or the exact numeric id."""
    term = (term or "").strip()
    if not term:
        return []
    pattern = _like_pattern(term)
    matches: list[ColumnElement[bool]]
    if term.isascii():
        # ASCII letters fold alike on both backends, and SQLite's ilike (lower() LIKE lower())
        # stays in C: a Python function per row would cost more than the search.
        matches = [column.ilike(pattern, escape="\\") for column in text_columns]
    else:
        matches = [_folded(column).like(pattern.lower(), escape="\\") for column in text_columns]
    # ASCII digits only: '²' is isdigit() but not int(), and '١٢' is not how ids are written.
    if term.isascii() and term.isdigit() and len(term) < 18:
        matches.append(id_column == int(term))
    return [or_(*matches)]


def _in(column: Any, values: tuple[Any, ...] | None) -> list[ColumnElement[bool]]:
    return [] if values is None else [column.in_(values)]


def consumer_conditions(f: ConsumerFilter) -> list[ColumnElement[bool]]:
    conditions = _in(ConsumerRow.id, f.consumer_ids)
    if f.active is not None:
        active = derived.consumer_is_active()
        conditions.append(active if f.active else ~active)
    if f.connector_ids is not None:
        conditions.append(
            select(ConnectionRow.id)
            .where(
                ConnectionRow.consumer_id == ConsumerRow.id,
                ConnectionRow.connector_id.in_(f.connector_ids),
            )
            .exists()
        )
    if f.issue_codes is not None:
        conditions.append(or_(*(derived.consumer_has_issue(code) for code in f.issue_codes)))
    conditions += _search(f.search, ConsumerRow.id, ConsumerRow.name, ConsumerRow.external_id)
    return conditions


def connector_conditions(f: ConnectorFilter) -> list[ColumnElement[bool]]:
    conditions = [*_in(ConnectorRow.id, f.connector_ids), *_in(ConnectorRow.category, f.categories)]
    if f.consumer_ids is not None:
        conditions.append(
            select(ConnectionRow.id)
            .where(
                ConnectionRow.connector_id == ConnectorRow.id,
                ConnectionRow.consumer_id.in_(f.consumer_ids),
            )
            .exists()
        )
    conditions += _search(f.search, ConnectorRow.id, ConnectorRow.name, ConnectorRow.slug)
    return conditions


def connection_conditions(f: ConnectionFilter) -> list[ColumnElement[bool]]:
    conditions = [
        *_in(ConnectionRow.id, f.connection_ids),
        *_in(ConnectionRow.consumer_id, f.consumer_ids),
        *_in(ConnectionRow.connector_id, f.connector_ids),
        *_in(ConnectionRow.state, f.states),
        *_in(ConnectionRow.status, f.statuses),
        *_in(ConnectionRow.direction, f.directions),
    ]
    conditions += _search(f.search, ConnectionRow.id, ConnectionRow.name)
    return conditions


def use_conditions(f: UseFilter) -> list[ColumnElement[bool]]:
    conditions = [
        *_in(UseRow.connection_id, f.connection_ids),
        *_in(UseRow.kind, f.kinds),
        *_in(UseRow.status, f.statuses),
    ]
    if f.consumer_ids is not None:
        conditions.append(
            select(ConnectionRow.id)
            .where(
                ConnectionRow.id == UseRow.connection_id,
                ConnectionRow.consumer_id.in_(f.consumer_ids),
            )
            .exists()
        )
    conditions += _search(f.search, UseRow.id, UseRow.name)
    return conditions


def sync_conditions(f: SyncFilter) -> list[ColumnElement[bool]]:
    return _search(f.search, SyncRow.id, SyncRow.name)


def sync_activation_conditions(f: SyncActivationFilter) -> list[ColumnElement[bool]]:
    conditions = [
        *_in(SyncActivationRow.consumer_id, f.consumer_ids),
        *_in(SyncActivationRow.sync_id, f.sync_ids),
    ]
    if f.connector_ids is not None:
        conditions.append(
            select(SyncRequirementRow.sync_id)
            .where(
                SyncRequirementRow.sync_id == SyncActivationRow.sync_id,
                SyncRequirementRow.connector_id.in_(f.connector_ids),
            )
            .exists()
        )
    if f.active is not None:
        active = derived.activation_is_active()
        conditions.append(active if f.active else ~active)
    if f.issue_codes is not None:
        code, _ = derived.activation_issue()
        conditions.append(code.in_([c.value for c in f.issue_codes]))
    if f.search and f.search.strip():
        # "search by name or consumer id": the consumer's name/external id, or the sync's name.
        consumer_match = (
            select(ConsumerRow.id)
            .where(
                ConsumerRow.id == SyncActivationRow.consumer_id,
                *_search(f.search, ConsumerRow.id, ConsumerRow.name, ConsumerRow.external_id),
            )
            .exists()
        )
        sync_match = (
            select(SyncRow.id)
            .where(
                SyncRow.id == SyncActivationRow.sync_id,
                *_search(f.search, SyncRow.id, SyncRow.name),
            )
            .exists()
        )
        conditions.append(or_(consumer_match, sync_match))
    return conditions


# --- lists and counts --------------------------------------------------------------------------


async def _count(session: AsyncSession, model: Any, conditions: list[ColumnElement[bool]]) -> int:
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
    return await _count(session, ConsumerRow, consumer_conditions(f))


async def list_connectors(
    session: AsyncSession, f: ConnectorFilter, page: PageRequest
) -> Page[domain.Connector]:
    keyset = _list_page(ConnectorRow, connector_conditions, f, page.after is not None)
    return await paginate_rows(session, keyset, page, records.connector)


async def count_connectors(session: AsyncSession, f: ConnectorFilter) -> int:
    return await _count(session, ConnectorRow, connector_conditions(f))


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
    return await _count(session, ConnectionRow, connection_conditions(f))


async def list_uses(session: AsyncSession, f: UseFilter, page: PageRequest) -> Page[domain.Use]:
    stmt = select(UseRow, UseKindRow.label).join(UseKindRow).where(*use_conditions(f))
    after_id = page.after_id
    if after_id is not None:
        stmt = stmt.where(UseRow.id > after_id)
    rows = (await session.execute(stmt.order_by(UseRow.id).limit(page.first + 1))).all()
    return page_of([records.use(row, label) for row, label in rows], page, lambda u: u.id)


async def count_uses(session: AsyncSession, f: UseFilter) -> int:
    return await _count(session, UseRow, use_conditions(f))


async def list_syncs(session: AsyncSession, f: SyncFilter, page: PageRequest) -> Page[domain.Sync]:
    stmt = select(SyncRow).where(*sync_conditions(f))
    return await paginate(session, stmt, SyncRow.id, page, records.sync)


async def count_syncs(session: AsyncSession, f: SyncFilter) -> int:
    return await _count(session, SyncRow, sync_conditions(f))


async def list_sync_activations(
    session: AsyncSession, f: SyncActivationFilter, page: PageRequest
) -> Page[domain.SyncActivation]:
    stmt = select(SyncActivationRow).where(*sync_activation_conditions(f))
    return await paginate(session, stmt, SyncActivationRow.id, page, records.sync_activation)


async def count_sync_activations(session: AsyncSession, f: SyncActivationFilter) -> int:
    return await _count(session, SyncActivationRow, sync_activation_conditions(f))


async def list_checks(
    session: AsyncSession, connection_id: int, page: PageRequest
) -> Page[domain.Check]:
    """Newest first: the history a viewer reads from the top."""
    stmt = select(CheckRow).where(CheckRow.connection_id == connection_id)
    after_id = page.after_id
    if after_id is not None:
        stmt = stmt.where(CheckRow.id < after_id)
    rows = (await session.scalars(stmt.order_by(CheckRow.id.desc()).limit(page.first + 1))).all()
    return page_of([records.check(row) for row in rows], page, lambda c: c.id)


# --- batch lookups (DataLoader shape: ids in, one statement, mapping out) -----------------------


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


# --- derived, in batches ----------------------------------------------------------------------


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


def _count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


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
            _count_where(failed),
            _count_where(and_(~failed, ConnectionRow.status == ConnectionStatus.UNKNOWN)),
            _count_where(failing_use),
        )
        .where(
            parent_column.in_(wanted),
            ConnectionRow.state != ConnectionState.DISABLED,
            *_in(ConnectionRow.consumer_id, consumer_ids),
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
            _count_where(derived.activation_is_active()),
        )
        .where(
            SyncActivationRow.sync_id.in_(wanted),
            *_in(SyncActivationRow.consumer_id, consumer_ids),
        )
        .group_by(SyncActivationRow.sync_id)
    )
    counts = {sync_id: (0, 0) for sync_id in wanted}
    counts.update({sync_id: (int(total), int(active)) for sync_id, total, active in rows})
    return counts


# --- nested lists: one statement for the pages of every parent ---------------------------------


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


async def uptime(session: AsyncSession, connection_id: int, window_seconds: int) -> float | None:
    """Share of successful checks in the last `window_seconds`; None when there were none."""
    since = datetime.now(UTC) - timedelta(seconds=window_seconds)
    total, successes = (
        await session.execute(
            select(func.count(), _count_where(CheckRow.success.is_(True))).where(
                CheckRow.connection_id == connection_id, CheckRow.checked_at >= since
            )
        )
    ).one()
    return int(successes) / int(total) if total else None


async def count_checks(session: AsyncSession, connection_id: int) -> int:
    return await _count(session, CheckRow, [CheckRow.connection_id == connection_id])


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


async def overview(session: AsyncSession, consumer_ids: ConsumerScope = None) -> domain.Overview:
    """Every figure of the seeds' overview page in four statements, whatever the data size.

    `consumer_ids` restricts every figure to those consumers (tenant-scoped tokens).
    """
    return _overview(
        await _consumer_counts(session, consumer_ids),
        await _connection_figures(session, consumer_ids),
        await _activations_per_mask(session, consumer_ids),
        await _active_activations_per_sync(session, consumer_ids),
    )


async def overview_concurrently(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    consumer_ids: ConsumerScope = None,
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
            connections = group.create_task(
                _on_own_session(sessions, _connection_figures, consumer_ids)
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
) -> domain.Overview:
    """`overview_concurrently` if one of the pool's overview slots is free now, otherwise
    `overview` on `session` alone.

    Never waits for a slot: a request waiting for one would hold its own connection, which the
    overviews holding the slots may need.
    """
    slots = _overview_slots(sessions)
    if not slots.acquire(blocking=False):
        return await overview(session, consumer_ids)
    try:
        return await overview_concurrently(session, sessions, consumer_ids)
    finally:
        slots.release()


def overview_slots_for(pool: Pool) -> int:
    """How many overviews may run concurrently on `pool`: all of them together can hold every
    connection they need at once (slots x OVERVIEW_CONNECTIONS <= capacity), so none ever waits
    for a connection another concurrent overview holds. Every other reader holds at most one
    connection and needs no second one to release it, so no wait can close a cycle.

    A pool with unbounded overflow counts as its kept size; a pool of any other kind (one
    shared connection, or none kept) gets no slot.
    """
    if not isinstance(pool, QueuePool):
        return 0
    return (pool.size() + max(pool._max_overflow, 0)) // OVERVIEW_CONNECTIONS


_slots_per_pool: weakref.WeakKeyDictionary[Pool, threading.BoundedSemaphore] = (
    weakref.WeakKeyDictionary()
)
_slots_per_pool_lock = threading.Lock()


def _overview_slots(sessions: async_sessionmaker[AsyncSession]) -> threading.BoundedSemaphore:
    # Per pool, not per engine: `engine.dispose()` replaces the pool. A threading semaphore
    # because a non-blocking acquire is all this needs, and it is not tied to one event loop.
    pool = sessions.kw["bind"].sync_engine.pool
    with _slots_per_pool_lock:
        slots = _slots_per_pool.get(pool)
        if slots is None:
            slots = _slots_per_pool[pool] = threading.BoundedSemaphore(overview_slots_for(pool))
        return slots


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
    session: AsyncSession, consumer_ids: ConsumerScope
) -> _ConnectionFigures:
    rows = await _execute_scoped(session, _connection_figures_statement, consumer_ids)
    by_state = dict.fromkeys(_STATES, 0)
    by_status = dict.fromkeys(_STATUSES, 0)
    connectors = []
    for connector_row, *figures in rows:
        counts = [int(n or 0) for n in figures]  # None: a connector without connections
        states = dict(zip(_STATES, counts, strict=False))
        for state, n in states.items():
            by_state[state] += n
        for status, n in zip(_STATUSES, counts[len(_STATES) :], strict=True):
            by_status[status] += n
        connectors.append(
            domain.ConnectorUsage(
                records.connector(connector_row),
                states[ConnectionState.ACTIVE],
                states[ConnectionState.PENDING],
                states[ConnectionState.FAILED],
            )
        )
    return _ConnectionFigures(tuple(connectors), by_state, by_status)


@functools.cache
def _connection_figures_statement(scoped: bool) -> Select[Any]:
    """Each connector with its connections counted per state, then per status (DISABLED ones
    left out of those).

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
    return (
        select(ConnectorRow, *list(per_connector.c)[1:])
        .outerjoin(per_connector, per_connector.c.connector_id == ConnectorRow.id)
        .order_by(ConnectorRow.name, ConnectorRow.id)
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
    )


def _funnel_entry(
    step: domain.SyncStep, activations_per_mask: dict[int, int]
) -> domain.StepFunnelEntry:
    """Complete and incomplete activations at `step`, from counts per completion bitmask."""
    bit = step_bit(step)
    complete = sum(n for mask, n in activations_per_mask.items() if mask & bit)
    return domain.StepFunnelEntry(step, complete, sum(activations_per_mask.values()) - complete)
