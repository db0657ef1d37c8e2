"""Connectors: third-party system types with the heartbeat template their connections share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store import domain, records, validation
from store.commands.base import (
    UNSET,
    Unset,
    assign,
    count_rows,
    ensure_free,
    get_row,
    saving,
)
from store.commands.heartbeats import (
    check_connection_targets,
    check_template_target,
    probe_problem,
    template,
)
from store.domain import Direction
from store.errors import ConflictError, ValidationError
from store.heartbeat import merge
from store.models import ConnectionRow, ConnectorRow, ConsumerRow, SyncRequirementRow, utcnow
from store.outbound import OutboundPolicy
from store.validation import MAX_KEY_LENGTH


async def create_connector(
    session: AsyncSession,
    *,
    slug: str,
    name: str,
    category: str,
    heartbeat: Mapping[str, Any],
    outbound: OutboundPolicy,
) -> domain.Connector:
    """Create a connector with its heartbeat template (which connections may override)."""
    slug = validation.text("slug", slug, MAX_KEY_LENGTH)
    name = validation.text("name", name)
    category = validation.text("category", category, MAX_KEY_LENGTH)
    fields = template(heartbeat)
    await check_template_target(outbound, fields)

    async def check() -> None:
        await ensure_free(
            session,
            ConnectorRow.id,
            ConnectorRow.slug == slug,
            field="slug",
            value=slug,
            owner="connector",
        )

    await check()
    row = ConnectorRow(
        slug=slug, name=name, category=category, heartbeat=fields, created_at=utcnow()
    )
    async with saving(session, check):
        session.add(row)
    return records.connector(row)


async def _check_template_users(
    session: AsyncSession,
    connector_id: int,
    connector_template: Mapping[str, Any],
    outbound: OutboundPolicy,
) -> None:
    """Refuse a template that would leave an outbound connection of the connector unprobeable,
    or send one of them where the outbound policy refuses."""
    rows = (
        await session.execute(
            select(
                ConnectionRow.id,
                ConnectionRow.name,
                ConnectionRow.heartbeat,
                ConsumerRow.external_id,
            )
            .join(ConsumerRow, ConsumerRow.id == ConnectionRow.consumer_id)
            .where(
                ConnectionRow.connector_id == connector_id,
                ConnectionRow.direction == Direction.OUTBOUND,
            )
            .order_by(ConnectionRow.id)
        )
    ).all()
    for connection_id, name, override, _ in rows:
        found = probe_problem(connector_template, override)
        if found:
            field, problem = found
            raise ValidationError(
                f"heartbeat.{field}",
                merge(connector_template, override).get(field),
                f"{problem} (connection {connection_id} {name!r} relies on this template)",
            )
    await check_connection_targets(
        outbound,
        [
            ("heartbeat.url", connector_template, override, external_id)
            for _, _, override, external_id in rows
        ],
    )


async def update_connector(
    session: AsyncSession,
    connector_id: int,
    *,
    slug: str | Unset = UNSET,
    name: str | Unset = UNSET,
    category: str | Unset = UNSET,
    heartbeat: Mapping[str, Any] | Unset = UNSET,
    outbound: OutboundPolicy,
) -> domain.Connector:
    """Change the given fields; a new template is checked against every outbound connection."""
    values: dict[str, Any] = {}
    if slug is not UNSET:
        values["slug"] = validation.text("slug", slug, MAX_KEY_LENGTH)
    if name is not UNSET:
        values["name"] = validation.text("name", name)
    if category is not UNSET:
        values["category"] = validation.text("category", category, MAX_KEY_LENGTH)
    if heartbeat is not UNSET:
        values["heartbeat"] = template(heartbeat)

    async def check() -> ConnectorRow:
        row = await get_row(session, ConnectorRow, connector_id, "connector")
        if "slug" in values:
            await ensure_free(
                session,
                ConnectorRow.id,
                ConnectorRow.slug == values["slug"],
                field="slug",
                value=values["slug"],
                owner="connector",
                exclude=connector_id,
            )
        return row

    row = await check()
    if "heartbeat" in values and values["heartbeat"] != row.heartbeat:
        await check_template_target(outbound, values["heartbeat"])
        await _check_template_users(session, connector_id, values["heartbeat"], outbound)
    async with saving(session, check):
        if "heartbeat" in assign(row, values):
            # Probe the connections with the new template now, not after up to a day.
            await session.execute(
                update(ConnectionRow)
                .where(
                    ConnectionRow.connector_id == connector_id,
                    ConnectionRow.direction == Direction.OUTBOUND,
                )
                .values(next_check_at=utcnow())
            )
    return records.connector(row)


async def delete_connector(session: AsyncSession, connector_id: int) -> domain.Connector:
    """Delete a connector that no connection uses and no sync requires."""

    async def check() -> ConnectorRow:
        row = await get_row(session, ConnectorRow, connector_id, "connector")
        connections = await count_rows(
            session, ConnectionRow, ConnectionRow.connector_id == connector_id
        )
        if connections:
            them = "it" if connections == 1 else "them"
            raise ConflictError(
                "connector_id",
                connector_id,
                f"connector {row.slug!r} is used by "
                f"{validation.plural(connections, 'connection')}; delete or move {them} first",
            )
        syncs = await count_rows(
            session, SyncRequirementRow, SyncRequirementRow.connector_id == connector_id
        )
        if syncs:
            raise ConflictError(
                "connector_id",
                connector_id,
                f"connector {row.slug!r} is required by {validation.plural(syncs, 'sync')}; "
                "remove it from their required connectors first",
            )
        return row

    row = await check()
    record = records.connector(row)
    async with saving(session, check):
        await session.delete(row)
    return record
