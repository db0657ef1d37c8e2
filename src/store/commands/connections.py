"""Connections: one consumer's link to a connector, its probe settings and its credentials."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from store import domain, oauth, records, validation
from store.commands.base import UNSET, Unset, assign, ensure_free, get_row, saving
from store.commands.heartbeats import check_connection_targets, connection_heartbeat, params
from store.credentials import CredentialKind, validate_secret
from store.crypto import KeyRing
from store.domain import ConnectionState, ConnectionStatus, Direction, StatusChange
from store.errors import ConflictError, ValidationError
from store.models import CheckRow, ConnectionRow, ConnectorRow, ConsumerRow, utcnow
from store.outbound import OutboundPolicy
from store.outbox import record_connection_events
from store.validation import DEFAULT_CHECK_INTERVAL_SECONDS, DEFAULT_FAILURE_THRESHOLD

_NO_HEARTBEAT: Mapping[str, Any] = MappingProxyType({})
_NO_PARAMS: Mapping[str, str] = MappingProxyType({})
params_of = params
# What makes a connection due at once: it is probed differently from now on.
_PROBE_SETTINGS = frozenset(
    {"connector_id", "direction", "check_interval_seconds", "heartbeat", "params"}
)


def first_due(direction: Direction, interval: int, now: datetime) -> datetime:
    """When a new connection is first due: an outbound one is probed at once; an inbound one
    gets a whole interval to call in before its silence counts as a missed heartbeat."""
    return now if direction == Direction.OUTBOUND else now + timedelta(seconds=interval)


async def _check_probe_settings(
    *,
    consumer: ConsumerRow,
    connector: ConnectorRow,
    direction: Direction,
    override: Mapping[str, Any],
    values: Mapping[str, str],
    outbound: OutboundPolicy,
) -> None:
    connection_heartbeat(
        direction, connector.slug, connector.heartbeat, override, consumer.external_id, values
    )
    if direction == Direction.OUTBOUND:
        await check_connection_targets(
            outbound,
            [("heartbeat.url", connector.heartbeat, override, consumer.external_id, values)],
        )
        if connector.oauth2:
            # The token endpoint is an outbound request too, per connection where its URL
            # takes the connection's params.
            await check_connection_targets(
                outbound,
                [
                    (
                        "oauth2.token_url",
                        {"url": connector.oauth2["token_url"]},
                        {},
                        consumer.external_id,
                        values,
                    )
                ],
            )


async def create_connection(
    session: AsyncSession,
    *,
    consumer_id: int,
    connector_id: int,
    name: str,
    direction: Direction = Direction.OUTBOUND,
    state: ConnectionState = ConnectionState.ACTIVE,
    check_interval_seconds: int = DEFAULT_CHECK_INTERVAL_SECONDS,
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
    heartbeat: Mapping[str, Any] = _NO_HEARTBEAT,
    params: Mapping[str, str] = _NO_PARAMS,
    outbound: OutboundPolicy,
) -> domain.Connection:
    """Create a connection, due for its first check at once (inbound: after one interval).

    `heartbeat` overrides the connector's template field by field; an outbound connection must
    end up with a URL the outbound policy admits, an inbound one takes no override (it is
    pushed to, not probed).
    """
    name = validation.text("name", name)
    interval = validation.interval(check_interval_seconds)
    threshold = validation.threshold(failure_threshold)
    override = validation.mapping("heartbeat", heartbeat)
    values = params_of(params)

    async def check() -> tuple[ConsumerRow, ConnectorRow]:
        consumer = await get_row(session, ConsumerRow, consumer_id, "consumer")
        connector = await get_row(session, ConnectorRow, connector_id, "connector")
        await ensure_free(
            session,
            ConnectionRow.id,
            ConnectionRow.consumer_id == consumer_id,
            ConnectionRow.name == name,
            field="name",
            value=name,
            owner="connection of this consumer",
        )
        return consumer, connector

    consumer, connector = await check()
    await _check_probe_settings(
        consumer=consumer,
        connector=connector,
        direction=direction,
        override=override,
        values=values,
        outbound=outbound,
    )
    now = utcnow()
    row = ConnectionRow(
        consumer_id=consumer_id,
        connector_id=connector_id,
        name=name,
        direction=direction,
        state=state,
        status=ConnectionStatus.UNKNOWN,
        consecutive_failures=0,
        check_interval_seconds=interval,
        failure_threshold=threshold,
        heartbeat=override,
        params=values,
        next_check_at=first_due(direction, interval, now),
        state_changed_at=now,
        created_at=now,
    )
    async with saving(session, check):
        session.add(row)
    return records.connection(row)


async def update_connection(
    session: AsyncSession,
    connection_id: int,
    *,
    connector_id: int | Unset = UNSET,
    name: str | Unset = UNSET,
    direction: Direction | Unset = UNSET,
    state: ConnectionState | Unset = UNSET,
    check_interval_seconds: int | Unset = UNSET,
    failure_threshold: int | Unset = UNSET,
    heartbeat: Mapping[str, Any] | Unset = UNSET,
    params: Mapping[str, str] | Unset = UNSET,
    outbound: OutboundPolicy,
) -> domain.Connection:
    """Change the given fields, checking the connection as it will be afterwards.

    A state change stamps `state_changed_at`; new probe settings make the connection due now.
    """
    values: dict[str, Any] = {}
    if connector_id is not UNSET:
        values["connector_id"] = connector_id
    if name is not UNSET:
        values["name"] = validation.text("name", name)
    if direction is not UNSET:
        values["direction"] = direction
    if state is not UNSET:
        values["state"] = state
    if check_interval_seconds is not UNSET:
        values["check_interval_seconds"] = validation.interval(check_interval_seconds)
    if failure_threshold is not UNSET:
        values["failure_threshold"] = validation.threshold(failure_threshold)
    if heartbeat is not UNSET:
        values["heartbeat"] = validation.mapping("heartbeat", heartbeat)
    if params is not UNSET:
        values["params"] = params_of(params)

    async def check() -> ConnectionRow:
        row = await get_row(session, ConnectionRow, connection_id, "connection")
        if "name" in values:
            await ensure_free(
                session,
                ConnectionRow.id,
                ConnectionRow.consumer_id == row.consumer_id,
                ConnectionRow.name == values["name"],
                field="name",
                value=values["name"],
                owner="connection of this consumer",
                exclude=connection_id,
            )
        return row

    row = await check()
    if values.keys() & _PROBE_SETTINGS:
        await _check_probe_settings(
            consumer=await get_row(session, ConsumerRow, row.consumer_id, "consumer"),
            connector=await get_row(
                session, ConnectorRow, values.get("connector_id", row.connector_id), "connector"
            ),
            direction=values.get("direction", row.direction),
            override=values.get("heartbeat", row.heartbeat),
            values=values.get("params", row.params),
            outbound=outbound,
        )
    old_state = row.state
    async with saving(session, check):
        changed = assign(row, values)
        now = utcnow()
        if "state" in changed:
            row.state_changed_at = now
        if changed & _PROBE_SETTINGS:
            # Check the new settings promptly instead of after the old interval.
            row.next_check_at = first_due(row.direction, row.check_interval_seconds, now)
    if "state" in changed:
        await _record_change(session, row, row.status, old_state, now)
    return records.connection(row)


async def _record_change(
    session: AsyncSession,
    row: ConnectionRow,
    old_status: ConnectionStatus,
    old_state: ConnectionState,
    at: datetime,
) -> None:
    """The webhook event of a change made by a command, in its transaction (store.outbox)."""
    change = StatusChange(
        connection_id=row.id,
        old_status=old_status,
        new_status=row.status,
        old_state=old_state,
        new_state=row.state,
    )
    await record_connection_events(await session.connection(), [change], at)


async def delete_connection(session: AsyncSession, connection_id: int) -> domain.Connection:
    """Delete a connection with its uses and check history (ON DELETE CASCADE)."""
    row = await get_row(session, ConnectionRow, connection_id, "connection")
    record = records.connection(row)
    async with saving(session):
        await session.delete(row)
    return record


async def _oauth2_app(session: AsyncSession, row: ConnectionRow) -> None:
    connector = await get_row(session, ConnectorRow, row.connector_id, "connector")
    if not connector.oauth2:
        raise ValidationError(
            "credentials.kind",
            "oauth2",
            f"connector {connector.slug!r} has no OAuth2 app; give it one first "
            "(oauth2: token_url, client_id, client secret)",
        )


async def _store_credentials(
    session: AsyncSession,
    row: ConnectionRow,
    cleaned: dict[str, str] | None,
    *,
    seed: str | None,
    key_ring: KeyRing,
) -> None:
    """Write validated credentials; an OAuth2 grant's tokens go to its own row, the
    connection keeps only which kind and grant it is."""
    if cleaned is not None and cleaned["kind"] == CredentialKind.OAUTH2:
        row.credentials_ciphertext = key_ring.encrypt(
            {"kind": CredentialKind.OAUTH2.value, "grant": cleaned["grant"]}
        )
        expires = cleaned.get("access_token_expires_at")
        await oauth.put_grant(
            session,
            row.id,
            grant_type=cleaned["grant"],
            refresh_token=cleaned.get("refresh_token"),
            access_token=cleaned.get("access_token"),
            access_token_expires_at=validation.aware(
                "credentials.access_token_expires_at", datetime.fromisoformat(expires)
            )
            if expires
            else None,
            seed=seed,
            key_ring=key_ring,
        )
    else:
        row.credentials_ciphertext = None if cleaned is None else key_ring.encrypt(cleaned)
        await oauth.delete_grant(session, row.id)
    if row.direction == Direction.OUTBOUND:
        row.next_check_at = utcnow()  # e.g. re-authenticated after AUTH: check it now


async def set_connection_credentials(
    session: AsyncSession,
    connection_id: int,
    *,
    secret: Mapping[str, str] | None,
    key_ring: KeyRing,
) -> domain.Connection:
    """Store `secret` encrypted (write-only: nothing reads it back out); None removes it.

    Shapes: `store.credentials.CREDENTIAL_SHAPES`. OAuth2 credentials need the connector's
    OAuth2 app and start a new grant (a dead one comes back to life).
    """
    cleaned = None if secret is None else validate_secret(secret)
    row = await get_row(session, ConnectionRow, connection_id, "connection")
    if cleaned is not None and cleaned["kind"] == CredentialKind.OAUTH2:
        await _oauth2_app(session, row)
    async with saving(session):
        # Set through the API, so no catalog reference (env/file name) describes it any more.
        row.credentials_ref = None
        await _store_credentials(session, row, cleaned, seed=None, key_ring=key_ring)
    return records.connection(row)


async def set_catalog_credentials(
    session: AsyncSession,
    connection_id: int,
    *,
    reference: Mapping[str, str],
    secret: Mapping[str, str],
    key_ring: KeyRing,
) -> bool:
    """The catalog's credentials: `secret`, read through `reference` (its env/file names).

    Stored (validated, encrypted) unless the same secret is stored under the same reference
    already, so applying a catalog again changes nothing. An OAuth2 refresh token is a *seed*:
    the provider rotates it, so only a changed seed (told by its digest) replaces the stored
    token, never the same seed again. Whether anything was written.
    """
    cleaned = validate_secret(secret)
    row = await get_row(session, ConnectionRow, connection_id, "connection")
    if cleaned["kind"] == CredentialKind.OAUTH2:
        await _oauth2_app(session, row)
        if row.credentials_ref == dict(reference) and await _same_seed(
            session, row.id, cleaned, key_ring
        ):
            return False
    elif (
        row.credentials_ref == dict(reference)
        and row.credentials_ciphertext is not None
        and key_ring.decrypt(row.credentials_ciphertext) == cleaned
    ):
        return False
    async with saving(session):
        row.credentials_ref = dict(reference)
        await _store_credentials(
            session, row, cleaned, seed=cleaned.get("refresh_token"), key_ring=key_ring
        )
    return True


async def _same_seed(
    session: AsyncSession, connection_id: int, cleaned: Mapping[str, str], key_ring: KeyRing
) -> bool:
    grant = await oauth.load_grant(session, connection_id, key_ring)
    if grant is None or grant.grant_type != cleaned["grant"]:
        return False
    seed = cleaned.get("refresh_token")
    return seed is None or grant.seed_digest == oauth.seed_digest(seed)


async def record_inbound_heartbeat(
    session: AsyncSession, connection_id: int, *, at: datetime
) -> domain.Connection:
    """An inbound connection called in at `at`: it is up until one interval after that."""
    at = validation.aware("at", at)
    row = await get_row(session, ConnectionRow, connection_id, "connection")
    if row.direction != Direction.INBOUND:
        raise ConflictError(
            "connection_id",
            connection_id,
            f"connection {connection_id} is outbound; it is probed, not pushed to",
        )
    old_status = row.status
    async with saving(session):
        row.status = ConnectionStatus.CONNECTED
        row.last_checked_at = row.last_success_at = at
        row.failure_reason = row.last_error = row.latency_ms = None
        row.consecutive_failures = 0
        row.next_check_at = at + timedelta(seconds=row.check_interval_seconds)
        session.add(CheckRow(connection_id=row.id, checked_at=at, success=True))
    await _record_change(session, row, old_status, row.state, at)
    return records.connection(row)
