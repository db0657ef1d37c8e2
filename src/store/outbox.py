"""The webhook outbox: what happened, written in the transaction of the change that caused it.

A crash after the commit loses nothing (the event is a row beside the change) and a rolled
back change tells nothing (its event went with it). Whom to tell is decided later, by the
dispatcher (store.dispatch): here only the transition and a snapshot of what it is about.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.domain import (
    ConnectionState,
    ConnectionStatus,
    StatusChange,
    UseStatus,
    WebhookEventType,
)
from store.models import ConnectionRow, ConnectorRow, ConsumerRow, UseRow, WebhookEventRow

_EVENTS = cast(Table, WebhookEventRow.__table__)


def connection_event(
    old_status: ConnectionStatus,
    new_status: ConnectionStatus,
    old_state: ConnectionState,
    new_state: ConnectionState,
) -> WebhookEventType | None:
    """The event a connection's transition is, if any.

    Falling to FAILED is `auth_failed` (the customer must reconnect), standing for `failed` when
    both happen in one check; a status that turns CONNECTION_FAILURE is `failed`; CONNECTED again
    after a failure, or ACTIVE again after FAILED, is `recovered`. A first check that succeeds,
    and lifecycle moves to PENDING or DISABLED, are no event.
    """
    if new_state == ConnectionState.FAILED and old_state != ConnectionState.FAILED:
        return WebhookEventType.CONNECTION_AUTH_FAILED
    if (
        new_status == ConnectionStatus.CONNECTION_FAILURE
        and old_status != ConnectionStatus.CONNECTION_FAILURE
    ):
        return WebhookEventType.CONNECTION_FAILED
    if new_status == ConnectionStatus.CONNECTED and (
        old_status == ConnectionStatus.CONNECTION_FAILURE
        or (old_state == ConnectionState.FAILED and new_state == ConnectionState.ACTIVE)
    ):
        return WebhookEventType.CONNECTION_RECOVERED
    return None


def use_event(old_status: UseStatus, new_status: UseStatus) -> WebhookEventType | None:
    if new_status == UseStatus.FAILED and old_status != UseStatus.FAILED:
        return WebhookEventType.USE_FAILED
    if new_status == UseStatus.HEALTHY and old_status == UseStatus.FAILED:
        return WebhookEventType.USE_RECOVERED
    return None


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


_SNAPSHOT_COLUMNS = (
    ConnectionRow.id,
    ConnectionRow.name,
    ConnectionRow.direction,
    ConnectionRow.state,
    ConnectionRow.status,
    ConnectionRow.failure_reason,
    ConnectionRow.last_error,
    ConnectionRow.last_checked_at,
    ConnectionRow.check_interval_seconds,
    ConnectionRow.connector_id,
    ConnectionRow.consumer_id,
    ConnectorRow.slug.label("connector_slug"),
    ConnectorRow.name.label("connector_name"),
    ConsumerRow.external_id,
    ConsumerRow.name.label("consumer_name"),
    ConsumerRow.email,
)


async def connection_snapshots(
    connection: AsyncConnection, connection_ids: Iterable[int]
) -> dict[int, dict[str, Any]]:
    """What an event about each connection carries: the connection as it is now in this
    transaction, its connector and its consumer."""
    ids = sorted(set(connection_ids))
    if not ids:
        return {}
    rows = await connection.execute(
        select(*_SNAPSHOT_COLUMNS)
        .join_from(ConnectionRow, ConnectorRow, ConnectorRow.id == ConnectionRow.connector_id)
        .join(ConsumerRow, ConsumerRow.id == ConnectionRow.consumer_id)
        .where(ConnectionRow.id.in_(ids))
    )
    return {
        row.id: {
            "connection": {
                "id": row.id,
                "name": row.name,
                "direction": str(row.direction),
                "state": str(row.state),
                "status": str(row.status),
                "failure_reason": None if row.failure_reason is None else str(row.failure_reason),
                "last_error": row.last_error,
                "last_checked_at": _when(row.last_checked_at),
                "check_interval_seconds": row.check_interval_seconds,
            },
            "connector": {
                "id": row.connector_id,
                "slug": row.connector_slug,
                "name": row.connector_name,
            },
            "consumer": {
                "id": row.consumer_id,
                "external_id": row.external_id,
                "name": row.consumer_name,
                "email": row.email,
            },
        }
        for row in rows
    }


async def record_connection_events(
    connection: AsyncConnection, changes: Sequence[StatusChange], at: datetime
) -> int:
    """Write the events of these transitions (those that are one); how many."""
    typed = [
        (change.connection_id, kind)
        for change in changes
        if (
            kind := connection_event(
                change.old_status, change.new_status, change.old_state, change.new_state
            )
        )
        is not None
    ]
    if not typed:
        return 0
    snapshots = await connection_snapshots(connection, (cid for cid, _ in typed))
    rows = [
        event_row(kind, at, snapshots[connection_id])
        for connection_id, kind in typed
        if connection_id in snapshots
    ]
    if rows:
        await connection.execute(insert(_EVENTS), rows)
    return len(rows)


async def record_use_event(
    connection: AsyncConnection, use: UseRow, old_status: UseStatus, at: datetime
) -> bool:
    """Write the event of a use's new status, if it is one; whether it was."""
    kind = use_event(old_status, use.status)
    if kind is None:
        return False
    snapshot = (await connection_snapshots(connection, [use.connection_id]))[use.connection_id]
    snapshot["use"] = {
        "id": use.id,
        "kind": use.kind,
        "name": use.name,
        "status": str(use.status),
        "last_error": use.last_error,
        "last_run_at": _when(use.last_run_at),
    }
    row = event_row(kind, at, snapshot)
    row["use_id"] = use.id
    await connection.execute(insert(_EVENTS), [row])
    return True


def event_row(kind: WebhookEventType, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The outbox row of an event about the connection in `data` (a connection snapshot)."""
    return {
        "type": kind.value,
        "occurred_at": at,
        "connection_id": data["connection"]["id"],
        "connector_id": data["connector"]["id"],
        "consumer_id": data["consumer"]["id"],
        "use_id": None,
        "data": data,
        "dispatched_at": None,
        "suppressed_reason": None,
    }
