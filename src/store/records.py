"""Row → domain record conversions, the one place that knows both shapes.

Each takes an ORM row or a Core row of the same table (`columns(...)`): the hot read paths
select columns, which skips the ORM's identity map and instance state per row.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy import Row
from sqlalchemy.sql.elements import KeyedColumnElement

from store import domain
from store.models import (
    CheckRow,
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncRow,
    UseRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)


def columns(model: Any) -> tuple[KeyedColumnElement[Any], ...]:
    """The columns `model`'s record reads, to select Core rows the functions below accept."""
    if model is ConnectionRow:
        return _CONNECTION_COLUMNS
    if model is ConnectorRow:
        return _CONNECTOR_COLUMNS
    if model is UseRow:
        return _USE_COLUMNS
    return tuple(model.__table__.c)


# Fields computed from a ciphertext: whether it is there, never what it holds.
_SECRET_PRESENT = {
    (ConnectionRow, "has_credentials"): ConnectionRow.credentials_ciphertext,
    (ConnectorRow, "has_client_secret"): ConnectorRow.oauth2_client_secret_ciphertext,
}


def _record_column(model: Any, name: str, label: str | None = None) -> KeyedColumnElement[Any]:
    secret = _SECRET_PRESENT.get((model, name))
    if secret is not None:
        return secret.is_not(None).label(label or name)
    column: KeyedColumnElement[Any] = model.__table__.c[name]
    return column.label(label) if label else column


# A connection's record, column for field in order, so that a row is its arguments
# (`connection_of_columns`): a page reads 20 values a row, and a Row's attributes cost four
# times its items. Scheduling columns are left out, and the ciphertext is only tested.
_CONNECTION_COLUMNS: tuple[KeyedColumnElement[Any], ...] = tuple(
    _record_column(ConnectionRow, field.name) for field in fields(domain.Connection)
)
_CONNECTOR_COLUMNS: tuple[KeyedColumnElement[Any], ...] = tuple(
    _record_column(ConnectorRow, field.name) for field in fields(domain.Connector)
)


def connection_of_columns(row: Row[Any]) -> domain.Connection:
    """The record of a row selecting `columns(ConnectionRow)`."""
    return domain.Connection(*row)  # type: ignore[call-arg]  # one column per field


# A use's record but its kind's label, column for field in order: a row of these and the
# label is its arguments (`use_of_columns`).
_USE_COLUMNS: tuple[KeyedColumnElement[Any], ...] = tuple(
    UseRow.__table__.c[field.name] for field in fields(domain.Use) if field.name != "kind_label"
)


def use_of_columns(row: Row[Any]) -> domain.Use:
    """The record of a row selecting `columns(UseRow)` then the label of the use's kind."""
    return domain.Use(*row)  # type: ignore[call-arg]  # one column per field


def _joined_columns(model: Any, record_type: Any) -> tuple[KeyedColumnElement[Any], ...]:
    # Labelled: beside a connection's own columns, `id` or `name` would be ambiguous.
    table = model.__table__
    return tuple(
        _record_column(model, field.name, f"{table.name}__{field.name}")
        for field in fields(record_type)
    )


# A connection, then its consumer, then its connector, column for field in order: one row of
# a page of connections with the records at both of its ends (`connection_with_ends`).
_JOINED_CONSUMER_COLUMNS = _joined_columns(ConsumerRow, domain.Consumer)
_JOINED_CONNECTOR_COLUMNS = _joined_columns(ConnectorRow, domain.Connector)
CONNECTION_WITH_ENDS_COLUMNS: tuple[KeyedColumnElement[Any], ...] = (
    *_CONNECTION_COLUMNS,
    *_JOINED_CONSUMER_COLUMNS,
    *_JOINED_CONNECTOR_COLUMNS,
)
_CONSUMER_START = len(_CONNECTION_COLUMNS)
_CONNECTOR_START = _CONSUMER_START + len(_JOINED_CONSUMER_COLUMNS)


def connection_with_ends(
    row: Row[Any],
) -> tuple[domain.Connection, domain.Consumer, domain.Connector]:
    """The records of a row selecting `CONNECTION_WITH_ENDS_COLUMNS` (one column per field)."""
    return (
        domain.Connection(*row[:_CONSUMER_START]),
        domain.Consumer(*row[_CONSUMER_START:_CONNECTOR_START]),
        domain.Connector(*row[_CONNECTOR_START:]),
    )


def consumer(row: ConsumerRow | Row[Any]) -> domain.Consumer:
    return domain.Consumer(
        id=row.id,
        external_id=row.external_id,
        name=row.name,
        email=row.email,
        created_at=row.created_at,
    )


def connector(row: ConnectorRow | Row[Any]) -> domain.Connector:
    """The record of an ORM row, or of a Core row selecting `columns(ConnectorRow)`."""
    if isinstance(row, ConnectorRow):
        has_client_secret = row.oauth2_client_secret_ciphertext is not None
    else:
        has_client_secret = row.has_client_secret
    return domain.Connector(
        id=row.id,
        slug=row.slug,
        name=row.name,
        category=row.category,
        heartbeat=row.heartbeat,
        template=row.template,
        oauth2=row.oauth2,
        has_client_secret=bool(has_client_secret),
    )


def connection(row: ConnectionRow | Row[Any]) -> domain.Connection:
    return domain.Connection(
        id=row.id,
        consumer_id=row.consumer_id,
        connector_id=row.connector_id,
        name=row.name,
        direction=row.direction,
        state=row.state,
        status=row.status,
        last_checked_at=row.last_checked_at,
        last_success_at=row.last_success_at,
        failure_reason=row.failure_reason,
        last_error=row.last_error,
        latency_ms=row.latency_ms,
        consecutive_failures=row.consecutive_failures,
        check_interval_seconds=row.check_interval_seconds,
        failure_threshold=row.failure_threshold,
        next_check_at=row.next_check_at,
        state_changed_at=row.state_changed_at,
        heartbeat=row.heartbeat,
        has_credentials=row.has_credentials,
        created_at=row.created_at,
        params=row.params,
    )


def use(row: UseRow | Row[Any], kind_label: str) -> domain.Use:
    return domain.Use(
        id=row.id,
        connection_id=row.connection_id,
        kind=row.kind,
        kind_label=kind_label,
        name=row.name,
        status=row.status,
        last_run_at=row.last_run_at,
        last_error=row.last_error,
    )


def sync(row: SyncRow) -> domain.Sync:
    return domain.Sync(id=row.id, name=row.name)


def sync_activation(row: SyncActivationRow) -> domain.SyncActivation:
    by_step = {step.step: step for step in row.steps}
    steps = tuple(
        domain.StepState(
            step=step,
            complete=by_step[step].complete if step in by_step else False,
            detail=by_step[step].detail if step in by_step else None,
        )
        for step in domain.SYNC_STEPS
    )
    return domain.SyncActivation(
        id=row.id,
        sync_id=row.sync_id,
        consumer_id=row.consumer_id,
        steps=steps,
        updated_at=row.updated_at,
    )


def check(row: CheckRow) -> domain.Check:
    return domain.Check(
        id=row.id,
        connection_id=row.connection_id,
        checked_at=row.checked_at,
        success=row.success,
        failure_reason=row.failure_reason,
        latency_ms=row.latency_ms,
        http_status=row.http_status,
        error=row.error,
    )


def webhook_endpoint(row: WebhookEndpointRow | Row[Any]) -> domain.WebhookEndpoint:
    return domain.WebhookEndpoint(
        id=row.id,
        url=row.url,
        events=None
        if row.events is None
        else tuple(domain.WebhookEventType(kind) for kind in row.events),
        description=row.description,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        consumer_id=row.consumer_id,
        failing_since=row.failing_since,
        last_delivered_at=row.last_delivered_at,
        created_at=row.created_at,
        secret_ref=row.secret_ref,
    )


def webhook_delivery(row: WebhookDeliveryRow | Row[Any], event_type: str) -> domain.WebhookDelivery:
    return domain.WebhookDelivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=domain.WebhookEventType(event_type),
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_response_status=row.last_response_status,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )
