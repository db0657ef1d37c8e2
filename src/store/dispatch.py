"""The dispatcher: from the outbox to deliveries, deciding whom to tell what.

One pass (`dispatch_events`) runs in one transaction, one dispatcher at a time (PostgreSQL: a
transaction-scoped advisory lock; SQLite: its one writer):

1. Connector outages are evaluated for the connectors with new connection events and those in
   outage: one starting tells `connector.outage_started`; one ending tells
   `connector.outage_ended`, then each of its connections whose condition changed meanwhile
   (failing and not told: `failed`; told failing and well again: `recovered`).
2. Mutes and maintenance windows that ended are settled the same way for what they silenced.
3. Each event is told to every enabled endpoint that takes its type (and, for an endpoint
   made with a consumer's token, is about that consumer), unless what it is about was muted,
   or it is a connection's `failed`/`recovered` while its connector is in outage, or it would
   repeat what subscribers were last told (`connections.announced_failing`). A `failed` or
   `recovered` waits up to `OutageRules.hold_seconds` first, so that an outage showing within
   one check interval is told once instead of once per customer; `auth_failed`, use events
   and outage events go at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from store.domain import (
    ConnectionState,
    ConnectionStatus,
    DeliveryState,
    MuteScope,
    WebhookEventType,
)
from store.engine import begin_writing
from store.models import (
    ConnectionRow,
    ConnectorOutageRow,
    ConnectorRow,
    MuteRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
)
from store.mutes import MuteWindows, mute_of, mute_windows, targets
from store.outages import ConnectorCount, OutageRules, connector_counts, open_outages, outage_of
from store.outbox import connection_snapshots, event_row

HELD = frozenset({WebhookEventType.CONNECTION_FAILED, WebhookEventType.CONNECTION_RECOVERED})
_FAILING_TOLD = frozenset(
    {WebhookEventType.CONNECTION_FAILED, WebhookEventType.CONNECTION_AUTH_FAILED}
)
CONNECTION_EVENTS = HELD | _FAILING_TOLD
_DISPATCH_LOCK_KEY = 0x68670002  # pg_try_advisory_xact_lock: one dispatcher at a time
_EVENTS = cast(Table, WebhookEventRow.__table__)
_DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)
_CONNECTIONS = cast(Table, ConnectionRow.__table__)
_OUTAGES = cast(Table, ConnectorOutageRow.__table__)
_MUTES = cast(Table, MuteRow.__table__)


@dataclass(slots=True)
class DispatchReport:
    told: int = 0  # events that got at least one delivery
    deliveries: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    outages_started: list[int] = field(default_factory=list)  # connector ids
    outages_ended: list[int] = field(default_factory=list)
    waiting: int = 0  # held events not yet due

    def suppress(self, reason: str) -> None:
        self.suppressed[reason] = self.suppressed.get(reason, 0) + 1


@dataclass(frozen=True, slots=True)
class _Endpoint:
    id: int
    events: frozenset[str] | None
    consumer_id: int | None

    def takes(self, event_type: str, consumer_id: int | None) -> bool:
        if self.events is not None and event_type not in self.events:
            return False
        return self.consumer_id is None or self.consumer_id == consumer_id


@dataclass(frozen=True, slots=True)
class _Event:
    id: int
    type: WebhookEventType
    occurred_at: datetime
    connection_id: int | None
    connector_id: int | None
    consumer_id: int | None
    data: dict[str, Any]

    @property
    def interval_seconds(self) -> float:
        interval = self.data.get("connection", {}).get("check_interval_seconds")
        return float(interval) if isinstance(interval, int | float) else 0.0


class _Pass:
    """One dispatch pass: what it read, and what it will write."""

    def __init__(
        self,
        connection: AsyncConnection,
        now: datetime,
        rules: OutageRules,
        endpoints: list[_Endpoint],
        mutes: MuteWindows,
    ) -> None:
        self.connection = connection
        self.now = now
        self.rules = rules
        self.endpoints = endpoints
        self.mutes = mutes
        self.report = DispatchReport()
        self.outages: set[int] = set()  # connectors in outage, after step 1
        self.announced: dict[int, bool] = {}  # connection id -> told failing, as updated
        self.dispatched: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.new_events: list[dict[str, Any]] = []  # made by this pass, told at once

    def fan_out(self, event_id: int, event_type: str, consumer_id: int | None) -> int:
        matching = [e for e in self.endpoints if e.takes(event_type, consumer_id)]
        for endpoint in matching:
            self.deliveries.append(
                {
                    "event_id": event_id,
                    "endpoint_id": endpoint.id,
                    "state": DeliveryState.PENDING,
                    "attempts": 0,
                    "next_attempt_at": self.now,
                    "created_at": self.now,
                }
            )
        self.report.deliveries += len(matching)
        if matching:
            self.report.told += 1
        return len(matching)


async def dispatch_events(
    session: AsyncSession, *, now: datetime, rules: OutageRules, limit: int = 1000
) -> DispatchReport:
    """One pass of the dispatcher (see the module docstring), in the caller's transaction."""
    connection = await session.connection()
    if not await _anything_to_do(connection, now):
        return DispatchReport()
    connection = await begin_writing(session)
    if connection.dialect.name == "postgresql":
        locked = await connection.scalar(select(func.pg_try_advisory_xact_lock(_DISPATCH_LOCK_KEY)))
        if not locked:
            return DispatchReport()
    events = await _undispatched(connection, limit)
    earliest = min((event.occurred_at for event in events), default=now)
    current = _Pass(
        connection,
        now,
        rules,
        await _endpoints(connection),
        await mute_windows(connection, earliest - timedelta(seconds=1), now),
    )
    await _evaluate_outages(current, {e.connector_id for e in events if e.connection_id})
    await _settle_mutes(current)
    await _tell(current, events)
    await _write(current)
    return current.report


async def _anything_to_do(connection: AsyncConnection, now: datetime) -> bool:
    """A read before the write lock: an idle pass takes no lock at all."""
    pending = await connection.scalar(
        select(_EVENTS.c.id).where(_EVENTS.c.dispatched_at.is_(None)).limit(1)
    )
    if pending is not None:
        return True
    in_outage = await connection.scalar(
        select(_OUTAGES.c.id).where(_OUTAGES.c.ended_at.is_(None)).limit(1)
    )
    if in_outage is not None:
        return True
    ended = await connection.scalar(
        select(MuteRow.id).where(MuteRow.ends_at <= now, MuteRow.settled_at.is_(None)).limit(1)
    )
    return ended is not None


async def _undispatched(connection: AsyncConnection, limit: int) -> list[_Event]:
    """The oldest undispatched events: those told at once, and those held, each up to `limit`
    (so a backlog of held failures never stands in the way of an `auth_failed`)."""
    held = [kind.value for kind in HELD]
    found: list[_Event] = []
    for condition in (_EVENTS.c.type.not_in(held), _EVENTS.c.type.in_(held)):
        rows = await connection.execute(
            select(_EVENTS)
            .where(_EVENTS.c.dispatched_at.is_(None), condition)
            .order_by(_EVENTS.c.id)
            .limit(limit)
        )
        found.extend(
            _Event(
                id=row.id,
                type=WebhookEventType(row.type),
                occurred_at=row.occurred_at,
                connection_id=row.connection_id,
                connector_id=row.connector_id,
                consumer_id=row.consumer_id,
                data=row.data,
            )
            for row in rows
        )
    return sorted(found, key=lambda event: event.id)


async def _endpoints(connection: AsyncConnection) -> list[_Endpoint]:
    rows = await connection.execute(
        select(
            WebhookEndpointRow.id, WebhookEndpointRow.events, WebhookEndpointRow.consumer_id
        ).where(WebhookEndpointRow.enabled.is_(True))
    )
    return [
        _Endpoint(
            id=row.id,
            events=None if row.events is None else frozenset(row.events),
            consumer_id=row.consumer_id,
        )
        for row in rows
    ]


async def _evaluate_outages(current: _Pass, connector_ids: Iterable[int | None]) -> None:
    connection = current.connection
    going_on = await open_outages(connection)
    candidates = {cid for cid in connector_ids if cid is not None} | going_on.keys()
    counts = await connector_counts(connection, candidates)
    for connector_id in sorted(candidates):
        count = counts.get(connector_id, ConnectorCount(total=0, failing=0, reasons={}))
        now_in = current.rules.in_outage(count)
        if connector_id in going_on and not now_in:
            await _end_outage(current, connector_id)
        elif now_in and connector_id not in going_on:
            await _start_outage(current, connector_id, count)
        elif now_in:
            current.outages.add(connector_id)
            await connection.execute(
                update(_OUTAGES)
                .where(_OUTAGES.c.connector_id == connector_id, _OUTAGES.c.ended_at.is_(None))
                .values(
                    failing_connections=count.failing,
                    total_connections=count.total,
                    reasons=count.reasons,
                )
            )


async def _connector_snapshot(connection: AsyncConnection, connector_id: int) -> dict[str, Any]:
    row = (
        await connection.execute(
            select(
                ConnectorRow.id, ConnectorRow.slug, ConnectorRow.name, ConnectorRow.category
            ).where(ConnectorRow.id == connector_id)
        )
    ).one()
    return {"id": row.id, "slug": row.slug, "name": row.name, "category": row.category}


async def _start_outage(current: _Pass, connector_id: int, count: ConnectorCount) -> None:
    connection = current.connection
    result = await connection.execute(
        insert(_OUTAGES).values(
            connector_id=connector_id,
            started_at=current.now,
            ended_at=None,
            failing_connections=count.failing,
            total_connections=count.total,
            reasons=count.reasons,
        )
    )
    outage_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    row = (await connection.execute(select(_OUTAGES).where(_OUTAGES.c.id == outage_id))).one()
    current.outages.add(connector_id)
    current.report.outages_started.append(connector_id)
    await _outage_event(
        current, WebhookEventType.CONNECTOR_OUTAGE_STARTED, connector_id, _outage_data(row)
    )


async def _end_outage(current: _Pass, connector_id: int) -> None:
    connection = current.connection
    await connection.execute(
        update(_OUTAGES)
        .where(_OUTAGES.c.connector_id == connector_id, _OUTAGES.c.ended_at.is_(None))
        .values(ended_at=current.now)
    )
    row = (
        await connection.execute(
            select(_OUTAGES)
            .where(_OUTAGES.c.connector_id == connector_id)
            .order_by(_OUTAGES.c.id.desc())
            .limit(1)
        )
    ).one()
    current.report.outages_ended.append(connector_id)
    await _outage_event(
        current, WebhookEventType.CONNECTOR_OUTAGE_ENDED, connector_id, _outage_data(row)
    )
    ids = await connection.scalars(
        select(_CONNECTIONS.c.id).where(_CONNECTIONS.c.connector_id == connector_id)
    )
    await _reconcile(current, list(ids))


def _outage_data(row: Any) -> dict[str, Any]:
    outage = outage_of(row)
    return {
        "started_at": _when(outage.started_at),
        "ended_at": _when(outage.ended_at),
        "failing_connections": outage.failing_connections,
        "total_connections": outage.total_connections,
        "reasons": {reason.reason.value: reason.connections for reason in outage.reasons},
    }


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


async def _outage_event(
    current: _Pass, kind: WebhookEventType, connector_id: int, outage: dict[str, Any]
) -> None:
    data = {
        "connector": await _connector_snapshot(current.connection, connector_id),
        "outage": outage,
    }
    muted = current.mutes.connector_muted(connector_id, current.now)
    await _add_event(
        current,
        {
            "type": kind.value,
            "occurred_at": current.now,
            "connection_id": None,
            "connector_id": connector_id,
            "consumer_id": None,
            "use_id": None,
            "data": data,
            "dispatched_at": current.now,
            "suppressed_reason": "muted" if muted else None,
        },
        told=not muted,
    )


async def _add_event(current: _Pass, row: dict[str, Any], *, told: bool) -> None:
    """An event this pass makes and dispatches at once (outages, settlements)."""
    result = await current.connection.execute(insert(_EVENTS).values(**row))
    event_id = int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0
    if told:
        current.fan_out(event_id, row["type"], row["consumer_id"])
    else:
        current.report.suppress(row["suppressed_reason"])


async def _settle_mutes(current: _Pass) -> None:
    """Mutes that ended: tell what changed while they held, for what they silenced."""
    connection = current.connection
    rows = list(
        await connection.execute(
            select(_MUTES).where(_MUTES.c.ends_at <= current.now, _MUTES.c.settled_at.is_(None))
        )
    )
    if not rows:
        return
    ended = targets(mute_of(row) for row in rows)
    conditions: list[ColumnElement[bool]] = []
    if MuteScope.CONNECTION in ended:
        conditions.append(_CONNECTIONS.c.id.in_(sorted(ended[MuteScope.CONNECTION])))
    if MuteScope.CONNECTOR in ended:
        conditions.append(_CONNECTIONS.c.connector_id.in_(sorted(ended[MuteScope.CONNECTOR])))
    if MuteScope.CONSUMER in ended:
        conditions.append(_CONNECTIONS.c.consumer_id.in_(sorted(ended[MuteScope.CONSUMER])))
    ids = await connection.scalars(select(_CONNECTIONS.c.id).where(or_(*conditions)))
    await _reconcile(current, list(ids))
    await connection.execute(
        update(_MUTES)
        .where(_MUTES.c.id.in_([row.id for row in rows]))
        .values(settled_at=current.now)
    )


async def _reconcile(current: _Pass, connection_ids: Sequence[int]) -> None:
    """Tell each connection's condition where it differs from what was last told (the end of
    an outage or a mute): skipped while it is still silenced."""
    if not connection_ids:
        return
    rows = await current.connection.execute(
        select(
            _CONNECTIONS.c.id,
            _CONNECTIONS.c.connector_id,
            _CONNECTIONS.c.consumer_id,
            _CONNECTIONS.c.state,
            _CONNECTIONS.c.status,
            _CONNECTIONS.c.announced_failing,
        ).where(_CONNECTIONS.c.id.in_(sorted(set(connection_ids))))
    )
    changed: list[tuple[int, WebhookEventType]] = []
    for row in rows:
        if row.state in (ConnectionState.PENDING, ConnectionState.DISABLED):
            continue
        if row.connector_id in current.outages or current.mutes.connection_muted(
            row.id, row.connector_id, row.consumer_id, current.now
        ):
            continue
        told = current.announced.get(row.id, row.announced_failing)
        if row.state == ConnectionState.FAILED and not told:
            changed.append((row.id, WebhookEventType.CONNECTION_AUTH_FAILED))
        elif row.status == ConnectionStatus.CONNECTION_FAILURE and not told:
            changed.append((row.id, WebhookEventType.CONNECTION_FAILED))
        elif (
            told
            and row.state == ConnectionState.ACTIVE
            and row.status != (ConnectionStatus.CONNECTION_FAILURE)
        ):
            changed.append((row.id, WebhookEventType.CONNECTION_RECOVERED))
    if not changed:
        return
    snapshots = await connection_snapshots(current.connection, (cid for cid, _ in changed))
    for connection_id, kind in changed:
        made = event_row(kind, current.now, snapshots[connection_id])
        made["dispatched_at"] = current.now
        current.announced[connection_id] = kind != WebhookEventType.CONNECTION_RECOVERED
        await _add_event(current, made, told=True)


async def _tell(current: _Pass, events: Sequence[_Event]) -> None:
    announced_ids = [e.connection_id for e in events if e.connection_id is not None]
    if announced_ids:
        rows = await current.connection.execute(
            select(_CONNECTIONS.c.id, _CONNECTIONS.c.announced_failing).where(
                _CONNECTIONS.c.id.in_(sorted(set(announced_ids)))
            )
        )
        stored = {row.id: bool(row.announced_failing) for row in rows}
    else:
        stored = {}
    for event in events:
        reason = _silenced(current, event)
        if reason is None and event.type in HELD:
            due_at = event.occurred_at + timedelta(
                seconds=min(current.rules.hold_seconds, event.interval_seconds)
            )
            if due_at > current.now:
                current.report.waiting += 1
                continue
        if reason is None and event.type in CONNECTION_EVENTS and event.connection_id in stored:
            reason = _repeats(current, event, stored)
        current.dispatched.append({"b_id": event.id, "b_reason": reason})
        if reason is not None:
            current.report.suppress(reason)
            continue
        current.fan_out(event.id, event.type.value, event.consumer_id)


def _silenced(current: _Pass, event: _Event) -> str | None:
    for at in (event.occurred_at, current.now):
        if current.mutes.connection_muted(
            event.connection_id, event.connector_id, event.consumer_id, at
        ):
            return "muted"
    if event.type in HELD and event.connector_id in current.outages:
        return "outage"
    return None


def _repeats(current: _Pass, event: _Event, stored: dict[int, bool]) -> str | None:
    """Whether the event repeats what subscribers were last told; records what they are told."""
    assert event.connection_id is not None
    told = current.announced.get(event.connection_id, stored[event.connection_id])
    if event.type == WebhookEventType.CONNECTION_FAILED and told:
        return "already_told"
    if event.type == WebhookEventType.CONNECTION_RECOVERED and not told:
        return "not_told"
    current.announced[event.connection_id] = event.type in _FAILING_TOLD
    return None


async def _write(current: _Pass) -> None:
    connection = current.connection
    if current.dispatched:
        await connection.execute(
            update(_EVENTS)
            .where(_EVENTS.c.id == bindparam("b_id"))
            .values(dispatched_at=current.now, suppressed_reason=bindparam("b_reason")),
            current.dispatched,
        )
    if current.announced:
        await connection.execute(
            update(_CONNECTIONS)
            .where(_CONNECTIONS.c.id == bindparam("b_id"))
            .values(announced_failing=bindparam("b_told")),
            [{"b_id": cid, "b_told": told} for cid, told in sorted(current.announced.items())],
        )
    if current.deliveries:
        await connection.execute(insert(_DELIVERIES), current.deliveries)
