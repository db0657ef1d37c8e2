"""`healthgraph export`: the database written back as a catalog that `apply` accepts unchanged.

Credentials appear only as the reference they were applied from, never as a secret.
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from store.commands import DEFAULT_CHECK_INTERVAL_SECONDS, DEFAULT_FAILURE_THRESHOLD
from store.domain import SYNC_STEPS, Direction
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncRow,
    UseKindRow,
)


async def export_catalog(session: AsyncSession) -> dict[str, Any]:
    """The whole catalog as plain data, ordered the way it was created."""
    connectors = list(await session.scalars(select(ConnectorRow).order_by(ConnectorRow.id)))
    slugs = {row.id: row.slug for row in connectors}
    consumers = list(
        await session.scalars(
            select(ConsumerRow)
            .options(selectinload(ConsumerRow.connections).selectinload(ConnectionRow.uses))
            .order_by(ConsumerRow.id)
        )
    )
    external_ids = {row.id: row.external_id for row in consumers}
    syncs = list(
        await session.scalars(
            select(SyncRow).options(selectinload(SyncRow.requirements)).order_by(SyncRow.id)
        )
    )
    activations = list(
        await session.scalars(select(SyncActivationRow).order_by(SyncActivationRow.id))
    )
    use_kinds = list(await session.scalars(select(UseKindRow).order_by(UseKindRow.kind)))

    return {
        "use_kinds": [{"kind": k.kind, "label": k.label} for k in use_kinds],
        "connectors": [
            {
                "slug": c.slug,
                "name": c.name,
                "category": c.category,
                **({"heartbeat": c.heartbeat} if c.heartbeat else {}),
            }
            for c in connectors
        ],
        "consumers": [
            {
                "external_id": consumer.external_id,
                "name": consumer.name,
                **({"email": consumer.email} if consumer.email else {}),
                "connections": [
                    _connection(connection, slugs)
                    for connection in sorted(consumer.connections, key=lambda c: c.id)
                ],
            }
            for consumer in consumers
        ],
        "syncs": [
            {
                "name": sync.name,
                "requires": [slugs[r.connector_id] for r in sync.requirements],
                "activations": [
                    {
                        "consumer": external_ids[a.consumer_id],
                        "steps": {
                            s.step.value.lower(): "complete" if s.complete else "incomplete"
                            for s in sorted(a.steps, key=lambda s: SYNC_STEPS.index(s.step))
                        },
                    }
                    for a in activations
                    if a.sync_id == sync.id
                ],
            }
            for sync in syncs
        ],
    }


def _connection(row: ConnectionRow, slugs: dict[int, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": row.name,
        "connector": slugs[row.connector_id],
        "direction": row.direction.value.lower(),
        "state": row.state.value.lower(),
    }
    if row.check_interval_seconds != DEFAULT_CHECK_INTERVAL_SECONDS:
        out["check_interval_seconds"] = row.check_interval_seconds
    if row.failure_threshold != DEFAULT_FAILURE_THRESHOLD:
        out["failure_threshold"] = row.failure_threshold
    if row.heartbeat and row.direction is Direction.OUTBOUND:
        out["heartbeat"] = row.heartbeat
    if row.credentials_ref:
        out["credentials"] = row.credentials_ref
    out["uses"] = [
        {"kind": use.kind, "name": use.name} for use in sorted(row.uses, key=lambda u: u.id)
    ]
    return out


def dump_yaml(catalog: dict[str, Any]) -> str:
    return yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True, width=100)
