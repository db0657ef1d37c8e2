"""`healthgraph apply`: make the database match a catalog, in one transaction, idempotently.

Absent optional keys are defaults, except `state` and `credentials`: left out, they leave what
the service or the API set (a connection that failed to authenticate stays FAILED).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from healthgraph.catalog.spec import CatalogSpec, ConnectionSpec, check_references, resolve_secret
from healthgraph.errors import CatalogError
from store.commands import first_due
from store.crypto import KeyRing
from store.domain import ConnectionState, SyncStep
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncActivationStepRow,
    SyncRequirementRow,
    SyncRow,
    UseKindRow,
    UseRow,
    utcnow,
)


@dataclass
class ApplyReport:
    changes: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        if not self.changed:
            return "no changes"
        return f"{self.created} created, {self.updated} updated, {self.deleted} deleted"

    def create(self, what: str) -> None:
        self.created += 1
        self.changes.append(f"created {what}")

    def update(self, what: str, fields: list[str]) -> None:
        if fields:
            self.updated += 1
            self.changes.append(f"updated {what}: {', '.join(fields)}")

    def delete(self, what: str) -> None:
        self.deleted += 1
        self.changes.append(f"deleted {what}")


def _assign(row: Any, values: Mapping[str, Any]) -> list[str]:
    """Set the attributes that differ; return their names."""
    changed = []
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    return changed


async def apply_catalog(
    session: AsyncSession,
    spec: CatalogSpec,
    source: str,
    key_ring: KeyRing | None,
    *,
    prune: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ApplyReport:
    """Apply `spec` inside the caller's transaction; raise CatalogError before writing anything."""
    use_kinds = {row.kind: row for row in await session.scalars(select(UseKindRow))}
    connectors = {row.slug: row for row in await session.scalars(select(ConnectorRow))}
    consumers = {
        row.external_id: row
        for row in await session.scalars(
            select(ConsumerRow).options(
                selectinload(ConsumerRow.connections).selectinload(ConnectionRow.uses)
            )
        )
    }
    syncs = {
        row.name: row
        for row in await session.scalars(
            select(SyncRow).options(selectinload(SyncRow.requirements))
        )
    }
    # With --prune the file is the whole truth, so it may refer only to what it lists itself.
    check_references(
        spec,
        source,
        {} if prune else {slug: row.heartbeat for slug, row in connectors.items()},
        () if prune else use_kinds,
        () if prune else consumers,
    )
    secrets = _resolve_secrets(spec, source, key_ring, environ)

    report = ApplyReport()
    for kind in spec.use_kinds:
        kind_row = use_kinds.get(kind.kind)
        if kind_row is None:
            use_kinds[kind.kind] = UseKindRow(kind=kind.kind, label=kind.label)
            session.add(use_kinds[kind.kind])
            report.create(f"use kind {kind.kind!r}")
        else:
            report.update(f"use kind {kind.kind!r}", _assign(kind_row, {"label": kind.label}))

    for connector in spec.connectors:
        values = {
            "name": connector.name,
            "category": connector.category,
            "heartbeat": connector.heartbeat,
        }
        connector_row = connectors.get(connector.slug)
        if connector_row is None:
            connectors[connector.slug] = ConnectorRow(slug=connector.slug, **values)
            session.add(connectors[connector.slug])
            report.create(f"connector {connector.slug!r}")
        else:
            report.update(f"connector {connector.slug!r}", _assign(connector_row, values))
    await session.flush()

    for consumer in spec.consumers:
        consumer_values: dict[str, Any] = {"name": consumer.name, "email": consumer.email}
        row = consumers.get(consumer.external_id)
        if row is None:
            row = ConsumerRow(external_id=consumer.external_id, connections=[], **consumer_values)
            consumers[consumer.external_id] = row
            session.add(row)
            report.create(f"consumer {consumer.external_id!r}")
        else:
            report.update(f"consumer {consumer.external_id!r}", _assign(row, consumer_values))
        existing = {c.name: c for c in row.connections}
        for connection in consumer.connections:
            label = f"connection {consumer.external_id}/{connection.name!r}"
            connection_row = existing.get(connection.name)
            secret = secrets.get((consumer.external_id, connection.name))
            if connection_row is None:
                due = first_due(connection.direction, connection.check_interval_seconds, utcnow())
                connection_row = ConnectionRow(name=connection.name, uses=[], next_check_at=due)
                row.connections.append(connection_row)
                _apply_connection(connection_row, connection, connectors, secret, key_ring)
                report.create(label)
            else:
                report.update(
                    label,
                    _apply_connection(connection_row, connection, connectors, secret, key_ring),
                )
            _apply_uses(connection_row, connection, label, prune, session, report)
        if prune:
            wanted = {c.name for c in consumer.connections}
            for name, stale in existing.items():
                if name not in wanted:
                    await session.delete(stale)
                    report.delete(f"connection {consumer.external_id}/{name!r}")
    await session.flush()

    for sync in spec.syncs:
        sync_row = syncs.get(sync.name)
        if sync_row is None:
            sync_row = SyncRow(name=sync.name, requirements=[])
            syncs[sync.name] = sync_row
            session.add(sync_row)
            report.create(f"sync {sync.name!r}")
        wanted_requirements = [connectors[slug].id for slug in sync.requires]
        if [r.connector_id for r in sync_row.requirements] != wanted_requirements:
            if sync_row.id is not None and sync_row.requirements:
                report.update(f"sync {sync.name!r}", ["requires"])
            sync_row.requirements.clear()
            await session.flush()
            sync_row.requirements.extend(
                SyncRequirementRow(connector_id=connector_id, position=position)
                for position, connector_id in enumerate(wanted_requirements)
            )
        await session.flush()
        await _apply_activations(session, sync_row, sync.activations, consumers, prune, report)

    if prune:
        await _prune(session, spec, use_kinds, connectors, consumers, syncs, report)
    await session.flush()
    return report


def _apply_connection(
    row: ConnectionRow,
    spec: ConnectionSpec,
    connectors: Mapping[str, ConnectorRow],
    secret: dict[str, str] | None,
    key_ring: KeyRing | None,
) -> list[str]:
    values: dict[str, Any] = {
        "connector_id": connectors[spec.connector].id,
        "direction": spec.direction,
        "check_interval_seconds": spec.check_interval_seconds,
        "failure_threshold": spec.failure_threshold,
        "heartbeat": spec.heartbeat,
    }
    if spec.state is not None:
        values["state"] = spec.state
    elif row.state is None:
        values["state"] = ConnectionState.ACTIVE
    changed = _assign(row, values)
    if "state" in changed:
        row.state_changed_at = utcnow()
    if spec.credentials is not None and secret is not None and key_ring is not None:
        same = (
            row.credentials_ref == spec.credentials
            and row.credentials_ciphertext is not None
            and key_ring.decrypt(row.credentials_ciphertext) == secret
        )
        if not same:
            row.credentials_ref = dict(spec.credentials)
            row.credentials_ciphertext = key_ring.encrypt(secret)
            changed.append("credentials")
    return changed


def _apply_uses(
    row: ConnectionRow,
    spec: ConnectionSpec,
    label: str,
    prune: bool,
    session: AsyncSession,
    report: ApplyReport,
) -> None:
    existing = {(u.kind, u.name): u for u in row.uses}
    for use in spec.uses:
        if (use.kind, use.name) not in existing:
            row.uses.append(UseRow(kind=use.kind, name=use.name))
            report.create(f"use {use.kind}/{use.name!r} of {label}")
    if prune:
        wanted = {(u.kind, u.name) for u in spec.uses}
        for key, stale in existing.items():
            if key not in wanted:
                row.uses.remove(stale)
                report.delete(f"use {key[0]}/{key[1]!r} of {label}")


async def _apply_activations(
    session: AsyncSession,
    sync: SyncRow,
    activations: tuple[Any, ...],
    consumers: Mapping[str, ConsumerRow],
    prune: bool,
    report: ApplyReport,
) -> None:
    consumer_ids = {row.id: external_id for external_id, row in consumers.items()}
    existing = {
        consumer_ids.get(row.consumer_id, ""): row
        for row in await session.scalars(
            select(SyncActivationRow).where(SyncActivationRow.sync_id == sync.id)
        )
    }
    for activation in activations:
        label = f"activation of {sync.name!r} for {activation.consumer!r}"
        row = existing.get(activation.consumer)
        wanted = dict(activation.steps)
        if row is None:
            row = SyncActivationRow(
                sync_id=sync.id,
                consumer_id=consumers[activation.consumer].id,
                steps=[
                    SyncActivationStepRow(step=step, complete=done) for step, done in wanted.items()
                ],
            )
            session.add(row)
            report.create(label)
            continue
        steps = {s.step: s for s in row.steps}
        changed = []
        for step in SyncStep:
            if step not in steps:
                row.steps.append(SyncActivationStepRow(step=step, complete=wanted[step]))
                changed.append(step.value.lower())
            elif steps[step].complete != wanted[step]:
                steps[step].complete = wanted[step]
                changed.append(step.value.lower())
        if changed:
            row.updated_at = utcnow()
        report.update(label, changed)
    if prune:
        listed = {a.consumer for a in activations}
        for external_id, stale in existing.items():
            if external_id not in listed:
                await session.delete(stale)
                report.delete(f"activation of {sync.name!r} for {external_id!r}")


async def _prune(
    session: AsyncSession,
    spec: CatalogSpec,
    use_kinds: Mapping[str, UseKindRow],
    connectors: Mapping[str, ConnectorRow],
    consumers: Mapping[str, ConsumerRow],
    syncs: Mapping[str, SyncRow],
    report: ApplyReport,
) -> None:
    """Delete what the file no longer lists; children before the rows they point at."""
    listed_syncs = {s.name for s in spec.syncs}
    for name, sync_row in syncs.items():
        if name not in listed_syncs:
            await session.delete(sync_row)
            report.delete(f"sync {name!r}")
    listed_consumers = {c.external_id for c in spec.consumers}
    for external_id, consumer_row in consumers.items():
        if external_id not in listed_consumers:
            await session.delete(consumer_row)
            report.delete(f"consumer {external_id!r}")
    await session.flush()
    listed_connectors = {c.slug for c in spec.connectors}
    for slug, connector_row in connectors.items():
        if slug not in listed_connectors:
            await session.delete(connector_row)
            report.delete(f"connector {slug!r}")
    listed_kinds = {k.kind for k in spec.use_kinds}
    for kind, kind_row in use_kinds.items():
        if kind not in listed_kinds:
            await session.delete(kind_row)
            report.delete(f"use kind {kind!r}")


def _resolve_secrets(
    spec: CatalogSpec,
    source: str,
    key_ring: KeyRing | None,
    environ: Mapping[str, str] | None,
) -> dict[tuple[str, str], dict[str, str]]:
    secrets: dict[tuple[str, str], dict[str, str]] = {}
    problems: list[str] = []
    for i, consumer in enumerate(spec.consumers):
        for j, connection in enumerate(consumer.connections):
            if connection.credentials is None:
                continue
            path = f"{source}: consumers[{i}].connections[{j}].credentials"
            if key_ring is None:
                problems.append(
                    f"{path}: no credential key is configured (HEALTHGRAPH_SECRET_KEYS)"
                )
                continue
            try:
                secrets[(consumer.external_id, connection.name)] = resolve_secret(
                    connection.credentials, path, environ
                )
            except CatalogError as exc:
                problems.extend(exc.problems)
    if problems:
        raise CatalogError(problems)
    return secrets
