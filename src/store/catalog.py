"""The catalog as it is stored: what `healthgraph export` writes and `healthgraph apply` diffs
a file against. Read-only; changes go through `store.commands`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from store import domain, records
from store.domain import SYNC_STEPS, ConnectionState, Direction, SyncStep
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    MuteRow,
    SyncActivationRow,
    SyncRow,
    UseKindRow,
    WebhookEndpointRow,
)
from store.mutes import mute_of


@dataclass(frozen=True, slots=True)
class StoredUse:
    id: int
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class StoredConnection:
    id: int
    name: str
    connector_slug: str
    direction: Direction
    state: ConnectionState
    check_interval_seconds: int
    failure_threshold: int
    heartbeat: dict[str, Any]  # the connection's overrides only
    credentials_ref: dict[str, str] | None  # the catalog reference (env/file names), never a secret
    uses: tuple[StoredUse, ...]
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoredConnector:
    connector: domain.Connector
    client_secret_ref: dict[str, str] | None  # the catalog reference, never the secret


@dataclass(frozen=True, slots=True)
class StoredConsumer:
    id: int
    external_id: str
    name: str
    email: str | None
    connections: tuple[StoredConnection, ...]


@dataclass(frozen=True, slots=True)
class StoredActivation:
    id: int
    consumer_external_id: str
    steps: tuple[tuple[SyncStep, bool], ...]  # every step, in SYNC_STEPS order


@dataclass(frozen=True, slots=True)
class StoredSync:
    id: int
    name: str
    requires: tuple[str, ...]  # connector slugs, in order
    activations: tuple[StoredActivation, ...]


@dataclass(frozen=True, slots=True)
class StoredCatalog:
    use_kinds: tuple[domain.UseKind, ...]
    connectors: tuple[StoredConnector, ...]
    consumers: tuple[StoredConsumer, ...]
    syncs: tuple[StoredSync, ...]
    # The catalog's own: the endpoints it made (with a secret reference; those made over the
    # API are the API's), and its maintenance windows.
    webhooks: tuple[domain.WebhookEndpoint, ...] = ()
    maintenance: tuple[domain.Mute, ...] = ()


async def load_catalog(session: AsyncSession) -> StoredCatalog:
    """The whole catalog, each list in the order it was created (use kinds by name)."""
    connector_rows = list(await session.scalars(select(ConnectorRow).order_by(ConnectorRow.id)))
    slugs = {row.id: row.slug for row in connector_rows}
    consumer_rows = list(
        await session.scalars(
            select(ConsumerRow)
            .options(selectinload(ConsumerRow.connections).selectinload(ConnectionRow.uses))
            .order_by(ConsumerRow.id)
        )
    )
    external_ids = {row.id: row.external_id for row in consumer_rows}
    sync_rows = list(
        await session.scalars(
            select(SyncRow).options(selectinload(SyncRow.requirements)).order_by(SyncRow.id)
        )
    )
    activation_rows = list(
        await session.scalars(select(SyncActivationRow).order_by(SyncActivationRow.id))
    )
    use_kind_rows = await session.scalars(select(UseKindRow).order_by(UseKindRow.kind))
    endpoint_rows = await session.scalars(
        select(WebhookEndpointRow)
        .where(WebhookEndpointRow.consumer_id.is_(None), WebhookEndpointRow.secret_ref.is_not(None))
        .order_by(WebhookEndpointRow.id)
    )
    window_rows = await session.scalars(
        select(MuteRow).where(MuteRow.from_catalog.is_(True)).order_by(MuteRow.id)
    )
    return StoredCatalog(
        webhooks=tuple(records.webhook_endpoint(row) for row in endpoint_rows),
        maintenance=tuple(mute_of(row) for row in window_rows),
        use_kinds=tuple(domain.UseKind(kind=row.kind, label=row.label) for row in use_kind_rows),
        connectors=tuple(
            StoredConnector(
                records.connector(row),
                dict(row.oauth2_client_secret_ref) if row.oauth2_client_secret_ref else None,
            )
            for row in connector_rows
        ),
        consumers=tuple(
            StoredConsumer(
                id=row.id,
                external_id=row.external_id,
                name=row.name,
                email=row.email,
                connections=tuple(
                    _connection(connection, slugs)
                    for connection in sorted(row.connections, key=lambda c: c.id)
                ),
            )
            for row in consumer_rows
        ),
        syncs=tuple(
            StoredSync(
                id=row.id,
                name=row.name,
                requires=tuple(slugs[r.connector_id] for r in row.requirements),
                activations=tuple(
                    _activation(activation, external_ids)
                    for activation in activation_rows
                    if activation.sync_id == row.id
                ),
            )
            for row in sync_rows
        ),
    )


def _connection(row: ConnectionRow, slugs: dict[int, str]) -> StoredConnection:
    return StoredConnection(
        id=row.id,
        name=row.name,
        connector_slug=slugs[row.connector_id],
        direction=row.direction,
        state=row.state,
        check_interval_seconds=row.check_interval_seconds,
        failure_threshold=row.failure_threshold,
        heartbeat=dict(row.heartbeat or {}),
        credentials_ref=dict(row.credentials_ref) if row.credentials_ref else None,
        uses=tuple(
            StoredUse(id=use.id, kind=use.kind, name=use.name)
            for use in sorted(row.uses, key=lambda u: u.id)
        ),
        params=dict(row.params or {}),
    )


def _activation(row: SyncActivationRow, external_ids: dict[int, str]) -> StoredActivation:
    complete = {step_row.step: step_row.complete for step_row in row.steps}
    return StoredActivation(
        id=row.id,
        consumer_external_id=external_ids[row.consumer_id],
        steps=tuple((step, complete.get(step, False)) for step in SYNC_STEPS),
    )
