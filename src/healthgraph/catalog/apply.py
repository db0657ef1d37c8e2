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

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from healthgraph.catalog.spec import (
    ActivationSpec,
    CatalogSpec,
    ConnectionSpec,
    ConsumerSpec,
    SyncSpec,
    check_references,
    resolve_secret,
)
from healthgraph.errors import CatalogError
from store import commands
from store.catalog import (
    StoredActivation,
    StoredCatalog,
    StoredConnection,
    StoredConsumer,
    StoredSync,
    load_catalog,
)
from store.crypto import KeyRing
from store.domain import ConnectionState
from store.errors import ConflictError, NotFoundError, ValidationError
from store.outbound import OutboundPolicy

T = TypeVar("T")


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


class _RememberedPolicy:
    """The outbound policy, asked once per origin for the whole file (many connections share
    a host)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._answers: dict[str, str | None] = {}

    async def refusal(self, url: str) -> str | None:
        if url not in self._answers:
            self._answers[url] = await self._policy.refusal(url)
        return self._answers[url]


def _differences(wanted: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in wanted.items() if stored[name] != value}


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
        {} if prune else {c.slug: c.heartbeat for c in stored.connectors},
        () if prune else (k.kind for k in stored.use_kinds),
        () if prune else (c.external_id for c in stored.consumers),
    )
    secrets = _resolve_secrets(spec, source, key_ring, environ)
    applier = _Applier(session, source, _RememberedPolicy(outbound), key_ring, secrets)
    await applier.apply(spec, stored, prune)
    if applier.problems:
        raise CatalogError(applier.problems)
    return applier.report


class _Applier:
    """One apply: the diff of each section, the commands it calls, and what they refused."""

    def __init__(
        self,
        session: AsyncSession,
        source: str,
        outbound: OutboundPolicy,
        key_ring: KeyRing | None,
        secrets: Mapping[tuple[str, str], dict[str, str]],
    ) -> None:
        self.session = session
        self.source = source
        self.outbound = outbound
        self.key_ring = key_ring
        self.secrets = secrets
        self.report = ApplyReport()
        self.problems: list[str] = []
        self.connector_ids: dict[str, int] = {}
        self.consumer_ids: dict[str, int] = {}

    async def _run(self, path: str, command: Awaitable[T]) -> T | None:
        """The command's result, or None after recording its refusal under `path`."""
        try:
            return await command
        except ValidationError as exc:
            message = str(exc) if isinstance(exc, ConflictError) else exc.problem
            self.problems.append(f"{self.source}: {path}.{exc.field}: {message}")
        except NotFoundError as exc:
            self.problems.append(f"{self.source}: {path}: {exc}")
        return None

    async def _succeeds(self, path: str, command: Awaitable[object]) -> bool:
        """Whether the command went through (its refusal is recorded under `path`)."""
        return await self._run(path, command) is not None

    async def apply(self, spec: CatalogSpec, stored: StoredCatalog, prune: bool) -> None:
        self.connector_ids = {c.slug: c.id for c in stored.connectors}
        self.consumer_ids = {c.external_id: c.id for c in stored.consumers}
        await self._use_kinds(spec, stored)
        await self._connectors(spec, stored)
        consumers = {c.external_id: c for c in stored.consumers}
        for index, consumer in enumerate(spec.consumers):
            await self._consumer(f"consumers[{index}]", consumer, consumers, prune)
        syncs = {s.name: s for s in stored.syncs}
        for index, sync in enumerate(spec.syncs):
            await self._sync(f"syncs[{index}]", sync, syncs, prune)
        if prune:
            await self._prune(spec, stored)

    async def _use_kinds(self, spec: CatalogSpec, stored: StoredCatalog) -> None:
        labels = {k.kind: k.label for k in stored.use_kinds}
        for index, kind in enumerate(spec.use_kinds):
            if labels.get(kind.kind) == kind.label:
                continue
            saved = await self._run(
                f"use_kinds[{index}]",
                commands.upsert_use_kind(self.session, kind=kind.kind, label=kind.label),
            )
            if saved is None:
                continue
            if kind.kind in labels:
                self.report.update(f"use kind {kind.kind!r}", ["label"])
            else:
                self.report.create(f"use kind {kind.kind!r}")

    async def _connectors(self, spec: CatalogSpec, stored: StoredCatalog) -> None:
        existing = {c.slug: c for c in stored.connectors}
        for index, connector in enumerate(spec.connectors):
            path, label = f"connectors[{index}]", f"connector {connector.slug!r}"
            wanted = {
                "name": connector.name,
                "category": connector.category,
                "heartbeat": connector.heartbeat,
            }
            current = existing.get(connector.slug)
            if current is None:
                created = await self._run(
                    path,
                    commands.create_connector(
                        self.session,
                        slug=connector.slug,
                        name=connector.name,
                        category=connector.category,
                        heartbeat=connector.heartbeat,
                        outbound=self.outbound,
                    ),
                )
                if created is not None:
                    self.connector_ids[created.slug] = created.id
                    self.report.create(label)
                continue
            changed = _differences(
                wanted,
                {
                    "name": current.name,
                    "category": current.category,
                    "heartbeat": current.heartbeat,
                },
            )
            if changed and await self._succeeds(
                path,
                commands.update_connector(
                    self.session, current.id, outbound=self.outbound, **changed
                ),
            ):
                self.report.update(label, list(changed))

    async def _consumer(
        self,
        path: str,
        consumer: ConsumerSpec,
        existing: Mapping[str, StoredConsumer],
        prune: bool,
    ) -> None:
        label = f"consumer {consumer.external_id!r}"
        wanted = {"name": consumer.name, "email": consumer.email}
        current = existing.get(consumer.external_id)
        if current is None:
            created = await self._run(
                path,
                commands.create_consumer(
                    self.session,
                    external_id=consumer.external_id,
                    name=consumer.name,
                    email=consumer.email,
                ),
            )
            if created is None:
                return
            self.consumer_ids[consumer.external_id] = created.id
            self.report.create(label)
        else:
            changed = _differences(wanted, {"name": current.name, "email": current.email})
            if changed and await self._succeeds(
                path, commands.update_consumer(self.session, current.id, **changed)
            ):
                self.report.update(label, list(changed))
        consumer_id = self.consumer_ids[consumer.external_id]
        connections = {c.name: c for c in current.connections} if current else {}
        for index, connection in enumerate(consumer.connections):
            await self._connection(
                f"{path}.connections[{index}]",
                consumer.external_id,
                consumer_id,
                connection,
                connections.get(connection.name),
                prune,
            )
        if prune:
            listed = {c.name for c in consumer.connections}
            for name, stale in connections.items():
                if name not in listed and await self._succeeds(
                    path, commands.delete_connection(self.session, stale.id)
                ):
                    self.report.delete(f"connection {consumer.external_id}/{name!r}")

    async def _connection(
        self,
        path: str,
        external_id: str,
        consumer_id: int,
        connection: ConnectionSpec,
        current: StoredConnection | None,
        prune: bool,
    ) -> None:
        label = f"connection {external_id}/{connection.name!r}"
        connector_id = self.connector_ids.get(connection.connector)
        if connector_id is None:
            return  # its connector was refused, and that problem is reported already
        if current is None:
            created = await self._run(
                path,
                commands.create_connection(
                    self.session,
                    consumer_id=consumer_id,
                    connector_id=connector_id,
                    name=connection.name,
                    direction=connection.direction,
                    state=connection.state or ConnectionState.ACTIVE,
                    check_interval_seconds=connection.check_interval_seconds,
                    failure_threshold=connection.failure_threshold,
                    heartbeat=connection.heartbeat,
                    outbound=self.outbound,
                ),
            )
            if created is None:
                return
            self.report.create(label)
            connection_id = created.id
        else:
            connection_id = current.id
            changed = await self._update_connection(path, current, connector_id, connection)
            if await self._credentials(path, external_id, connection_id, connection):
                changed.append("credentials")
            self.report.update(label, changed)
        if current is None:
            await self._credentials(path, external_id, connection_id, connection)
        await self._uses(path, label, connection_id, connection, current, prune)

    async def _update_connection(
        self,
        path: str,
        current: StoredConnection,
        connector_id: int,
        connection: ConnectionSpec,
    ) -> list[str]:
        changed = _differences(
            {
                "direction": connection.direction,
                "check_interval_seconds": connection.check_interval_seconds,
                "failure_threshold": connection.failure_threshold,
                "heartbeat": connection.heartbeat,
            },
            {
                "direction": current.direction,
                "check_interval_seconds": current.check_interval_seconds,
                "failure_threshold": current.failure_threshold,
                "heartbeat": current.heartbeat,
            },
        )
        if connection.connector != current.connector_slug:
            changed["connector_id"] = connector_id
        if connection.state is not None and connection.state != current.state:
            changed["state"] = connection.state
        if changed and await self._succeeds(
            path,
            commands.update_connection(self.session, current.id, outbound=self.outbound, **changed),
        ):
            return list(changed)
        return []

    async def _credentials(
        self, path: str, external_id: str, connection_id: int, connection: ConnectionSpec
    ) -> bool:
        secret = self.secrets.get((external_id, connection.name))
        if connection.credentials is None or secret is None or self.key_ring is None:
            return False
        written = await self._run(
            path,
            commands.set_catalog_credentials(
                self.session,
                connection_id,
                reference=connection.credentials,
                secret=secret,
                key_ring=self.key_ring,
            ),
        )
        return bool(written)

    async def _uses(
        self,
        path: str,
        label: str,
        connection_id: int,
        connection: ConnectionSpec,
        current: StoredConnection | None,
        prune: bool,
    ) -> None:
        existing = {(u.kind, u.name): u for u in current.uses} if current else {}
        for index, use in enumerate(connection.uses):
            if (use.kind, use.name) in existing:
                continue
            if await self._succeeds(
                f"{path}.uses[{index}]",
                commands.create_use(
                    self.session, connection_id=connection_id, kind=use.kind, name=use.name
                ),
            ):
                self.report.create(f"use {use.kind}/{use.name!r} of {label}")
        if prune:
            listed = {(u.kind, u.name) for u in connection.uses}
            for (kind, name), stale in existing.items():
                if (kind, name) not in listed and await self._succeeds(
                    path, commands.delete_use(self.session, stale.id)
                ):
                    self.report.delete(f"use {kind}/{name!r} of {label}")

    async def _sync(
        self, path: str, sync: SyncSpec, existing: Mapping[str, StoredSync], prune: bool
    ) -> None:
        label = f"sync {sync.name!r}"
        required = [self.connector_ids.get(slug) for slug in sync.requires]
        if None in required:
            return  # a required connector was refused, and that problem is reported already
        required_ids = [connector_id for connector_id in required if connector_id is not None]
        current = existing.get(sync.name)
        if current is None:
            created = await self._run(
                path,
                commands.create_sync(
                    self.session, name=sync.name, required_connector_ids=required_ids
                ),
            )
            if created is None:
                return
            self.report.create(label)
            sync_id = created.id
        else:
            sync_id = current.id
            if tuple(sync.requires) != current.requires and await self._succeeds(
                path,
                commands.update_sync(self.session, current.id, required_connector_ids=required_ids),
            ):
                self.report.update(label, ["requires"])
        activations = {a.consumer_external_id: a for a in current.activations} if current else {}
        for index, activation in enumerate(sync.activations):
            await self._activation(
                f"{path}.activations[{index}]", sync.name, sync_id, activation, activations
            )
        if prune:
            listed = {a.consumer for a in sync.activations}
            for external_id, stale in activations.items():
                if external_id not in listed and await self._succeeds(
                    path, commands.delete_sync_activation(self.session, stale.id)
                ):
                    self.report.delete(f"activation of {sync.name!r} for {external_id!r}")

    async def _activation(
        self,
        path: str,
        sync_name: str,
        sync_id: int,
        activation: ActivationSpec,
        existing: Mapping[str, StoredActivation],
    ) -> None:
        label = f"activation of {sync_name!r} for {activation.consumer!r}"
        consumer_id = self.consumer_ids.get(activation.consumer)
        if consumer_id is None:
            return  # the consumer was refused, and that problem is reported already
        current = existing.get(activation.consumer)
        if current is None:
            created = await self._run(
                path,
                commands.create_sync_activation(
                    self.session, sync_id=sync_id, consumer_id=consumer_id
                ),
            )
            if created is None:
                return
            self.report.create(label)
            activation_id, stored_steps = created.id, {s.step: s.complete for s in created.steps}
        else:
            activation_id, stored_steps = current.id, dict(current.steps)
        changed = {
            step: (complete, None)
            for step, complete in activation.steps
            if stored_steps.get(step) != complete
        }
        if (
            changed
            and await self._succeeds(
                path,
                commands.update_sync_activation(self.session, activation_id, steps=changed),
            )
            and current is not None
        ):
            self.report.update(label, [step.value.lower() for step in changed])

    async def _prune(self, spec: CatalogSpec, stored: StoredCatalog) -> None:
        """Delete what the file no longer lists; children before the rows they point at."""
        listed_syncs = {s.name for s in spec.syncs}
        for sync in stored.syncs:
            if sync.name not in listed_syncs and await self._succeeds(
                "syncs", commands.delete_sync(self.session, sync.id)
            ):
                self.report.delete(f"sync {sync.name!r}")
        listed_consumers = {c.external_id for c in spec.consumers}
        for consumer in stored.consumers:
            if consumer.external_id not in listed_consumers and await self._succeeds(
                "consumers", commands.delete_consumer(self.session, consumer.id)
            ):
                self.report.delete(f"consumer {consumer.external_id!r}")
        listed_connectors = {c.slug for c in spec.connectors}
        for connector in stored.connectors:
            if connector.slug not in listed_connectors and await self._succeeds(
                "connectors", commands.delete_connector(self.session, connector.id)
            ):
                self.report.delete(f"connector {connector.slug!r}")
        listed_kinds = {k.kind for k in spec.use_kinds}
        for kind in stored.use_kinds:
            if kind.kind not in listed_kinds and await self._succeeds(
                "use_kinds", commands.delete_use_kind(self.session, kind.kind)
            ):
                self.report.delete(f"use kind {kind.kind!r}")


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
