"""Connectors: third-party system types with the heartbeat template their connections share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store import domain, library, oauth, records, validation
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
from store.crypto import KeyRing
from store.domain import Direction
from store.errors import ConflictError, ValidationError
from store.heartbeat import merge
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    OAuthGrantRow,
    SyncRequirementRow,
    utcnow,
)
from store.outbound import OutboundPolicy, check_targets
from store.validation import MAX_KEY_LENGTH


async def create_connector(
    session: AsyncSession,
    *,
    slug: str,
    name: str,
    category: str,
    heartbeat: Mapping[str, Any],
    template_name: str | None = None,
    outbound: OutboundPolicy,
) -> domain.Connector:
    """Create a connector with its heartbeat template (which connections may override);
    `template_name`: the library template it was made from (store.library.resolve)."""
    slug = validation.text("slug", slug, MAX_KEY_LENGTH)
    known_template(template_name)
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
        slug=slug,
        name=name,
        category=category,
        heartbeat=fields,
        template=template_name,
        created_at=utcnow(),
    )
    async with saving(session, check):
        session.add(row)
    return records.connector(row)


def known_template(name: str | None) -> str | None:
    """`name` if the library has such a template (or None for none)."""
    if name is not None and name not in library.template_names():
        raise ValidationError(
            "template", name, f"{name!r} is not a connector template; see connectorTemplates"
        )
    return name


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
                ConnectionRow.params,
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
    for connection_id, name, override, values, external_id in rows:
        found = probe_problem(connector_template, override, external_id, values)
        if found:
            field, problem = found
            raise ValidationError(
                field if field.startswith("params.") else f"heartbeat.{field}",
                merge(connector_template, override).get(field),
                f"{problem} (connection {connection_id} {name!r} relies on this template)",
            )
    await check_connection_targets(
        outbound,
        [
            ("heartbeat.url", connector_template, override, external_id, values)
            for _, _, override, values, external_id in rows
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
    template_name: str | Unset | None = UNSET,
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
    if template_name is not UNSET:
        values["template"] = known_template(template_name)

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


async def set_connector_oauth2(
    session: AsyncSession,
    connector_id: int,
    *,
    app: Mapping[str, Any] | None,
    client_secret: str | Unset | None = UNSET,
    client_secret_ref: Mapping[str, str] | None = None,
    key_ring: KeyRing | None,
    outbound: OutboundPolicy,
) -> bool:
    """Give the connector its OAuth2 app (token_url, client_id, scopes, auth_method) and, unless
    UNSET, its client secret (write-only, encrypted; `client_secret_ref` is the catalog
    reference it was read from); `app=None` removes both. Whether anything changed.

    Refused: removing the app while connections hold OAuth2 grants of it; a token URL the
    outbound policy refuses; a secret without a key ring to encrypt it.
    """
    cleaned = None if app is None else oauth.oauth2_app(app)
    secret = (
        client_secret
        if client_secret is UNSET or client_secret is None
        else oauth.client_secret(client_secret)
    )
    row = await get_row(session, ConnectorRow, connector_id, "connector")
    if cleaned is None:
        grants = await count_rows(
            session,
            OAuthGrantRow,
            OAuthGrantRow.connection_id.in_(
                select(ConnectionRow.id).where(ConnectionRow.connector_id == connector_id)
            ),
        )
        if grants:
            raise ConflictError(
                "oauth2",
                None,
                f"connector {row.slug!r} has {validation.plural(grants, 'connection')} with "
                "OAuth2 credentials; set them other credentials first",
            )
        secret = None
    changed = row.oauth2 != cleaned
    if cleaned is not None and changed:
        await check_targets(outbound, [("oauth2.token_url", cleaned["token_url"])])
    if secret is not UNSET:
        stored = row.oauth2_client_secret_ciphertext
        if secret is None:
            changed = changed or stored is not None or row.oauth2_client_secret_ref is not None
        else:
            if key_ring is None:
                raise ValidationError(
                    "oauth2.client_secret",
                    "<redacted>",
                    "cannot be stored: no credential key is configured (HEALTHGRAPH_SECRET_KEYS)",
                )
            same = (
                stored is not None
                and key_ring.decrypt(stored) == {"client_secret": secret}
                and row.oauth2_client_secret_ref == (dict(client_secret_ref or {}) or None)
            )
            changed = changed or not same
    if not changed:
        return False
    async with saving(session):
        row.oauth2 = cleaned
        if secret is not UNSET:
            row.oauth2_client_secret_ciphertext = (
                None
                if secret is None or key_ring is None
                else key_ring.encrypt({"client_secret": secret})
            )
            row.oauth2_client_secret_ref = dict(client_secret_ref) if client_secret_ref else None
    return True
