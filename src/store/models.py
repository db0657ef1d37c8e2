"""SQLAlchemy 2 ORM rows. They stay inside `store`; other layers see `store.domain` records."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship

from store.domain import (
    SYNC_STEPS,
    ConnectionState,
    ConnectionStatus,
    DeliveryState,
    Direction,
    FailureReason,
    MuteScope,
    SyncStep,
    TokenScope,
    UseStatus,
)
from store.validation import MAX_EMAIL_LENGTH, MAX_KEY_LENGTH, MAX_NAME_LENGTH

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} would be ambiguous; pass an aware UTC one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        # A page of connections reads five timestamps a row: one function per value instead of
        # TypeDecorator's two and the dialect's, with the same result.
        parse = self.impl_instance.result_processor(dialect, coltype)
        if dialect.name != "sqlite" or parse is None:
            return super().result_processor(dialect, coltype)

        def naive_text_to_utc(value: Any) -> datetime | None:
            if value is None:
                return None
            parsed = parse(value)
            if not isinstance(parsed, datetime):
                return None
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

        return naive_text_to_utc


def _enum(enum_class: type[Any]) -> Enum:
    # Plain VARCHAR + CHECK: portable, and adding a value needs no ALTER TYPE on PostgreSQL.
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=True,
        length=32,
        name=enum_class.__name__.lower(),
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class UseKindRow(Base):
    __tablename__ = "use_kinds"

    kind: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    label: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))


class ConsumerRow(Base):
    __tablename__ = "consumers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), index=True)
    email: Mapped[str | None] = mapped_column(String(MAX_EMAIL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    connections: Mapped[list[ConnectionRow]] = relationship(
        back_populates="consumer", cascade="all, delete-orphan", passive_deletes=True
    )


class ConnectorRow(Base):
    __tablename__ = "connectors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    category: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), index=True)
    heartbeat: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The library template it was made from (store/library), for export and display.
    template: Mapped[str | None] = mapped_column(String(MAX_KEY_LENGTH))
    # Its OAuth2 app: token_url, client_id, scopes, auth_method (no secret: that is below).
    oauth2: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The app's client secret, only ever stored Fernet-encrypted, and the catalog reference it
    # was read from ({client_secret_env: X} or {client_secret_file: path}).
    oauth2_client_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    oauth2_client_secret_ref: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ConnectionRow(Base):
    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("consumer_id", "name"),
        # The overview's counts per connector, state and status from one index scan.
        Index("ix_connections_connector_state_status", "connector_id", "state", "status"),
        Index("ix_connections_state_status", "state", "status"),
        # ACTIVE connections in consumer order: active consumers as one distinct count.
        Index("ix_connections_state_consumer", "state", "consumer_id"),
        # "Has this consumer an ACTIVE connection (to this connector)?" — the EXISTS behind
        # consumer activity, the issue columns and sync activation. Without it SQLite, which
        # keeps no statistics, walks every ACTIVE connection per consumer (minutes at 100k).
        Index("ix_connections_consumer_state_connector", "consumer_id", "state", "connector_id"),
        # A consumer's failed connections (the issue column, the CSV export) from the index
        # alone: FAILED, or not DISABLED with status CONNECTION_FAILURE.
        Index(
            "ix_connections_consumer_state_status_connector",
            "consumer_id",
            "state",
            "status",
            "connector_id",
        ),
        # The scheduler's scans: outbound ACTIVE/FAILED due for a probe, inbound ACTIVE past
        # its deadline. Equality on direction and state, then a range on the due time.
        Index("ix_connections_due", "direction", "state", "next_check_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consumer_id: Mapped[int] = mapped_column(ForeignKey("consumers.id", ondelete="CASCADE"))
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    direction: Mapped[Direction] = mapped_column(_enum(Direction), default=Direction.OUTBOUND)
    state: Mapped[ConnectionState] = mapped_column(
        _enum(ConnectionState), default=ConnectionState.PENDING
    )
    status: Mapped[ConnectionStatus] = mapped_column(
        _enum(ConnectionStatus), default=ConnectionStatus.UNKNOWN
    )
    last_checked_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    failure_reason: Mapped[FailureReason | None] = mapped_column(_enum(FailureReason))
    last_error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    check_interval_seconds: Mapped[int] = mapped_column(Integer, default=86400)
    failure_threshold: Mapped[int] = mapped_column(Integer, default=1)
    # The scheduler's due-time column: a partial scan of this index finds what is due.
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Values of the heartbeat's {params.NAME} placeholders (a tenant id, an instance URL).
    params: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # Non-secret reference as written in the catalog (e.g. {kind: bearer, token_env: X});
    # the secret itself is only ever stored Fernet-encrypted.
    credentials_ref: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    credentials_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # A worker's claim on the next check: until the lease expires no other worker takes it,
    # and only the claimant may write the result (see store.scheduling).
    lease_expires_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    # notAfter of the certificate the last TLS/HTTPS check saw.
    tls_cert_expires_at: Mapped[datetime | None]
    # Whether webhook subscribers were last told this connection is failing: a recovery is
    # told only after a failure was, and the end of an outage or a mute tells what changed
    # meanwhile (store.webhooks.dispatch).
    announced_failing: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    consumer: Mapped[ConsumerRow] = relationship(back_populates="connections")
    connector: Mapped[ConnectorRow] = relationship()
    uses: Mapped[list[UseRow]] = relationship(
        back_populates="connection", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def has_credentials(self) -> bool:
        """As the `has_credentials` column the hot reads select (`records.columns`)."""
        return self.credentials_ciphertext is not None


class OAuthGrantRow(Base):
    """An OAuth2 connection's tokens, apart from the connection row the scheduler writes.

    Rotation safety lives here: `generation` counts the refresh tokens the row has held, and a
    refresh is done by whoever holds the refresh lease (`refreshing_by` until
    `refreshing_until`), taken and given back in short transactions of their own, so no
    transaction stays open across the token endpoint's answer (see store.oauth).
    """

    __tablename__ = "oauth_grants"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    grant_type: Mapped[str] = mapped_column(String(32))
    refresh_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime | None]
    refresh_token_expires_at: Mapped[datetime | None]
    # SHA-256 of the catalog's seed refresh token: a re-apply of the same seed must never put
    # it back over a token rotated since.
    seed_digest: Mapped[str | None] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None]
    refreshing_by: Mapped[str | None] = mapped_column(String(64))
    refreshing_until: Mapped[datetime | None]
    # Set when the provider refused the grant itself (invalid_grant…): no refresh is tried
    # again until new credentials are set.
    dead_at: Mapped[datetime | None]
    dead_reason: Mapped[str | None] = mapped_column(Text)


class UseRow(Base):
    __tablename__ = "uses"
    __table_args__ = (UniqueConstraint("connection_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(ForeignKey("use_kinds.kind", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    status: Mapped[UseStatus] = mapped_column(_enum(UseStatus), default=UseStatus.UNKNOWN)
    last_run_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    connection: Mapped[ConnectionRow] = relationship(back_populates="uses")


class SyncRow(Base):
    __tablename__ = "syncs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    requirements: Mapped[list[SyncRequirementRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="SyncRequirementRow.position"
    )


class SyncRequirementRow(Base):
    __tablename__ = "sync_requirements"

    sync_id: Mapped[int] = mapped_column(
        ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True
    )
    connector_id: Mapped[int] = mapped_column(
        ForeignKey("connectors.id", ondelete="RESTRICT"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


class SyncActivationRow(Base):
    __tablename__ = "sync_activations"
    __table_args__ = (
        UniqueConstraint("sync_id", "consumer_id"),
        # The overview's per-sync counts and funnel, and its active check, read only these
        # three columns: this index answers them without touching the table.
        Index(
            "ix_sync_activations_sync_steps_consumer", "sync_id", "completed_steps", "consumer_id"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"))
    consumer_id: Mapped[int] = mapped_column(
        ForeignKey("consumers.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Denormalised from `steps` (bit i set ⇔ SYNC_STEPS[i] has a complete row), so "every
    # step complete" and the step funnel read one column of this table instead of joining
    # three step rows per activation (the overview and the CSV by syncs at 100k). Kept by
    # the flush hook below, the one writer; `derived.completed_steps_from_rows` is the
    # definition it must always equal (tested after every write path).
    completed_steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    steps: Mapped[list[SyncActivationStepRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )


class SyncActivationStepRow(Base):
    __tablename__ = "sync_activation_steps"

    activation_id: Mapped[int] = mapped_column(
        ForeignKey("sync_activations.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[SyncStep] = mapped_column(_enum(SyncStep), primary_key=True)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[str | None] = mapped_column(Text)


def step_bit(step: SyncStep) -> int:
    """The bit of `step` in `SyncActivationRow.completed_steps`."""
    return 1 << SYNC_STEPS.index(step)


ALL_STEPS_COMPLETE = (1 << len(SYNC_STEPS)) - 1


def completed_steps_mask(steps: Iterable[SyncActivationStepRow]) -> int:
    """`completed_steps` for these step rows: a missing row counts as incomplete."""
    mask = 0
    for row in steps:
        if row.complete:
            mask |= step_bit(row.step)
    return mask


@event.listens_for(SyncActivationRow, "before_insert")
@event.listens_for(SyncActivationRow, "before_update")
def _store_completed_steps(_mapper: Mapper[Any], _connection: Connection, row: Any) -> None:
    """Recompute `completed_steps` whenever an activation is flushed.

    Every writer of steps (commands, catalog apply, test factories) goes through the ORM and
    touches its activation (`updated_at`, or the `steps` collection), so it is flushed here.
    """
    if "steps" in inspect(row).unloaded:
        # Loading them here would be lazy I/O inside a flush; nobody changed them unloaded.
        return
    row.completed_steps = completed_steps_mask(row.steps)


class CheckRow(Base):
    __tablename__ = "checks"
    __table_args__ = (Index("ix_checks_connection_checked", "connection_id", "checked_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    checked_at: Mapped[datetime] = mapped_column(index=True)
    success: Mapped[bool] = mapped_column(Boolean)
    failure_reason: Mapped[FailureReason | None] = mapped_column(_enum(FailureReason))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), default="")
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    scope: Mapped[TokenScope] = mapped_column(_enum(TokenScope))
    consumer_id: Mapped[int | None] = mapped_column(ForeignKey("consumers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


_ID = BigInteger().with_variant(Integer, "sqlite")


class WebhookEndpointRow(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # Event types sent; NULL: all of them, including types added later.
    events: Mapped[list[str] | None] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # An endpoint made with a consumer's token hears that consumer's events only.
    consumer_id: Mapped[int | None] = mapped_column(
        ForeignKey("consumers.id", ondelete="CASCADE"), index=True
    )
    # The signing secret (whsec_...), only ever stored Fernet-encrypted. After a rotation the
    # previous one keeps signing beside it for a while, so receivers can switch over.
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None]
    # The catalog's reference ({secret_env: X}) for an endpoint the catalog made.
    secret_ref: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    failing_since: Mapped[datetime | None]
    last_delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookEventRow(Base):
    """The outbox: one row per transition, written in the transaction that made it.

    `dispatched_at` is NULL until the dispatcher has decided whom to tell (no one when muted,
    held by an outage or already told) and written a delivery per endpoint. No foreign keys:
    an event outlives the connection it is about, and `data` is its snapshot.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_dispatch", "dispatched_at", "id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    connection_id: Mapped[int | None] = mapped_column(Integer)
    connector_id: Mapped[int | None] = mapped_column(Integer)
    consumer_id: Mapped[int | None] = mapped_column(Integer)
    use_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dispatched_at: Mapped[datetime | None]
    # Why nobody was told: muted, outage, already_told, not_told.
    suppressed_reason: Mapped[str | None] = mapped_column(String(32))


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The sender's scan: what is pending and due, oldest first.
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    state: Mapped[DeliveryState] = mapped_column(
        _enum(DeliveryState), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A sender's claim, as on connections: until the lease expires no other sender takes it.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]


class ConnectorOutageRow(Base):
    """One outage of a connector, open while `ended_at` is NULL."""

    __tablename__ = "connector_outages"
    __table_args__ = (Index("ix_connector_outages_connector", "connector_id", "ended_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    failing_connections: Mapped[int] = mapped_column(Integer)
    total_connections: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)  # reason -> connections


class MuteRow(Base):
    """A mute (over the API) or a maintenance window (from the catalog) of one connection,
    connector or consumer, from `starts_at` until `ends_at`."""

    __tablename__ = "mutes"
    __table_args__ = (Index("ix_mutes_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[MuteScope] = mapped_column(_enum(MuteScope))
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    connector_id: Mapped[int | None] = mapped_column(
        ForeignKey("connectors.id", ondelete="CASCADE"), index=True
    )
    consumer_id: Mapped[int | None] = mapped_column(
        ForeignKey("consumers.id", ondelete="CASCADE"), index=True
    )
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    from_catalog: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set once the dispatcher has told what changed while it held (store.webhooks.dispatch).
    settled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
