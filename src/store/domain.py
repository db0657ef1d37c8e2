"""Domain vocabulary: enums and frozen records shared by every layer.

Records are plain values. ORM rows never leave `store`; queries turn them into these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Direction(enum.StrEnum):
    OUTBOUND = "OUTBOUND"  # we are connected to it
    INBOUND = "INBOUND"  # it is connected to us


class ConnectionState(enum.StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    DISABLED = "DISABLED"


class ConnectionStatus(enum.StrEnum):
    CONNECTED = "CONNECTED"
    CONNECTION_FAILURE = "CONNECTION_FAILURE"
    UNKNOWN = "UNKNOWN"


class UseStatus(enum.StrEnum):
    HEALTHY = "HEALTHY"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


class Health(enum.StrEnum):
    """Rollup over the parts of a consumer, connector or connection."""

    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


class SyncStep(enum.StrEnum):
    CONNECTION = "CONNECTION"
    MAPPING = "MAPPING"
    CONFIGURATION = "CONFIGURATION"


class FailureReason(enum.StrEnum):
    AUTH = "AUTH"
    PERMISSION = "PERMISSION"
    RATE_LIMITED = "RATE_LIMITED"
    HTTP_STATUS = "HTTP_STATUS"
    TIMEOUT = "TIMEOUT"
    DNS = "DNS"
    CONNECT = "CONNECT"
    TLS = "TLS"
    ASSERTION = "ASSERTION"
    BLOCKED = "BLOCKED"
    MISSED_HEARTBEAT = "MISSED_HEARTBEAT"


class IssueCode(enum.StrEnum):
    CONNECTION_FAILED = "CONNECTION_FAILED"
    NOTHING = "NOTHING"
    NO_CONNECTION = "NO_CONNECTION"
    MAPPING_INCOMPLETE = "MAPPING_INCOMPLETE"
    CONFIGURATION_INCOMPLETE = "CONFIGURATION_INCOMPLETE"


class TokenScope(enum.StrEnum):
    READ = "READ"
    WRITE = "WRITE"
    ADMIN = "ADMIN"


class ProbeKind(enum.StrEnum):
    HTTP = "http"
    TCP = "tcp"
    TLS = "tls"


class WebhookEventType(enum.StrEnum):
    """What a webhook tells; the values are the `type` of the JSON sent."""

    CONNECTION_FAILED = "connection.failed"
    CONNECTION_RECOVERED = "connection.recovered"
    CONNECTION_AUTH_FAILED = "connection.auth_failed"
    USE_FAILED = "use.failed"
    USE_RECOVERED = "use.recovered"
    CONNECTOR_OUTAGE_STARTED = "connector.outage_started"
    CONNECTOR_OUTAGE_ENDED = "connector.outage_ended"


class DeliveryState(enum.StrEnum):
    PENDING = "PENDING"  # not yet answered with a 2xx; retried with backoff
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # given up (too old, or its endpoint was disabled)


class MuteScope(enum.StrEnum):
    CONNECTION = "CONNECTION"
    CONNECTOR = "CONNECTOR"
    CONSUMER = "CONSUMER"


SYNC_STEPS: tuple[SyncStep, ...] = (SyncStep.CONNECTION, SyncStep.MAPPING, SyncStep.CONFIGURATION)


@dataclass(frozen=True, slots=True)
class FailureRule:
    """A body that means failure although its status is expected (Slack's `auth.test` answers
    200 with `"ok": false`): a JSON path equal to a value, or a regex, under some statuses."""

    reason: FailureReason
    json_path: str | None = None
    equals: Any = None
    body_regex: str | None = None
    statuses: tuple[int, ...] = ()  # empty: any status


@dataclass(frozen=True, slots=True)
class HeartbeatSpec:
    """How a connection is checked: the connector template with the connection's overrides,
    its placeholders filled in."""

    kind: ProbeKind = ProbeKind.HTTP
    method: str = "GET"
    url: str | None = None
    expected_status: tuple[int, ...] = (200,)
    timeout_seconds: float = 10.0
    body_regex: str | None = None
    json_path: str | None = None
    json_equals: Any = None
    headers: tuple[tuple[str, str], ...] = ()  # non-secret; credentials add their own
    body: str | None = None  # the request body, for POST, PUT and PATCH
    body_is_json: bool = False  # sent as application/json
    failure_when: tuple[FailureRule, ...] = ()


@dataclass(frozen=True, slots=True)
class UseKind:
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class Consumer:
    id: int
    external_id: str
    name: str
    email: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Connector:
    id: int
    slug: str
    name: str
    category: str
    heartbeat: dict[str, Any]
    template: str | None = None  # the library template it was made from
    # Its OAuth2 app without the secret: token_url, client_id, scopes, auth_method.
    oauth2: dict[str, Any] | None = None
    has_client_secret: bool = False


@dataclass(frozen=True, slots=True)
class Connection:
    id: int
    consumer_id: int
    connector_id: int
    name: str
    direction: Direction
    state: ConnectionState
    status: ConnectionStatus
    last_checked_at: datetime | None
    last_success_at: datetime | None
    failure_reason: FailureReason | None
    last_error: str | None
    latency_ms: float | None
    consecutive_failures: int
    check_interval_seconds: int
    failure_threshold: int
    next_check_at: datetime | None
    state_changed_at: datetime
    heartbeat: dict[str, Any]
    has_credentials: bool
    created_at: datetime
    # Values of the heartbeat's {params.NAME} placeholders.
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Use:
    id: int
    connection_id: int
    kind: str
    name: str
    status: UseStatus
    last_run_at: datetime | None
    last_error: str | None
    # Last, after the columns of its own table: see `store.records.use_of_columns`.
    kind_label: str


@dataclass(frozen=True, slots=True)
class Sync:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class StepState:
    step: SyncStep
    complete: bool
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class SyncActivation:
    id: int
    sync_id: int
    consumer_id: int
    steps: tuple[StepState, ...]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Check:
    id: int
    connection_id: int
    checked_at: datetime
    success: bool
    failure_reason: FailureReason | None
    latency_ms: float | None
    http_status: int | None
    error: str | None


# Derived values: computed in SQL, never stored.


@dataclass(frozen=True, slots=True)
class UsedFor:
    """One row of the "Used for" column: "Hypersyncs (4)"."""

    kind: str
    label: str
    count: int

    def __str__(self) -> str:
        return f"{self.label} ({self.count})"


@dataclass(frozen=True, slots=True)
class InstanceHealth:
    healthy: int = 0
    failed: int = 0
    unknown: int = 0

    @property
    def total(self) -> int:
        return self.healthy + self.failed + self.unknown

    @property
    def status(self) -> Health:
        if self.failed and self.failed == self.total:
            return Health.DOWN
        if self.failed:
            return Health.DEGRADED
        if self.healthy:
            return Health.HEALTHY
        return Health.UNKNOWN


def health_rollup(total: int, failed: int, unknown: int, with_failing_uses: int) -> Health:
    """Health of a group of connections (a consumer's, a connector's) from their counts."""
    if total == 0:
        return Health.UNKNOWN
    if failed == total:
        return Health.DOWN
    if failed or with_failing_uses:
        return Health.DEGRADED
    if unknown == total:
        return Health.UNKNOWN
    return Health.HEALTHY


@dataclass(frozen=True, slots=True)
class UseSummary:
    used_for: tuple[UsedFor, ...] = ()
    instance_health: InstanceHealth = InstanceHealth()


@dataclass(frozen=True, slots=True)
class Issue:
    """One entry of the issue column; names the connector for CONNECTION_FAILED/NO_CONNECTION."""

    code: IssueCode
    connector_id: int | None = None
    connector_name: str | None = None

    @property
    def message(self) -> str:
        match self.code:
            case IssueCode.CONNECTION_FAILED:
                return f"Connection failed ({self.connector_name})"
            case IssueCode.NOTHING:
                return "Nothing: no connection process was initiated"
            case IssueCode.NO_CONNECTION:
                suffix = f" ({self.connector_name})" if self.connector_name else ""
                return f"No connection: required connections are missing{suffix}"
            case IssueCode.MAPPING_INCOMPLETE:
                return "Mapping incomplete: some mappings were not correctly set"
            case IssueCode.CONFIGURATION_INCOMPLETE:
                return "Configuration incomplete: the sync was not activated"


@dataclass(frozen=True, slots=True)
class StatusCounts:
    connected: int = 0
    connection_failure: int = 0
    unknown: int = 0


@dataclass(frozen=True, slots=True)
class ConnectorUsage:
    connector: Connector
    active_connections: int
    pending_connections: int
    failed_connections: int


@dataclass(frozen=True, slots=True)
class CategoryUsage:
    """One Unified API (a connector category) summed up: its connectors, their connections by
    state, and the consumers with an ACTIVE connection to any of them (each counted once)."""

    category: str
    connectors: int
    active_connections: int
    pending_connections: int
    failed_connections: int
    active_consumers: int


@dataclass(frozen=True, slots=True)
class StepFunnelEntry:
    step: SyncStep
    complete: int
    incomplete: int


@dataclass(frozen=True, slots=True)
class SyncUsage:
    sync: Sync
    activations: int
    active_activations: int
    step_funnel: tuple[StepFunnelEntry, ...]

    @property
    def activation_rate(self) -> float:
        return self.active_activations / self.activations if self.activations else 0.0


@dataclass(frozen=True, slots=True)
class Overview:
    consumers: int
    active_consumers: int
    active_connections: int
    pending_connections: int
    failed_connections: int
    disabled_connections: int
    connections_by_status: StatusCounts
    connectors: tuple[ConnectorUsage, ...]
    syncs: tuple[SyncUsage, ...] = field(default=())
    # By category name; None unless asked for (`store.queries.overview(categories=True)`).
    categories: tuple[CategoryUsage, ...] | None = None

    @property
    def active_syncs(self) -> int:
        return sum(s.active_activations for s in self.syncs)


# Scheduling: what a check found, and what changed because of it.


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One heartbeat's result as the store records it (probes convert their results to this).

    `error` is short and already free of credentials; a failure always names its reason.
    """

    success: bool
    checked_at: datetime
    latency_ms: float | None = None
    failure_reason: FailureReason | None = None
    error: str | None = None
    http_status: int | None = None
    tls_cert_expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.checked_at.tzinfo is None:
            raise ValueError("checked_at must be an aware datetime")
        if self.success != (self.failure_reason is None):
            raise ValueError("an outcome has a failure_reason exactly when it is not a success")


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A connection whose health status or lifecycle state a check changed (for subscribers)."""

    connection_id: int
    old_status: ConnectionStatus
    new_status: ConnectionStatus
    old_state: ConnectionState
    new_state: ConnectionState


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: int
    url: str
    events: tuple[WebhookEventType, ...] | None  # None: every event, present and future
    description: str | None
    enabled: bool
    disabled_reason: str | None
    consumer_id: int | None  # set: only that consumer's events (made with a consumer's token)
    failing_since: datetime | None
    last_delivered_at: datetime | None
    created_at: datetime
    secret_ref: dict[str, Any] | None = None  # the catalog's {secret_env: X}, never the secret


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event on its way to one endpoint."""

    id: int
    endpoint_id: int
    event_id: int
    event_type: WebhookEventType
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutageReason:
    reason: FailureReason
    connections: int


@dataclass(frozen=True, slots=True)
class ConnectorOutage:
    """Enough of a connector's connections failing at once, for reasons other than their own
    credentials, that the provider is down, not each customer."""

    connector_id: int
    started_at: datetime
    ended_at: datetime | None
    failing_connections: int
    total_connections: int
    reasons: tuple[OutageReason, ...]


@dataclass(frozen=True, slots=True)
class Mute:
    id: int
    scope: MuteScope
    target_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    from_catalog: bool  # a maintenance window of the catalog, not a mute set over the API


@dataclass(frozen=True, slots=True)
class MuteState:
    """What silences a connection, connector or consumer now: the mute that ends last."""

    muted_until: datetime
    reason: str
