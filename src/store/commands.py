"""The write side: validated commands for the GraphQL mutations and the push endpoints.

Each command takes the caller's session and leaves the transaction to the caller: it flushes,
never commits. Every check runs before the first write, and the writes are flushed inside a
SAVEPOINT, so a refused command leaves nothing half-written and the caller's transaction usable.
Commands return `store.domain` records, never ORM rows.
"""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, func, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from store import domain, records
from store.crypto import KeyRing
from store.domain import ConnectionState, ConnectionStatus, Direction, SyncStep, UseStatus
from store.errors import ConflictError, NotFoundError, ValidationError
from store.heartbeat import heartbeat_problems, merge
from store.models import (
    Base,
    CheckRow,
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

# Bounds of the connection settings; the catalog file and the GraphQL schema import these.
MIN_CHECK_INTERVAL_SECONDS = 1
MAX_CHECK_INTERVAL_SECONDS = 86400
DEFAULT_CHECK_INTERVAL_SECONDS = 86400  # the seeds' daily heartbeat
MIN_FAILURE_THRESHOLD = 1
MAX_FAILURE_THRESHOLD = 100
DEFAULT_FAILURE_THRESHOLD = 1
# Widths of the text columns, so PostgreSQL never gets a value it would refuse.
MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 64  # slugs, categories, use kinds
MAX_EMAIL_LENGTH = 320
MAX_TEXT_LENGTH = 1000  # reported errors and step details
REDACTED = "<redacted>"  # ValidationError.value for a rejected secret


class Unset(enum.Enum):
    """The type of UNSET."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET
"""In an update: leave the field as it is (None, where allowed, clears it)."""

_NO_HEARTBEAT: Mapping[str, Any] = MappingProxyType({})
_Row = TypeVar("_Row", bound=Base)


# --- input checks (pure) -----------------------------------------------------------------------


def _text(field: str, value: object, max_length: int = MAX_NAME_LENGTH) -> str:
    """`value` without surrounding blanks; refused when blank or wider than its column."""
    if not isinstance(value, str):
        raise ValidationError(field, value, f"expected a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValidationError(field, value, "must not be empty")
    if len(text) > max_length:
        raise ValidationError(
            field, value, f"is {len(text)} characters long; use at most {max_length}"
        )
    return text


def _optional_text(field: str, value: object, max_length: int) -> str | None:
    return None if value is None else _text(field, value, max_length)


def _email(value: object) -> str | None:
    email = _optional_text("email", value, MAX_EMAIL_LENGTH)
    if email is not None and "@" not in email:
        raise ValidationError("email", value, f"{email!r} is not an email address")
    return email


def _int_in_range(field: str, value: object, low: int, high: int) -> int:
    if type(value) is not int:  # bool is an int subclass, and True is no interval
        raise ValidationError(field, value, f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(field, value, f"{value} is out of range; use {low}..{high}")
    return value


def _interval(value: object) -> int:
    return _int_in_range(
        "check_interval_seconds", value, MIN_CHECK_INTERVAL_SECONDS, MAX_CHECK_INTERVAL_SECONDS
    )


def _threshold(value: object) -> int:
    return _int_in_range("failure_threshold", value, MIN_FAILURE_THRESHOLD, MAX_FAILURE_THRESHOLD)


def _aware(field: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            field, value, f"{value.isoformat()} has no time zone; pass an aware datetime"
        )
    return value.astimezone(UTC)


def _mapping(field: str, value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(field, value, f"expected a mapping, got {type(value).__name__}")
    return dict(value)


def _template(value: object) -> dict[str, Any]:
    """A connector's heartbeat template: every field valid on its own (the URL may come later)."""
    template = _mapping("heartbeat", value)
    problems = heartbeat_problems(template)
    if problems:
        field, problem = problems[0]
        raise ValidationError(f"heartbeat.{field}", template.get(field), problem)
    return template


_NO_URL = "is required for an outbound connection"


def _probe_problem(
    template: Mapping[str, Any], override: Mapping[str, Any]
) -> tuple[str, str] | None:
    """(field, problem) of the first reason an outbound connection cannot be probed, or None.

    Checks the merged spec, not the parts: an override URL must suit the template's kind.
    """
    merged = merge(template, override)
    problems = heartbeat_problems(merged)
    if problems:
        return problems[0]
    if not merged.get("url"):
        return "url", _NO_URL
    return None


def _connection_heartbeat(
    direction: Direction, connector: ConnectorRow, override: dict[str, Any]
) -> None:
    if direction == Direction.INBOUND:
        if override:
            raise ValidationError(
                "heartbeat", override, "inbound connections are not probed; remove it"
            )
        return
    found = _probe_problem(connector.heartbeat, override)
    if found:
        field, problem = found
        if problem == _NO_URL:
            problem += f" (connector {connector.slug!r} has no URL template)"
        raise ValidationError(f"heartbeat.{field}", override.get(field), problem)


_CREDENTIAL_FIELDS: Final = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "header": ("name", "value"),
    "query": ("name", "value"),
}
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _secret(secret: object) -> dict[str, str]:
    """A credentials secret of a known shape. Errors name the field, never echo a value."""
    if not isinstance(secret, Mapping):
        raise ValidationError(
            "credentials", REDACTED, f"expected a mapping, got {type(secret).__name__}"
        )
    kind = secret.get("kind")
    if not isinstance(kind, str) or kind not in _CREDENTIAL_FIELDS:
        raise ValidationError(
            "credentials.kind", REDACTED, f"must be one of {', '.join(_CREDENTIAL_FIELDS)}"
        )
    fields = _CREDENTIAL_FIELDS[kind]
    for key in secret:
        if key != "kind" and key not in fields:
            raise ValidationError(
                f"credentials.{key}",
                REDACTED,
                f"is not a field of {kind} credentials; expected {', '.join(fields)}",
            )
    for key in fields:
        value = secret.get(key)
        if not isinstance(value, str) or not value:
            raise ValidationError(
                f"credentials.{key}", REDACTED, f"{kind} credentials need a non-empty string"
            )
        # A token read from a file often ends in a newline; it would break the request header.
        if _CONTROL.search(value):
            raise ValidationError(
                f"credentials.{key}", REDACTED, "must not contain control characters or newlines"
            )
    if kind == "header" and not _HEADER_NAME.match(secret["name"]):
        raise ValidationError("credentials.name", REDACTED, "is not a valid HTTP header name")
    if kind == "basic" and ":" in secret["username"]:
        raise ValidationError(
            "credentials.username",
            REDACTED,
            "must not contain ':' (basic auth joins user:password)",
        )
    return {"kind": kind, **{key: secret[key] for key in fields}}


def _connector_ids(value: Sequence[int]) -> tuple[int, ...]:
    ids = tuple(value)
    for position, connector_id in enumerate(ids):
        if connector_id in ids[:position]:
            raise ValidationError(
                "required_connector_ids", list(ids), f"connector {connector_id} is listed twice"
            )
    return ids


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def first_due(direction: Direction, interval: int, now: datetime) -> datetime:
    """When a new connection is first due: an outbound one is probed at once; an inbound one
    gets a whole interval to call in before its silence counts as a missed heartbeat."""
    return now if direction == Direction.OUTBOUND else now + timedelta(seconds=interval)


def _assign(row: Base, values: Mapping[str, Any]) -> set[str]:
    """Set the attributes; the names of those whose value changed."""
    changed = set()
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed.add(key)
    return changed


# --- database checks ---------------------------------------------------------------------------


async def _get(
    session: AsyncSession, model: type[_Row], identifier: object, kind: str, *options: ORMOption
) -> _Row:
    """The row by primary key, or NotFoundError naming `kind`.

    Always a SELECT (not the identity map), so a check run again after a race sees the
    database as it is now.
    """
    key = inspect(model).primary_key[0]
    row = await session.scalar(select(model).where(key == identifier).options(*options))
    if row is None:
        raise NotFoundError(kind, identifier)
    return row


async def _ensure_free(
    session: AsyncSession,
    id_column: InstrumentedAttribute[int],
    *key: ColumnElement[bool],
    field: str,
    value: object,
    owner: str,
    exclude: int | None = None,
) -> None:
    """Refuse `value` when another row than `exclude` already holds this unique key."""
    conditions = [*key] if exclude is None else [*key, id_column != exclude]
    if await session.scalar(select(id_column).where(*conditions).limit(1)) is not None:
        raise ValidationError(field, value, f"{value!r} is already used by another {owner}")


async def _count(session: AsyncSession, model: type[Base], *conditions: ColumnElement[bool]) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0
    )


async def _use_kind_label(session: AsyncSession, kind: str) -> str:
    label = await session.scalar(select(UseKindRow.label).where(UseKindRow.kind == kind))
    if label is None:
        known = (await session.scalars(select(UseKindRow.kind).order_by(UseKindRow.kind))).all()
        raise ValidationError(
            "kind", kind, f"{kind!r} is not a use kind; known kinds: {', '.join(known) or 'none'}"
        )
    return label


async def _get_use(session: AsyncSession, use_id: int) -> tuple[UseRow, str]:
    row = (
        await session.execute(
            select(UseRow, UseKindRow.label).join(UseKindRow).where(UseRow.id == use_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError("use", use_id)
    return row[0], row[1]


async def _no_recheck() -> None:
    return None


@asynccontextmanager
async def _saving(
    session: AsyncSession, recheck: Callable[[], Awaitable[object]] = _no_recheck
) -> AsyncIterator[None]:
    """Flush the changes made in the block inside a SAVEPOINT.

    The checks ran before, but a concurrent transaction can still take a unique key (or delete
    a referenced row) between the check and the flush. The SAVEPOINT keeps the caller's
    transaction usable, and running the checks again turns the database's refusal into the
    message the check gives; an IntegrityError they cannot explain is re-raised.
    """
    try:
        async with session.begin_nested():
            yield
    except IntegrityError:
        await recheck()
        raise


# --- use kinds ---------------------------------------------------------------------------------


async def upsert_use_kind(session: AsyncSession, *, kind: str, label: str) -> domain.UseKind:
    """Create the use kind, or give the existing one this label."""
    kind = _text("kind", kind, MAX_KEY_LENGTH)
    label = _text("label", label)
    row = await session.scalar(select(UseKindRow).where(UseKindRow.kind == kind))
    if row is None:
        try:
            async with session.begin_nested():
                session.add(UseKindRow(kind=kind, label=label))
            return domain.UseKind(kind=kind, label=label)
        except IntegrityError:
            # A concurrent transaction created it since we looked: relabel that one.
            row = await session.scalar(select(UseKindRow).where(UseKindRow.kind == kind))
            if row is None:
                raise
    async with _saving(session):
        row.label = label
    return domain.UseKind(kind=row.kind, label=row.label)


# --- consumers ---------------------------------------------------------------------------------


async def create_consumer(
    session: AsyncSession, *, external_id: str, name: str, email: str | None = None
) -> domain.Consumer:
    """Create a consumer; `external_id` (the client's own id) must be unused."""
    external_id = _text("external_id", external_id)
    name = _text("name", name)
    email = _email(email)

    async def check() -> None:
        await _ensure_free(
            session,
            ConsumerRow.id,
            ConsumerRow.external_id == external_id,
            field="external_id",
            value=external_id,
            owner="consumer",
        )

    await check()
    row = ConsumerRow(external_id=external_id, name=name, email=email, created_at=utcnow())
    async with _saving(session, check):
        session.add(row)
    return records.consumer(row)


async def update_consumer(
    session: AsyncSession,
    consumer_id: int,
    *,
    external_id: str | Unset = UNSET,
    name: str | Unset = UNSET,
    email: str | Unset | None = UNSET,
) -> domain.Consumer:
    """Change the given fields; `email=None` removes the email."""
    values: dict[str, Any] = {}
    if external_id is not UNSET:
        values["external_id"] = _text("external_id", external_id)
    if name is not UNSET:
        values["name"] = _text("name", name)
    if email is not UNSET:
        values["email"] = _email(email)

    async def check() -> ConsumerRow:
        row = await _get(session, ConsumerRow, consumer_id, "consumer")
        if "external_id" in values:
            await _ensure_free(
                session,
                ConsumerRow.id,
                ConsumerRow.external_id == values["external_id"],
                field="external_id",
                value=values["external_id"],
                owner="consumer",
                exclude=consumer_id,
            )
        return row

    row = await check()
    async with _saving(session, check):
        _assign(row, values)
    return records.consumer(row)


async def delete_consumer(session: AsyncSession, consumer_id: int) -> domain.Consumer:
    """Delete a consumer and (ON DELETE CASCADE) its connections, uses, activations, tokens."""
    row = await _get(session, ConsumerRow, consumer_id, "consumer")
    record = records.consumer(row)
    async with _saving(session):
        await session.delete(row)
    return record


# --- connectors --------------------------------------------------------------------------------


async def create_connector(
    session: AsyncSession, *, slug: str, name: str, category: str, heartbeat: Mapping[str, Any]
) -> domain.Connector:
    """Create a connector with its heartbeat template (which connections may override)."""
    slug = _text("slug", slug, MAX_KEY_LENGTH)
    name = _text("name", name)
    category = _text("category", category, MAX_KEY_LENGTH)
    template = _template(heartbeat)

    async def check() -> None:
        await _ensure_free(
            session,
            ConnectorRow.id,
            ConnectorRow.slug == slug,
            field="slug",
            value=slug,
            owner="connector",
        )

    await check()
    row = ConnectorRow(
        slug=slug, name=name, category=category, heartbeat=template, created_at=utcnow()
    )
    async with _saving(session, check):
        session.add(row)
    return records.connector(row)


async def _check_template_users(
    session: AsyncSession, connector_id: int, template: Mapping[str, Any]
) -> None:
    """Refuse a template that would leave an outbound connection of the connector unprobeable."""
    rows = await session.execute(
        select(ConnectionRow.id, ConnectionRow.name, ConnectionRow.heartbeat)
        .where(
            ConnectionRow.connector_id == connector_id,
            ConnectionRow.direction == Direction.OUTBOUND,
        )
        .order_by(ConnectionRow.id)
    )
    for connection_id, name, override in rows:
        found = _probe_problem(template, override)
        if found:
            field, problem = found
            raise ValidationError(
                f"heartbeat.{field}",
                merge(template, override).get(field),
                f"{problem} (connection {connection_id} {name!r} relies on this template)",
            )


async def update_connector(
    session: AsyncSession,
    connector_id: int,
    *,
    slug: str | Unset = UNSET,
    name: str | Unset = UNSET,
    category: str | Unset = UNSET,
    heartbeat: Mapping[str, Any] | Unset = UNSET,
) -> domain.Connector:
    """Change the given fields; a new template is checked against every outbound connection."""
    values: dict[str, Any] = {}
    if slug is not UNSET:
        values["slug"] = _text("slug", slug, MAX_KEY_LENGTH)
    if name is not UNSET:
        values["name"] = _text("name", name)
    if category is not UNSET:
        values["category"] = _text("category", category, MAX_KEY_LENGTH)
    if heartbeat is not UNSET:
        values["heartbeat"] = _template(heartbeat)

    async def check() -> ConnectorRow:
        row = await _get(session, ConnectorRow, connector_id, "connector")
        if "slug" in values:
            await _ensure_free(
                session,
                ConnectorRow.id,
                ConnectorRow.slug == values["slug"],
                field="slug",
                value=values["slug"],
                owner="connector",
                exclude=connector_id,
            )
        if "heartbeat" in values:
            await _check_template_users(session, connector_id, values["heartbeat"])
        return row

    row = await check()
    async with _saving(session, check):
        if "heartbeat" in _assign(row, values):
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
        row = await _get(session, ConnectorRow, connector_id, "connector")
        connections = await _count(
            session, ConnectionRow, ConnectionRow.connector_id == connector_id
        )
        if connections:
            them = "it" if connections == 1 else "them"
            raise ConflictError(
                "connector_id",
                connector_id,
                f"connector {row.slug!r} is used by {_plural(connections, 'connection')}; "
                f"delete or move {them} first",
            )
        syncs = await _count(
            session, SyncRequirementRow, SyncRequirementRow.connector_id == connector_id
        )
        if syncs:
            raise ConflictError(
                "connector_id",
                connector_id,
                f"connector {row.slug!r} is required by {_plural(syncs, 'sync')}; "
                "remove it from their required connectors first",
            )
        return row

    row = await check()
    record = records.connector(row)
    async with _saving(session, check):
        await session.delete(row)
    return record


# --- connections -------------------------------------------------------------------------------


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
) -> domain.Connection:
    """Create a connection, due for its first check at once (inbound: after one interval).

    `heartbeat` overrides the connector's template field by field; an outbound connection must
    end up with a URL, an inbound one takes no override (it is pushed to, not probed).
    """
    name = _text("name", name)
    interval = _interval(check_interval_seconds)
    threshold = _threshold(failure_threshold)
    override = _mapping("heartbeat", heartbeat)

    async def check() -> None:
        await _get(session, ConsumerRow, consumer_id, "consumer")
        connector = await _get(session, ConnectorRow, connector_id, "connector")
        _connection_heartbeat(direction, connector, override)
        await _ensure_free(
            session,
            ConnectionRow.id,
            ConnectionRow.consumer_id == consumer_id,
            ConnectionRow.name == name,
            field="name",
            value=name,
            owner="connection of this consumer",
        )

    await check()
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
        next_check_at=first_due(direction, interval, now),
        state_changed_at=now,
        created_at=now,
    )
    async with _saving(session, check):
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
) -> domain.Connection:
    """Change the given fields, checking the connection as it will be afterwards.

    A state change stamps `state_changed_at`; new probe settings make the connection due now.
    """
    values: dict[str, Any] = {}
    if connector_id is not UNSET:
        values["connector_id"] = connector_id
    if name is not UNSET:
        values["name"] = _text("name", name)
    if direction is not UNSET:
        values["direction"] = direction
    if state is not UNSET:
        values["state"] = state
    if check_interval_seconds is not UNSET:
        values["check_interval_seconds"] = _interval(check_interval_seconds)
    if failure_threshold is not UNSET:
        values["failure_threshold"] = _threshold(failure_threshold)
    if heartbeat is not UNSET:
        values["heartbeat"] = _mapping("heartbeat", heartbeat)

    async def check() -> ConnectionRow:
        row = await _get(session, ConnectionRow, connection_id, "connection")
        if values.keys() & {"connector_id", "direction", "heartbeat"}:
            connector = await _get(
                session, ConnectorRow, values.get("connector_id", row.connector_id), "connector"
            )
            _connection_heartbeat(
                values.get("direction", row.direction),
                connector,
                values.get("heartbeat", row.heartbeat),
            )
        if "name" in values:
            await _ensure_free(
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
    async with _saving(session, check):
        changed = _assign(row, values)
        now = utcnow()
        if "state" in changed:
            row.state_changed_at = now
        if changed & {"connector_id", "direction", "check_interval_seconds", "heartbeat"}:
            # Check the new settings promptly instead of after the old interval.
            row.next_check_at = first_due(row.direction, row.check_interval_seconds, now)
    return records.connection(row)


async def delete_connection(session: AsyncSession, connection_id: int) -> domain.Connection:
    """Delete a connection with its uses and check history (ON DELETE CASCADE)."""
    row = await _get(session, ConnectionRow, connection_id, "connection")
    record = records.connection(row)
    async with _saving(session):
        await session.delete(row)
    return record


async def set_connection_credentials(
    session: AsyncSession,
    connection_id: int,
    *,
    secret: Mapping[str, str] | None,
    key_ring: KeyRing,
) -> domain.Connection:
    """Store `secret` encrypted (write-only: nothing reads it back out); None removes it.

    Shapes: {"kind": "bearer", "token"}, {"kind": "basic", "username", "password"},
    {"kind": "header" | "query", "name", "value"}.
    """
    cleaned = None if secret is None else _secret(secret)
    row = await _get(session, ConnectionRow, connection_id, "connection")
    async with _saving(session):
        # Set through the API, so no catalog reference (env/file name) describes it any more.
        row.credentials_ref = None
        row.credentials_ciphertext = None if cleaned is None else key_ring.encrypt(cleaned)
        if row.direction == Direction.OUTBOUND:
            row.next_check_at = utcnow()  # e.g. re-authenticated after AUTH: check it now
    return records.connection(row)


async def record_inbound_heartbeat(
    session: AsyncSession, connection_id: int, *, at: datetime
) -> domain.Connection:
    """An inbound connection called in at `at`: it is up until one interval after that."""
    at = _aware("at", at)
    row = await _get(session, ConnectionRow, connection_id, "connection")
    if row.direction != Direction.INBOUND:
        raise ConflictError(
            "connection_id",
            connection_id,
            f"connection {connection_id} is outbound; it is probed, not pushed to",
        )
    async with _saving(session):
        row.status = ConnectionStatus.CONNECTED
        row.last_checked_at = row.last_success_at = at
        row.failure_reason = row.last_error = row.latency_ms = None
        row.consecutive_failures = 0
        row.next_check_at = at + timedelta(seconds=row.check_interval_seconds)
        session.add(CheckRow(connection_id=row.id, checked_at=at, success=True))
    return records.connection(row)


# --- uses --------------------------------------------------------------------------------------


async def create_use(
    session: AsyncSession, *, connection_id: int, kind: str, name: str
) -> domain.Use:
    """Create a use of a connection; `kind` must be a known use kind."""
    kind = _text("kind", kind, MAX_KEY_LENGTH)
    name = _text("name", name)

    async def check() -> str:
        await _get(session, ConnectionRow, connection_id, "connection")
        label = await _use_kind_label(session, kind)
        await _ensure_free(
            session,
            UseRow.id,
            UseRow.connection_id == connection_id,
            UseRow.kind == kind,
            UseRow.name == name,
            field="name",
            value=name,
            owner=f"{kind} use of this connection",
        )
        return label

    label = await check()
    row = UseRow(connection_id=connection_id, kind=kind, name=name, status=UseStatus.UNKNOWN)
    async with _saving(session, check):
        session.add(row)
    return records.use(row, label)


async def update_use(
    session: AsyncSession, use_id: int, *, kind: str | Unset = UNSET, name: str | Unset = UNSET
) -> domain.Use:
    """Change the kind or name of a use."""
    values: dict[str, Any] = {}
    if kind is not UNSET:
        values["kind"] = _text("kind", kind, MAX_KEY_LENGTH)
    if name is not UNSET:
        values["name"] = _text("name", name)

    async def check() -> tuple[UseRow, str]:
        row, label = await _get_use(session, use_id)
        if "kind" in values:
            label = await _use_kind_label(session, values["kind"])
        if values:
            kind_after, name_after = values.get("kind", row.kind), values.get("name", row.name)
            await _ensure_free(
                session,
                UseRow.id,
                UseRow.connection_id == row.connection_id,
                UseRow.kind == kind_after,
                UseRow.name == name_after,
                field="name",
                value=name_after,
                owner=f"{kind_after} use of this connection",
                exclude=use_id,
            )
        return row, label

    row, label = await check()
    async with _saving(session, check):
        _assign(row, values)
    return records.use(row, label)


async def delete_use(session: AsyncSession, use_id: int) -> domain.Use:
    """Delete a use."""
    row, label = await _get_use(session, use_id)
    record = records.use(row, label)
    async with _saving(session):
        await session.delete(row)
    return record


async def report_use_run(
    session: AsyncSession, use_id: int, *, success: bool, error: str | None, at: datetime
) -> domain.Use:
    """Record how a run of the use went, as reported by the app that runs it."""
    at = _aware("at", at)
    row, label = await _get_use(session, use_id)
    async with _saving(session):
        row.status = UseStatus.HEALTHY if success else UseStatus.FAILED
        row.last_run_at = at
        # The reporter's text is shown in tables and exports: keep it bounded.
        row.last_error = None if success or error is None else error[:MAX_TEXT_LENGTH]
    return records.use(row, label)


# --- syncs -------------------------------------------------------------------------------------


async def _check_connectors_exist(session: AsyncSession, ids: Sequence[int]) -> None:
    found = set(await session.scalars(select(ConnectorRow.id).where(ConnectorRow.id.in_(ids))))
    for connector_id in ids:
        if connector_id not in found:
            raise NotFoundError("connector", connector_id)


async def create_sync(
    session: AsyncSession, *, name: str, required_connector_ids: Sequence[int]
) -> domain.Sync:
    """Create a sync that needs connections to these connectors (in this order)."""
    name = _text("name", name)
    ids = _connector_ids(required_connector_ids)

    async def check() -> None:
        await _check_connectors_exist(session, ids)
        await _ensure_free(
            session, SyncRow.id, SyncRow.name == name, field="name", value=name, owner="sync"
        )

    await check()
    row = SyncRow(
        name=name,
        created_at=utcnow(),
        requirements=[
            SyncRequirementRow(connector_id=connector_id, position=position)
            for position, connector_id in enumerate(ids)
        ],
    )
    async with _saving(session, check):
        session.add(row)
    return records.sync(row)


async def update_sync(
    session: AsyncSession,
    sync_id: int,
    *,
    name: str | Unset = UNSET,
    required_connector_ids: Sequence[int] | Unset = UNSET,
) -> domain.Sync:
    """Rename the sync or replace its required connectors."""
    new_name = UNSET if name is UNSET else _text("name", name)
    ids = UNSET if required_connector_ids is UNSET else _connector_ids(required_connector_ids)

    async def check() -> SyncRow:
        row = await _get(session, SyncRow, sync_id, "sync", selectinload(SyncRow.requirements))
        if ids is not UNSET:
            await _check_connectors_exist(session, ids)
        if new_name is not UNSET:
            await _ensure_free(
                session,
                SyncRow.id,
                SyncRow.name == new_name,
                field="name",
                value=new_name,
                owner="sync",
                exclude=sync_id,
            )
        return row

    row = await check()
    async with _saving(session, check):
        if new_name is not UNSET:
            row.name = new_name
        if ids is not UNSET:
            # Keep the rows of connectors that stay (their key is (sync, connector)).
            kept = {requirement.connector_id: requirement for requirement in row.requirements}
            row.requirements = [
                kept.get(connector_id) or SyncRequirementRow(connector_id=connector_id)
                for connector_id in ids
            ]
            for position, requirement in enumerate(row.requirements):
                requirement.position = position
    return records.sync(row)


async def delete_sync(session: AsyncSession, sync_id: int) -> domain.Sync:
    """Delete a sync with its activations (ON DELETE CASCADE)."""
    row = await _get(session, SyncRow, sync_id, "sync")
    record = records.sync(row)
    async with _saving(session):
        await session.delete(row)
    return record


# --- sync activations --------------------------------------------------------------------------


async def create_sync_activation(
    session: AsyncSession, *, sync_id: int, consumer_id: int
) -> domain.SyncActivation:
    """Start a consumer's activation of a sync, with every step incomplete."""

    async def check() -> None:
        sync = await _get(session, SyncRow, sync_id, "sync")
        consumer = await _get(session, ConsumerRow, consumer_id, "consumer")
        existing = await session.scalar(
            select(SyncActivationRow.id).where(
                SyncActivationRow.sync_id == sync_id,
                SyncActivationRow.consumer_id == consumer_id,
            )
        )
        if existing is not None:
            raise ValidationError(
                "consumer_id",
                consumer_id,
                f"consumer {consumer.external_id!r} already has an activation of sync "
                f"{sync.name!r} (activation {existing})",
            )

    await check()
    now = utcnow()
    row = SyncActivationRow(
        sync_id=sync_id,
        consumer_id=consumer_id,
        created_at=now,
        updated_at=now,
        steps=[
            SyncActivationStepRow(step=step, complete=False, detail=None)
            for step in domain.SYNC_STEPS
        ],
    )
    async with _saving(session, check):
        session.add(row)
    return records.sync_activation(row)


async def update_sync_activation(
    session: AsyncSession,
    activation_id: int,
    *,
    steps: Mapping[SyncStep, tuple[bool, str | None]],
) -> domain.SyncActivation:
    """Set (complete, detail) of the given steps; the others stay as they are."""
    wanted = {
        step: (complete, _optional_text(f"steps.{step.value}.detail", detail, MAX_TEXT_LENGTH))
        for step, (complete, detail) in steps.items()
    }
    row = await _get(
        session,
        SyncActivationRow,
        activation_id,
        "sync activation",
        selectinload(SyncActivationRow.steps),
    )
    async with _saving(session):
        existing = {step_row.step: step_row for step_row in row.steps}
        for step, (complete, detail) in wanted.items():
            if step in existing:
                existing[step].complete, existing[step].detail = complete, detail
            else:  # written before every activation got all three step rows
                row.steps.append(SyncActivationStepRow(step=step, complete=complete, detail=detail))
        row.updated_at = utcnow()
    return records.sync_activation(row)


async def delete_sync_activation(
    session: AsyncSession, activation_id: int
) -> domain.SyncActivation:
    """Delete an activation with its steps (ON DELETE CASCADE)."""
    row = await _get(
        session,
        SyncActivationRow,
        activation_id,
        "sync activation",
        selectinload(SyncActivationRow.steps),
    )
    record = records.sync_activation(row)
    async with _saving(session):
        await session.delete(row)
    return record
