"""`healthgraph export`: the database written back as a catalog that `apply` accepts unchanged.

Credentials appear only as the reference they were applied from, never as a secret.
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from store.catalog import StoredCatalog, StoredConnection, load_catalog
from store.domain import Direction
from store.validation import DEFAULT_CHECK_INTERVAL_SECONDS, DEFAULT_FAILURE_THRESHOLD


async def export_catalog(session: AsyncSession) -> dict[str, Any]:
    """The whole catalog as plain data, ordered the way it was created."""
    return catalog_document(await load_catalog(session))


def catalog_document(catalog: StoredCatalog) -> dict[str, Any]:
    """`catalog` in the shape of a catalog file."""
    return {
        "use_kinds": [{"kind": k.kind, "label": k.label} for k in catalog.use_kinds],
        "connectors": [
            {
                "slug": c.slug,
                "name": c.name,
                "category": c.category,
                **({"heartbeat": c.heartbeat} if c.heartbeat else {}),
            }
            for c in catalog.connectors
        ],
        "consumers": [
            {
                "external_id": consumer.external_id,
                "name": consumer.name,
                **({"email": consumer.email} if consumer.email else {}),
                "connections": [_connection(c) for c in consumer.connections],
            }
            for consumer in catalog.consumers
        ],
        "syncs": [
            {
                "name": sync.name,
                "requires": list(sync.requires),
                "activations": [
                    {
                        "consumer": activation.consumer_external_id,
                        "steps": {
                            step.value.lower(): "complete" if complete else "incomplete"
                            for step, complete in activation.steps
                        },
                    }
                    for activation in sync.activations
                ],
            }
            for sync in catalog.syncs
        ],
    }


def _connection(connection: StoredConnection) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": connection.name,
        "connector": connection.connector_slug,
        "direction": connection.direction.value.lower(),
        "state": connection.state.value.lower(),
    }
    if connection.check_interval_seconds != DEFAULT_CHECK_INTERVAL_SECONDS:
        out["check_interval_seconds"] = connection.check_interval_seconds
    if connection.failure_threshold != DEFAULT_FAILURE_THRESHOLD:
        out["failure_threshold"] = connection.failure_threshold
    if connection.heartbeat and connection.direction is Direction.OUTBOUND:
        out["heartbeat"] = connection.heartbeat
    if connection.credentials_ref:
        out["credentials"] = connection.credentials_ref
    out["uses"] = [{"kind": use.kind, "name": use.name} for use in connection.uses]
    return out


def dump_yaml(catalog: dict[str, Any]) -> str:
    return yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True, width=100)
