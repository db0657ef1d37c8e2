"""`healthgraph export`: the database written back as a catalog that `apply` accepts unchanged.

Credentials appear only as the reference they were applied from, never as a secret.
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from store import library
from store.catalog import StoredCatalog, StoredConnection, StoredConnector, load_catalog
from store.domain import Direction, Mute, MuteScope
from store.validation import DEFAULT_CHECK_INTERVAL_SECONDS, DEFAULT_FAILURE_THRESHOLD


async def export_catalog(session: AsyncSession) -> dict[str, Any]:
    """The whole catalog as plain data, ordered the way it was created."""
    return catalog_document(await load_catalog(session))


def catalog_document(catalog: StoredCatalog) -> dict[str, Any]:
    """`catalog` in the shape of a catalog file."""
    return {
        "use_kinds": [{"kind": k.kind, "label": k.label} for k in catalog.use_kinds],
        "connectors": [_connector(c) for c in catalog.connectors],
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
        **_alerting(catalog),
    }


def _alerting(catalog: StoredCatalog) -> dict[str, Any]:
    """`webhooks` and `maintenance`, when there are any (older files had neither)."""
    out: dict[str, Any] = {}
    if catalog.webhooks:
        out["webhooks"] = [
            {
                "url": endpoint.url,
                **({"events": [e.value for e in endpoint.events]} if endpoint.events else {}),
                **({"description": endpoint.description} if endpoint.description else {}),
                **(endpoint.secret_ref or {}),
            }
            for endpoint in catalog.webhooks
        ]
    if catalog.maintenance:
        out["maintenance"] = [_window(catalog, window) for window in catalog.maintenance]
    return out


def _window(catalog: StoredCatalog, window: Mute) -> dict[str, Any]:
    target: dict[str, Any]
    if window.scope is MuteScope.CONNECTOR:
        slug = next(
            c.connector.slug for c in catalog.connectors if c.connector.id == window.target_id
        )
        target = {"connector": slug}
    elif window.scope is MuteScope.CONSUMER:
        target = {
            "consumer": next(c.external_id for c in catalog.consumers if c.id == window.target_id)
        }
    else:
        consumer, connection = next(
            (c, k) for c in catalog.consumers for k in c.connections if k.id == window.target_id
        )
        target = {"connection": {"consumer": consumer.external_id, "name": connection.name}}
    return {
        **target,
        "from": window.starts_at.isoformat().replace("+00:00", "Z"),
        "until": window.ends_at.isoformat().replace("+00:00", "Z"),
        "reason": window.reason,
    }


def _connector(stored: StoredConnector) -> dict[str, Any]:
    connector = stored.connector
    out: dict[str, Any] = {"slug": connector.slug}
    if connector.template is not None:
        # Only what differs from the library's template: applying it again resolves the same.
        out["template"] = connector.template
        out.update(
            library.overrides_of(
                connector.template,
                name=connector.name,
                category=connector.category,
                heartbeat=connector.heartbeat,
                oauth2=connector.oauth2,
            )
        )
    else:
        out.update(name=connector.name, category=connector.category)
        if connector.heartbeat:
            out["heartbeat"] = connector.heartbeat
        if connector.oauth2:
            out["oauth2"] = dict(connector.oauth2)
    if connector.oauth2:
        out["oauth2"] = {
            **out.get("oauth2", {}),
            "client_id": connector.oauth2["client_id"],
            **(stored.client_secret_ref or {}),
        }
    return out


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
    if connection.params:
        out["params"] = connection.params
    if connection.credentials_ref:
        out["credentials"] = connection.credentials_ref
    out["uses"] = [{"kind": use.kind, "name": use.name} for use in connection.uses]
    return out


def dump_yaml(catalog: dict[str, Any]) -> str:
    return yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True, width=100)
