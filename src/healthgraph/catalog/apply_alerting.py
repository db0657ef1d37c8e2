"""Applying the catalog's `webhooks` and `maintenance`: the same store commands as the API.

The catalog's endpoints are those no consumer's token made; they are told apart by URL. An
endpoint's secret is read from its reference and replaced only when it differs from the
stored one. Maintenance windows are made exactly what the file lists (a removed window that
holds now ends now, so what it silenced is told).
"""

from __future__ import annotations

from collections.abc import Mapping

from healthgraph.catalog.applier import Applier, differences
from healthgraph.catalog.entries import CatalogSpec, MaintenanceSpec, WebhookSpec
from healthgraph.catalog.references import resolve_value
from healthgraph.errors import CatalogError
from store import queries
from store.catalog import StoredCatalog
from store.commands.mutes import Window, set_maintenance_windows
from store.commands.webhooks import (
    create_webhook_endpoint,
    delete_webhook_endpoint,
    set_catalog_secret,
    update_webhook_endpoint,
)
from store.crypto import KeyRing
from store.domain import MuteScope, WebhookEndpoint


def resolve_webhook_secrets(
    spec: CatalogSpec, source: str, key_ring: KeyRing | None, environ: Mapping[str, str] | None
) -> dict[str, str]:
    """Each webhook's secret by URL; CatalogError names every one that cannot be read."""
    secrets: dict[str, str] = {}
    problems: list[str] = []
    for index, webhook in enumerate(spec.webhooks):
        if key_ring is None:
            problems.append(
                f"{source}: webhooks[{index}]: no credential key is configured "
                "(HEALTHGRAPH_SECRET_KEYS) to keep its secret"
            )
            continue
        try:
            secrets[webhook.url] = resolve_value(
                webhook.secret_ref, "secret", f"{source}: webhooks[{index}]", environ
            )
        except CatalogError as exc:
            problems.extend(exc.problems)
    if problems:
        raise CatalogError(problems)
    return secrets


async def apply_webhooks(
    applier: Applier,
    spec: CatalogSpec,
    stored: StoredCatalog,
    secrets: Mapping[str, str],
    prune: bool,
) -> None:
    existing = {endpoint.url: endpoint for endpoint in stored.webhooks}
    for index, webhook in enumerate(spec.webhooks):
        path = f"webhooks[{index}]"
        current = existing.get(webhook.url)
        if current is None:
            await _create(applier, path, webhook, secrets[webhook.url])
        else:
            await _update(applier, path, webhook, current, secrets[webhook.url])
    if prune:
        listed = {webhook.url for webhook in spec.webhooks}
        for endpoint in stored.webhooks:
            if endpoint.url not in listed and await applier.succeeds(
                "webhooks", delete_webhook_endpoint(applier.session, endpoint.id)
            ):
                applier.report.delete(f"webhook {endpoint.url!r}")


async def _create(applier: Applier, path: str, webhook: WebhookSpec, secret: str) -> None:
    assert applier.key_ring is not None  # checked with the other secrets
    created = await applier.run(
        path,
        create_webhook_endpoint(
            applier.session,
            url=webhook.url,
            events=webhook.events,
            description=webhook.description,
            consumer_id=None,
            outbound=applier.outbound,
            key_ring=applier.key_ring,
            secret=secret,
            secret_ref=dict(webhook.secret_ref),
        ),
    )
    if created is not None:
        applier.report.create(f"webhook {webhook.url!r}")


async def _update(
    applier: Applier, path: str, webhook: WebhookSpec, current: WebhookEndpoint, secret: str
) -> None:
    assert applier.key_ring is not None
    stored_events = None if current.events is None else tuple(e.value for e in current.events)
    changed = differences(
        {"events": webhook.events, "description": webhook.description},
        {"events": stored_events, "description": current.description},
    )
    fields = list(changed)
    if changed and not await applier.succeeds(
        path,
        update_webhook_endpoint(applier.session, current.id, outbound=applier.outbound, **changed),
    ):
        fields = []
    if await applier.run(
        path,
        set_catalog_secret(
            applier.session,
            current.id,
            secret=secret,
            secret_ref=dict(webhook.secret_ref),
            key_ring=applier.key_ring,
        ),
    ):
        fields.append("secret")
    applier.report.update(f"webhook {webhook.url!r}", fields)


async def apply_maintenance(applier: Applier, spec: CatalogSpec) -> None:
    """Resolve each window's target (created by this apply or stored) and set them all."""
    wanted = [(f"maintenance[{i}]", window) for i, window in enumerate(spec.maintenance)]
    pairs = [
        (applier.consumer_ids[w.target[0]], w.target[1])
        for _, w in wanted
        if w.scope is MuteScope.CONNECTION and w.target[0] in applier.consumer_ids
    ]
    connection_ids = await queries.connection_ids_by_name(applier.session, pairs)
    windows = []
    for path, window in wanted:
        target = _target_id(applier, window, connection_ids)
        if target is None:
            applier.problems.append(f"{applier.source}: {path}: {_missing(window)}")
            continue
        windows.append(
            Window(window.scope, target, window.starts_at, window.ends_at, window.reason)
        )
    if applier.problems:
        return
    counted = await applier.run("maintenance", set_maintenance_windows(applier.session, windows))
    if counted is None:
        return
    added, removed = counted
    if added or removed:
        applier.report.update("maintenance windows", [f"{added} added", f"{removed} removed"])


def _target_id(
    applier: Applier, window: MaintenanceSpec, connection_ids: Mapping[tuple[int, str], int]
) -> int | None:
    if window.scope is MuteScope.CONNECTOR:
        return applier.connector_ids.get(window.target[0])
    consumer_id = applier.consumer_ids.get(window.target[0])
    if window.scope is MuteScope.CONSUMER or consumer_id is None:
        return consumer_id
    return connection_ids.get((consumer_id, window.target[1]))


def _missing(window: MaintenanceSpec) -> str:
    if window.scope is MuteScope.CONNECTOR:
        return f"connector {window.target[0]!r} does not exist"
    if window.scope is MuteScope.CONSUMER:
        return f"consumer {window.target[0]!r} does not exist"
    return f"connection {window.target[0]}/{window.target[1]!r} does not exist"
