"""The store side of the heartbeat scheduler: claim due checks under a lease, write results.

Workers share nothing but the database. On PostgreSQL a claim is `SELECT ... FOR UPDATE SKIP
LOCKED` and a lease written in the same transaction, so concurrent workers never take the same
row, and a worker that dies leaves its claims to whoever comes after the lease. SQLite has one
writer and so one worker: every function here that reads and then writes takes SQLite's write
lock first, so what it read is still true when it writes.

Every function runs in the caller's transaction (`async with sessions.begin() as session`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from store.domain import (
    CheckOutcome,
    ConnectionState,
    ConnectionStatus,
    Direction,
    FailureReason,
    StatusChange,
)
from store.engine import begin_writing
from store.heartbeat import merge
from store.models import CheckRow, ConnectionRow, ConnectorRow, ConsumerRow
from store.outbox import record_connection_events

Jitter = Callable[[int], float]
"""Seconds to add to a connection's next due time, given its interval (spreads the load)."""

PROBED_STATES = (ConnectionState.ACTIVE, ConnectionState.FAILED)
"""A FAILED connection keeps being probed so it can recover; PENDING and DISABLED never are."""

MAX_WORKER_ID_LENGTH = 64
# pg_try_advisory_xact_lock key: one pruner at a time, so workers never delete the same rows
# in different orders (a deadlock) or twice.
_PRUNE_LOCK_KEY = 0x68670001

_CONNECTIONS = cast(Table, ConnectionRow.__table__)
_CHECKS = cast(Table, CheckRow.__table__)


@dataclass(frozen=True, slots=True)
class DueCheck:
    """One connection to check (claimed, or loaded for check-now), with all a probe needs."""

    connection_id: int
    external_id: str
    heartbeat: dict[str, Any]  # the connector's template with the connection's overrides
    credentials_ciphertext: bytes | None = field(repr=False)
    check_interval_seconds: int
    failure_threshold: int
    due_at: datetime | None
    lease_expires_at: datetime | None  # None when loaded without a claim (check-now)
    params: dict[str, str] = field(default_factory=dict)
    connector_slug: str = ""
    # The connector's OAuth2 app (no secret) and its client secret, for OAuth2 credentials.
    oauth2: dict[str, Any] | None = None
    client_secret_ciphertext: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class _Health:
    """What a check may change on a connection row, plus what decides how."""

    status: ConnectionStatus
    state: ConnectionState
    state_changed_at: datetime
    consecutive_failures: int
    failure_reason: FailureReason | None
    last_error: str | None
    last_checked_at: datetime | None
    last_success_at: datetime | None
    latency_ms: float | None
    tls_cert_expires_at: datetime | None
    failure_threshold: int
    check_interval_seconds: int

    @classmethod
    def from_row(cls, row: Row[Any]) -> _Health:
        return cls(**{name: getattr(row, name) for name in _HEALTH_FIELDS})

    def after(self, outcome: CheckOutcome) -> _Health:
        """The row after `outcome`: the threshold rule for status, AUTH and recovery for state."""
        state = self.state
        if outcome.success:
            if state == ConnectionState.FAILED:
                state = ConnectionState.ACTIVE
            status = ConnectionStatus.CONNECTED
            failures = 0
            last_success_at: datetime | None = outcome.checked_at
        else:
            # Only ACTIVE falls to FAILED: a connection disabled while its check ran stays so.
            if outcome.failure_reason == FailureReason.AUTH and state == ConnectionState.ACTIVE:
                state = ConnectionState.FAILED
            failures = self.consecutive_failures + 1
            status = (
                ConnectionStatus.CONNECTION_FAILURE
                if failures >= self.failure_threshold
                else self.status
            )
            last_success_at = self.last_success_at
        # One constructor call, not dataclasses.replace: this runs for every check written.
        return _Health(
            status=status,
            state=state,
            state_changed_at=outcome.checked_at if state != self.state else self.state_changed_at,
            consecutive_failures=failures,
            failure_reason=None if outcome.success else outcome.failure_reason,
            last_error=None if outcome.success else outcome.error,
            last_checked_at=outcome.checked_at,
            last_success_at=last_success_at,
            latency_ms=outcome.latency_ms,
            tls_cert_expires_at=outcome.tls_cert_expires_at or self.tls_cert_expires_at,
            failure_threshold=self.failure_threshold,
            check_interval_seconds=self.check_interval_seconds,
        )


_HEALTH_FIELDS = tuple(f.name for f in fields(_Health))
_HEALTH_COLUMNS = [getattr(ConnectionRow, name) for name in _HEALTH_FIELDS]
# What a check writes back (the rest of _Health only decides how).
_WRITTEN_FIELDS = tuple(
    name for name in _HEALTH_FIELDS if name not in ("failure_threshold", "check_interval_seconds")
)
# What a check writes when status and state stay as they were.
_STEADY_FIELDS = tuple(
    name for name in _WRITTEN_FIELDS if name not in ("status", "state", "state_changed_at")
)


NextCheck = Callable[[datetime | None, _Health, CheckOutcome], datetime]
"""The next due time from (the due time the check was claimed at, the row, the outcome)."""


def _on_cadence(jitter: Jitter) -> NextCheck:
    """Claimed checks: the due time they were claimed at plus the interval (plus jitter), so
    the time a check waited for its claim and its probe does not stretch every interval. A
    check later than half an interval (a worker stopped or overloaded) starts again from its
    own time, a whole interval on: an overloaded scheduler is never asked for more. (Checks
    late by up to a claim poll crossed that half at a 1 s interval: 3,000 connections were
    checked 2,650-2,800 times a second until the scheduler claimed ahead,
    SchedulerConfig.claim_ahead_seconds.)"""

    def next_due(due_at: datetime | None, health: _Health, outcome: CheckOutcome) -> datetime:
        interval = timedelta(seconds=health.check_interval_seconds)
        base = outcome.checked_at
        if due_at is not None and base - due_at <= interval / 2:
            base = due_at
        return base + interval + timedelta(seconds=jitter(health.check_interval_seconds))

    return next_due


def _from_the_check(jitter: Jitter) -> NextCheck:
    """Checks run out of turn (check-now): the check's time, plus the interval, plus jitter."""

    def next_due(_due_at: datetime | None, health: _Health, outcome: CheckOutcome) -> datetime:
        interval = health.check_interval_seconds
        return outcome.checked_at + timedelta(seconds=interval + jitter(interval))

    return next_due


def _outbound_due(now: datetime) -> ColumnElement[bool]:
    # Equality on direction and state, a range on next_check_at (ix_connections_due).
    return and_(
        ConnectionRow.direction == Direction.OUTBOUND,
        ConnectionRow.state.in_(PROBED_STATES),
        ConnectionRow.next_check_at <= now,
    )


def _locking(query: Select[Any], connection: AsyncConnection, *, skip_locked: bool) -> Select[Any]:
    if connection.dialect.name != "postgresql":
        return query
    return query.with_for_update(skip_locked=skip_locked, of=ConnectionRow)


def _check_worker_id(worker_id: str) -> None:
    if not worker_id or len(worker_id) > MAX_WORKER_ID_LENGTH:
        raise ValueError(f"worker_id must be 1..{MAX_WORKER_ID_LENGTH} characters")


def _unindexed(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """`+column`: SQLite's documented way to keep a term from choosing an index."""
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


def _claimable(now: datetime, due_by: datetime, dialect: str) -> ColumnElement[bool]:
    direction: ColumnElement[Any] = _CONNECTIONS.c.direction
    state: ColumnElement[Any] = _CONNECTIONS.c.state
    if dialect == "sqlite":
        # SQLite keeps no statistics: with the equality terms usable it picks
        # ix_connections_due's two state ranges and sorts every due row on each claim (93 ms at
        # 50k overdue, so a worker that falls behind falls further). Off the index, it walks
        # ix_connections_next_check_at in due order and LIMIT stops early (0.2 ms).
        direction, state = _unindexed(direction), _unindexed(state)
    return and_(
        direction == Direction.OUTBOUND,
        state.in_(PROBED_STATES),
        ConnectionRow.next_check_at <= due_by,
        or_(ConnectionRow.lease_expires_at.is_(None), ConnectionRow.lease_expires_at <= now),
    )


def _due_checks_query() -> Select[Any]:
    return (
        select(
            ConnectionRow.id,
            ConnectionRow.heartbeat,
            ConnectionRow.credentials_ciphertext,
            ConnectionRow.check_interval_seconds,
            ConnectionRow.failure_threshold,
            ConnectionRow.next_check_at,
            ConnectionRow.params,
            ConsumerRow.external_id,
            ConnectorRow.heartbeat.label("template"),
            ConnectorRow.slug.label("connector_slug"),
            ConnectorRow.oauth2,
            ConnectorRow.oauth2_client_secret_ciphertext,
        )
        .join_from(ConnectionRow, ConsumerRow, ConsumerRow.id == ConnectionRow.consumer_id)
        .join(ConnectorRow, ConnectorRow.id == ConnectionRow.connector_id)
    )


def _due_check(row: Row[Any], lease_expires_at: datetime | None) -> DueCheck:
    return DueCheck(
        connection_id=row.id,
        external_id=row.external_id,
        heartbeat=merge(row.template or {}, row.heartbeat or {}),
        credentials_ciphertext=row.credentials_ciphertext,
        check_interval_seconds=row.check_interval_seconds,
        failure_threshold=row.failure_threshold,
        due_at=row.next_check_at,
        lease_expires_at=lease_expires_at,
        params=dict(row.params or {}),
        connector_slug=row.connector_slug,
        oauth2=row.oauth2,
        client_secret_ciphertext=row.oauth2_client_secret_ciphertext,
    )


async def claim_due_connections(
    session: AsyncSession,
    *,
    worker_id: str,
    now: datetime,
    limit: int,
    lease_seconds: float,
    due_by: datetime | None = None,
) -> list[DueCheck]:
    """Claim up to `limit` due outbound connections for `lease_seconds`, oldest due first.

    Due: OUTBOUND, ACTIVE or FAILED, `next_check_at <= due_by` (default `now`), and no lease
    or an expired one. A scheduler claims a little ahead (`due_by` after `now`) and starts each
    check at its own due time. The claim holds once the caller's transaction commits.
    """
    _check_worker_id(worker_id)
    if limit <= 0:
        return []
    connection = await begin_writing(session)
    # Two steps: the ids from `connections` alone, then what probing them needs. A join in
    # the locking query lets stale statistics talk PostgreSQL into a hash join and a sort of
    # the whole backlog (224 ms per claim at 50k overdue, bench/PROBES.md); on one table the
    # due-time index answers in order whatever the estimates.
    ids_query = (
        select(ConnectionRow.id)
        .where(_claimable(now, due_by or now, connection.dialect.name))
        .order_by(ConnectionRow.next_check_at, ConnectionRow.id)
        .limit(limit)
    )
    # SKIP LOCKED: rows another worker is claiming right now are its, not ours to wait for.
    # Core, not the ORM session: these run for every batch, and the ORM layer costs CPU.
    ids = list((await connection.scalars(_locking(ids_query, connection, skip_locked=True))).all())
    if not ids:
        return []
    lease_expires_at = now + timedelta(seconds=lease_seconds)
    await connection.execute(
        update(_CONNECTIONS)
        .where(_CONNECTIONS.c.id.in_(ids))
        .values(lease_expires_at=lease_expires_at, claimed_by=worker_id)
    )
    rows = (await connection.execute(_due_checks_query().where(ConnectionRow.id.in_(ids)))).all()
    order = {connection_id: position for position, connection_id in enumerate(ids)}
    return sorted(
        (_due_check(row, lease_expires_at) for row in rows),
        key=lambda due: order[due.connection_id],
    )


async def release_claims(
    session: AsyncSession, *, worker_id: str, connection_ids: Sequence[int]
) -> int:
    """Give back claims this worker will not finish (it is stopping), so nobody waits the lease."""
    if not connection_ids:
        return 0
    result = await (await session.connection()).execute(
        update(_CONNECTIONS)
        .where(_CONNECTIONS.c.id.in_(list(connection_ids)), _CONNECTIONS.c.claimed_by == worker_id)
        .values(lease_expires_at=None, claimed_by=None)
    )
    return int(result.rowcount)


async def release_stale_claims(session: AsyncSession) -> int:
    """Clear every claim (SQLite at worker start: the worker lock proves their holder is gone,
    so its checks need not wait out the lease)."""
    result = await (await session.connection()).execute(
        update(_CONNECTIONS)
        .where(_CONNECTIONS.c.claimed_by.is_not(None))
        .values(lease_expires_at=None, claimed_by=None)
    )
    return int(result.rowcount)


async def load_due_check(session: AsyncSession, connection_id: int) -> DueCheck | None:
    """What probing `connection_id` needs, without claiming it (check-now from the API)."""
    query = _due_checks_query().where(ConnectionRow.id == connection_id)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else _due_check(row, lease_expires_at=None)


async def record_outcomes(
    session: AsyncSession,
    *,
    worker_id: str,
    outcomes: Sequence[tuple[int, CheckOutcome]],
    jitter: Jitter,
) -> list[StatusChange]:
    """Write a batch of results this worker claimed; release the claims; return what changed.

    A connection no longer claimed by `worker_id` (its lease expired and another worker took
    it, or it was deleted) is skipped: that result is stale. Next due time: the check's time
    plus the interval plus `jitter(interval)`.
    """
    _check_worker_id(worker_id)
    if not outcomes:
        return []
    connection = await begin_writing(session)
    query = (
        select(ConnectionRow.id, ConnectionRow.next_check_at, *_HEALTH_COLUMNS)
        .where(
            ConnectionRow.id.in_({connection_id for connection_id, _ in outcomes}),
            ConnectionRow.claimed_by == worker_id,
        )
        # Rows locked in id order: two writers cannot each hold a row the other waits for.
        .order_by(ConnectionRow.id)
    )
    rows = (await connection.execute(_locking(query, connection, skip_locked=False))).all()
    return await _write(
        connection,
        rows,
        outcomes,
        next_check=_on_cadence(jitter),
        owner=worker_id,
    )


async def record_unclaimed_outcomes(
    session: AsyncSession, *, outcomes: Sequence[tuple[int, CheckOutcome]], jitter: Jitter
) -> list[StatusChange]:
    """Write results of checks no worker claimed (check-now from the API), same rules.

    Leaves any worker's claim in place; that worker's result is written too when it comes.
    """
    if not outcomes:
        return []
    connection = await begin_writing(session)
    query = (
        select(ConnectionRow.id, *_HEALTH_COLUMNS)
        .where(ConnectionRow.id.in_({connection_id for connection_id, _ in outcomes}))
        .order_by(ConnectionRow.id)
    )
    rows = (await connection.execute(_locking(query, connection, skip_locked=False))).all()
    return await _write(
        connection,
        rows,
        outcomes,
        next_check=_from_the_check(jitter),
        owner=None,
    )


async def mark_missed_heartbeats(
    session: AsyncSession, *, now: datetime, limit: int
) -> list[StatusChange]:
    """Count a MISSED_HEARTBEAT failure for each ACTIVE inbound connection past its deadline.

    The deadline (`next_check_at`) moves to `now` plus the interval, so a silent connection
    fails once per interval, and `failure_threshold` applies as for probes.
    """
    if limit <= 0:
        return []
    connection = await begin_writing(session)
    query = (
        select(ConnectionRow.id, ConnectionRow.next_check_at, *_HEALTH_COLUMNS)
        .where(
            ConnectionRow.direction == Direction.INBOUND,
            ConnectionRow.state == ConnectionState.ACTIVE,
            ConnectionRow.next_check_at <= now,
        )
        .order_by(ConnectionRow.next_check_at, ConnectionRow.id)
        .limit(limit)
    )
    # SKIP LOCKED: another worker sweeping at the same moment takes the other rows.
    rows = (await connection.execute(_locking(query, connection, skip_locked=True))).all()
    outcomes = [
        (
            row.id,
            CheckOutcome(
                success=False,
                checked_at=now,
                failure_reason=FailureReason.MISSED_HEARTBEAT,
                error=f"no heartbeat received within {row.check_interval_seconds} s "
                f"(due by {row.next_check_at:%Y-%m-%d %H:%M:%S} UTC)",
            ),
        )
        for row in rows
    ]
    return await _write(
        connection,
        rows,
        outcomes,
        next_check=lambda _due, health, _: now + timedelta(seconds=health.check_interval_seconds),
        owner=None,
    )


async def _write(
    connection: AsyncConnection,
    rows: Sequence[Row[Any]],
    outcomes: Sequence[tuple[int, CheckOutcome]],
    *,
    next_check: NextCheck,
    owner: str | None,
) -> list[StatusChange]:
    """Apply `outcomes` to the locked `rows`: one executemany UPDATE and one INSERT of history.

    Outcomes for connections not in `rows` are dropped. Several outcomes for one connection
    apply in time order, each a line of history.
    """
    before = {row.id: _Health.from_row(row) for row in rows}
    due_at = {row.id: getattr(row, "next_check_at", None) for row in rows}
    after = dict(before)
    last: dict[int, CheckOutcome] = {}
    history: list[dict[str, Any]] = []
    for connection_id, outcome in sorted(outcomes, key=lambda item: item[1].checked_at):
        if connection_id not in after:
            continue
        after[connection_id] = after[connection_id].after(outcome)
        last[connection_id] = outcome
        history.append(
            {
                "connection_id": connection_id,
                "checked_at": outcome.checked_at,
                "success": outcome.success,
                "failure_reason": outcome.failure_reason,
                "latency_ms": outcome.latency_ms,
                "http_status": outcome.http_status,
                "error": outcome.error,
            }
        )
    if not last:
        return []
    changed = [
        connection_id
        for connection_id in sorted(last)
        if (before[connection_id].status, before[connection_id].state)
        != (after[connection_id].status, after[connection_id].state)
    ]
    steady = sorted(last.keys() - set(changed))
    # Most checks change neither status nor state. Leaving those columns out of the SET list
    # spares the indexes on them (SQLite rewrites an index whose column is SET, equal or not):
    # a third less work per row written.
    for ids, fields_ in ((changed, _WRITTEN_FIELDS), (steady, _STEADY_FIELDS)):
        if not ids:
            continue
        await connection.execute(
            _update_statement(fields_, owner),
            [
                {
                    "b_id": connection_id,
                    "b_next_check_at": next_check(
                        due_at[connection_id], after[connection_id], last[connection_id]
                    ),
                    **{f"b_{name}": getattr(after[connection_id], name) for name in fields_},
                }
                for connection_id in ids
            ],
        )
    await connection.execute(insert(_CHECKS), history)
    changes = [
        StatusChange(
            connection_id=connection_id,
            old_status=before[connection_id].status,
            new_status=after[connection_id].status,
            old_state=before[connection_id].state,
            new_state=after[connection_id].state,
        )
        for connection_id in changed
    ]
    if changes:
        # In this transaction: the event is stored exactly when the change is.
        await record_connection_events(
            connection, changes, max(last[change.connection_id].checked_at for change in changes)
        )
    return changes


def _update_statement(fields_: Sequence[str], owner: str | None) -> Update:
    values: dict[str, Any] = {name: bindparam(f"b_{name}") for name in fields_}
    values["next_check_at"] = bindparam("b_next_check_at")
    statement = update(_CONNECTIONS).where(_CONNECTIONS.c.id == bindparam("b_id")).values(values)
    if owner is not None:
        statement = statement.where(_CONNECTIONS.c.claimed_by == owner).values(
            lease_expires_at=None, claimed_by=None
        )
    return statement


async def prune_checks(session: AsyncSession, *, older_than: datetime, keep_latest: int) -> int:
    """Delete history older than `older_than`, keeping the newest `keep_latest` per connection.

    One statement: for each connection that has old rows, the time of its `keep_latest`-th
    newest check (an index walk on (connection_id, checked_at)) bounds what may go. On
    PostgreSQL one pruner runs at a time; the others return 0 at once.
    """
    if keep_latest < 0:
        raise ValueError("keep_latest must be >= 0")
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        locked = await connection.scalar(select(func.pg_try_advisory_xact_lock(_PRUNE_LOCK_KEY)))
        if not locked:
            return 0
    checks = _CHECKS
    old = checks.c.checked_at < older_than
    if keep_latest == 0:
        result = await connection.execute(delete(checks).where(old))
        return int(result.rowcount)
    # Derived tables, not CTEs: pysqlite reports no rowcount for a statement led by WITH.
    owners = select(checks.c.connection_id).where(old).distinct().subquery("owners")
    kept = checks.alias("kept")
    keep_from = (
        select(kept.c.checked_at)
        .where(kept.c.connection_id == owners.c.connection_id)
        .order_by(kept.c.checked_at.desc())
        .offset(keep_latest - 1)
        .limit(1)
        .scalar_subquery()
    )
    # NULL when a connection has fewer than keep_latest checks: nothing of it goes.
    cutoffs = select(owners.c.connection_id, keep_from.label("keep_from")).subquery("cutoffs")
    doomed = (
        select(checks.c.id)
        .join(cutoffs, cutoffs.c.connection_id == checks.c.connection_id)
        .where(old, checks.c.checked_at < cutoffs.c.keep_from)
    )
    result = await connection.execute(delete(checks).where(checks.c.id.in_(doomed)))
    return int(result.rowcount)


async def scheduler_lag(session: AsyncSession, now: datetime) -> tuple[int, float]:
    """(connections due and not yet checked, seconds the oldest of them is overdue)."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(ConnectionRow.next_check_at)).where(_outbound_due(now))
        )
    ).one()
    if not count or oldest is None:
        return 0, 0.0
    return int(count), max(0.0, (now - oldest).total_seconds())
