"""`healthgraph apply`: make the database match a catalog, in one transaction, idempotently.

Parse (`catalog.spec`), then diff the file against the stored catalog (`store.catalog`), then
call the store's commands for what differs: the same commands, and so the same rules, as every
other writer. A command that refuses an entry is reported with the entry's path and apply goes
on to the next, so one run lists every problem; then nothing is written (the caller's
transaction rolls back on the CatalogError).

Absent optional keys are defaults, except `state` and `credentials`: left out, they leave what
the service or the API set (a connection that failed to authenticate stays FAILED).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from healthgraph.catalog.applier import Applier, ApplyReport, RememberedPolicy, differences
from healthgraph.catalog.apply_alerting import (
    apply_maintenance,
    apply_webhooks,
    resolve_webhook_secrets,
)
from healthgraph.catalog.apply_consumers import apply_consumer
from healthgraph.catalog.apply_syncs import apply_sync
from healthgraph.catalog.entries import CatalogSpec, ConnectorSpec
from healthgraph.catalog.references import check_references, resolve_secret, resolve_value
from healthgraph.errors import CatalogError
from store import commands
from store.catalog import StoredCatalog, StoredConnector, load_catalog
from store.crypto import KeyRing
from store.outbound import OutboundPolicy

__all__ = ["ApplyReport", "apply_catalog", "needs_key_ring"]


def needs_key_ring(spec: CatalogSpec) -> bool:
    """Whether applying `spec` stores a secret (credentials, a client secret)."""
    return (
        bool(spec.webhooks)
        or any(c.client_secret_ref for c in spec.connectors)
        or any(c.credentials for consumer in spec.consumers for c in consumer.connections)
    )


async def apply_catalog(
    session: AsyncSession,
    spec: CatalogSpec,
    source: str,
    key_ring: KeyRing | None,
    *,
    outbound: OutboundPolicy,
    prune: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ApplyReport:
    """Apply `spec` inside the caller's transaction; CatalogError lists every problem, and
    then the caller must roll back (the commands that succeeded were flushed)."""
    stored = await load_catalog(session)
    # With --prune the file is the whole truth, so it may refer only to what it lists itself.
    check_references(
        spec,
        source,
        {} if prune else {c.connector.slug: c.connector.heartbeat for c in stored.connectors},
        () if prune else (k.kind for k in stored.use_kinds),
        () if prune else (c.external_id for c in stored.consumers),
    )
    secrets, client_secrets = _resolve_secrets(spec, source, key_ring, environ)
    webhook_secrets = resolve_webhook_secrets(spec, source, key_ring, environ)
    applier = Applier(
        session, source, RememberedPolicy(outbound), key_ring, secrets, client_secrets
    )
    applier.connector_ids = {c.connector.slug: c.connector.id for c in stored.connectors}
    applier.consumer_ids = {c.external_id: c.id for c in stored.consumers}
    await _use_kinds(applier, spec, stored)
    existing = {c.connector.slug: c for c in stored.connectors}
    for index, connector in enumerate(spec.connectors):
        await _connector(applier, f"connectors[{index}]", connector, existing.get(connector.slug))
    consumers = {c.external_id: c for c in stored.consumers}
    for index, consumer in enumerate(spec.consumers):
        await apply_consumer(applier, f"consumers[{index}]", consumer, consumers, prune)
    syncs = {s.name: s for s in stored.syncs}
    for index, sync in enumerate(spec.syncs):
        await apply_sync(applier, f"syncs[{index}]", sync, syncs, prune)
    await apply_webhooks(applier, spec, stored, webhook_secrets, prune)
    await apply_maintenance(applier, spec)
    if prune:
        await _prune(applier, spec, stored)
    if applier.problems:
        raise CatalogError(applier.problems)
    return applier.report


async def _use_kinds(applier: Applier, spec: CatalogSpec, stored: StoredCatalog) -> None:
    labels = {k.kind: k.label for k in stored.use_kinds}
    for index, kind in enumerate(spec.use_kinds):
        if labels.get(kind.kind) == kind.label:
            continue
        saved = await applier.run(
            f"use_kinds[{index}]",
            commands.upsert_use_kind(applier.session, kind=kind.kind, label=kind.label),
        )
        if saved is None:
            continue
        if kind.kind in labels:
            applier.report.update(f"use kind {kind.kind!r}", ["label"])
        else:
            applier.report.create(f"use kind {kind.kind!r}")


async def _connector(
    applier: Applier, path: str, connector: ConnectorSpec, current: StoredConnector | None
) -> None:
    label = f"connector {connector.slug!r}"
    if current is None:
        created = await applier.run(
            path,
            commands.create_connector(
                applier.session,
                slug=connector.slug,
                name=connector.name,
                category=connector.category,
                heartbeat=connector.heartbeat,
                template_name=connector.template,
                outbound=applier.outbound,
            ),
        )
        if created is None:
            return
        applier.connector_ids[created.slug] = created.id
        applier.report.create(label)
        await _oauth2(applier, path, created.id, connector)
        return
    stored = current.connector
    changed = differences(
        {
            "name": connector.name,
            "category": connector.category,
            "heartbeat": connector.heartbeat,
            "template_name": connector.template,
        },
        {
            "name": stored.name,
            "category": stored.category,
            "heartbeat": stored.heartbeat,
            "template_name": stored.template,
        },
    )
    fields = list(changed)
    if changed and not await applier.succeeds(
        path,
        commands.update_connector(applier.session, stored.id, outbound=applier.outbound, **changed),
    ):
        fields = []
    if await _oauth2(applier, path, stored.id, connector):
        fields.append("oauth2")
    applier.report.update(label, [field.removesuffix("_name") for field in fields])


async def _oauth2(applier: Applier, path: str, connector_id: int, spec: ConnectorSpec) -> bool:
    """The connector's OAuth2 app as the file says (none when it says none); whether it
    changed."""
    secret = applier.client_secrets.get(spec.slug) if spec.oauth2 else None
    changed = await applier.run(
        path,
        commands.set_connector_oauth2(
            applier.session,
            connector_id,
            app=spec.oauth2,
            client_secret=secret,
            client_secret_ref=spec.client_secret_ref,
            key_ring=applier.key_ring,
            outbound=applier.outbound,
        ),
    )
    return bool(changed)


async def _prune(applier: Applier, spec: CatalogSpec, stored: StoredCatalog) -> None:
    """Delete what the file no longer lists; children before the rows they point at."""
    session, report = applier.session, applier.report
    listed_syncs = {s.name for s in spec.syncs}
    for sync in stored.syncs:
        if sync.name not in listed_syncs and await applier.succeeds(
            "syncs", commands.delete_sync(session, sync.id)
        ):
            report.delete(f"sync {sync.name!r}")
    listed_consumers = {c.external_id for c in spec.consumers}
    for consumer in stored.consumers:
        if consumer.external_id not in listed_consumers and await applier.succeeds(
            "consumers", commands.delete_consumer(session, consumer.id)
        ):
            report.delete(f"consumer {consumer.external_id!r}")
    listed_connectors = {c.slug for c in spec.connectors}
    for stored_connector in stored.connectors:
        connector = stored_connector.connector
        if connector.slug not in listed_connectors and await applier.succeeds(
            "connectors", commands.delete_connector(session, connector.id)
        ):
            report.delete(f"connector {connector.slug!r}")
    listed_kinds = {k.kind for k in spec.use_kinds}
    for kind in stored.use_kinds:
        if kind.kind not in listed_kinds and await applier.succeeds(
            "use_kinds", commands.delete_use_kind(session, kind.kind)
        ):
            report.delete(f"use kind {kind.kind!r}")


def _resolve_secrets(
    spec: CatalogSpec,
    source: str,
    key_ring: KeyRing | None,
    environ: Mapping[str, str] | None,
) -> tuple[dict[tuple[str, str], dict[str, str]], dict[str, str]]:
    """Every secret the file references, read; CatalogError lists each one that cannot be."""
    secrets: dict[tuple[str, str], dict[str, str]] = {}
    client_secrets: dict[str, str] = {}
    problems: list[str] = []
    no_key = "no credential key is configured (HEALTHGRAPH_SECRET_KEYS)"
    for i, connector in enumerate(spec.connectors):
        if connector.client_secret_ref is None:
            continue
        path = f"{source}: connectors[{i}].oauth2"
        if key_ring is None:
            problems.append(f"{path}: {no_key}")
            continue
        try:
            client_secrets[connector.slug] = resolve_value(
                connector.client_secret_ref, "client_secret", path, environ
            )
        except CatalogError as exc:
            problems.extend(exc.problems)
    for i, consumer in enumerate(spec.consumers):
        for j, connection in enumerate(consumer.connections):
            if connection.credentials is None:
                continue
            path = f"{source}: consumers[{i}].connections[{j}].credentials"
            if key_ring is None:
                problems.append(f"{path}: {no_key}")
                continue
            try:
                secrets[(consumer.external_id, connection.name)] = resolve_secret(
                    connection.credentials, path, environ
                )
            except CatalogError as exc:
                problems.extend(exc.problems)
    if problems:
        raise CatalogError(problems)
    return secrets, client_secrets
