"""Apply, consumer by consumer: the consumer, its connections, their credentials and uses."""

from __future__ import annotations

from collections.abc import Mapping

from healthgraph.catalog.applier import Applier, differences
from healthgraph.catalog.entries import ConnectionSpec, ConsumerSpec
from store import commands
from store.catalog import StoredConnection, StoredConsumer
from store.domain import ConnectionState


async def apply_consumer(
    applier: Applier,
    path: str,
    consumer: ConsumerSpec,
    existing: Mapping[str, StoredConsumer],
    prune: bool,
) -> None:
    label = f"consumer {consumer.external_id!r}"
    wanted = {"name": consumer.name, "email": consumer.email}
    current = existing.get(consumer.external_id)
    if current is None:
        created = await applier.run(
            path,
            commands.create_consumer(
                applier.session,
                external_id=consumer.external_id,
                name=consumer.name,
                email=consumer.email,
            ),
        )
        if created is None:
            return
        applier.consumer_ids[consumer.external_id] = created.id
        applier.report.create(label)
    else:
        changed = differences(wanted, {"name": current.name, "email": current.email})
        if changed and await applier.succeeds(
            path, commands.update_consumer(applier.session, current.id, **changed)
        ):
            applier.report.update(label, list(changed))
    consumer_id = applier.consumer_ids[consumer.external_id]
    connections = {c.name: c for c in current.connections} if current else {}
    for index, connection in enumerate(consumer.connections):
        await _connection(
            applier,
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
            if name not in listed and await applier.succeeds(
                path, commands.delete_connection(applier.session, stale.id)
            ):
                applier.report.delete(f"connection {consumer.external_id}/{name!r}")


async def _connection(
    applier: Applier,
    path: str,
    external_id: str,
    consumer_id: int,
    connection: ConnectionSpec,
    current: StoredConnection | None,
    prune: bool,
) -> None:
    label = f"connection {external_id}/{connection.name!r}"
    connector_id = applier.connector_ids.get(connection.connector)
    if connector_id is None:
        return  # its connector was refused, and that problem is reported already
    if current is None:
        created = await applier.run(
            path,
            commands.create_connection(
                applier.session,
                consumer_id=consumer_id,
                connector_id=connector_id,
                name=connection.name,
                direction=connection.direction,
                state=connection.state or ConnectionState.ACTIVE,
                check_interval_seconds=connection.check_interval_seconds,
                failure_threshold=connection.failure_threshold,
                heartbeat=connection.heartbeat,
                params=connection.params,
                outbound=applier.outbound,
            ),
        )
        if created is None:
            return
        applier.report.create(label)
        connection_id = created.id
    else:
        connection_id = current.id
        changed = await _update_connection(applier, path, current, connector_id, connection)
        if await _credentials(applier, path, external_id, connection_id, connection):
            changed.append("credentials")
        applier.report.update(label, changed)
    if current is None:
        await _credentials(applier, path, external_id, connection_id, connection)
    await _uses(applier, path, label, connection_id, connection, current, prune)


async def _update_connection(
    applier: Applier,
    path: str,
    current: StoredConnection,
    connector_id: int,
    connection: ConnectionSpec,
) -> list[str]:
    changed = differences(
        {
            "direction": connection.direction,
            "check_interval_seconds": connection.check_interval_seconds,
            "failure_threshold": connection.failure_threshold,
            "heartbeat": connection.heartbeat,
            "params": connection.params,
        },
        {
            "direction": current.direction,
            "check_interval_seconds": current.check_interval_seconds,
            "failure_threshold": current.failure_threshold,
            "heartbeat": current.heartbeat,
            "params": current.params,
        },
    )
    if connection.connector != current.connector_slug:
        changed["connector_id"] = connector_id
    if connection.state is not None and connection.state != current.state:
        changed["state"] = connection.state
    if changed and await applier.succeeds(
        path,
        commands.update_connection(
            applier.session, current.id, outbound=applier.outbound, **changed
        ),
    ):
        return list(changed)
    return []


async def _credentials(
    applier: Applier, path: str, external_id: str, connection_id: int, connection: ConnectionSpec
) -> bool:
    secret = applier.secrets.get((external_id, connection.name))
    if connection.credentials is None or secret is None or applier.key_ring is None:
        return False
    written = await applier.run(
        path,
        commands.set_catalog_credentials(
            applier.session,
            connection_id,
            reference=connection.credentials,
            secret=secret,
            key_ring=applier.key_ring,
        ),
    )
    return bool(written)


async def _uses(
    applier: Applier,
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
        if await applier.succeeds(
            f"{path}.uses[{index}]",
            commands.create_use(
                applier.session, connection_id=connection_id, kind=use.kind, name=use.name
            ),
        ):
            applier.report.create(f"use {use.kind}/{use.name!r} of {label}")
    if prune:
        listed = {(u.kind, u.name) for u in connection.uses}
        for (kind, name), stale in existing.items():
            if (kind, name) not in listed and await applier.succeeds(
                path, commands.delete_use(applier.session, stale.id)
            ):
                applier.report.delete(f"use {kind}/{name!r} of {label}")
