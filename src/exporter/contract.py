"""The metrics contract (docs/design.md): names, help, types, labels, and when a series exists.

The fast writer and the prometheus-client reference both read this module, so they cannot
disagree on a name or on the rule that decides whether a sample is present.
"""

from __future__ import annotations

from typing import NamedTuple

from store.domain import ConnectionState, ConnectionStatus, UseStatus


class Family(NamedTuple):
    name: str
    help: str
    type: str  # "gauge", "counter", "histogram"
    labels: tuple[str, ...]


IDENTITY = ("connection_id", "connection", "connector", "consumer")
BY_CONNECTION = ("connection_id",)

CONNECTION_UP = Family(
    "healthgraph_connection_up",
    "1 if the connection's last heartbeat succeeded, 0 if it is failing; absent while "
    "UNKNOWN, PENDING or DISABLED.",
    "gauge",
    IDENTITY,
)
LAST_CHECKED = Family(
    "healthgraph_connection_last_checked_timestamp_seconds",
    "Unix time of the connection's last check.",
    "gauge",
    IDENTITY,
)
LAST_SUCCESS = Family(
    "healthgraph_connection_last_success_timestamp_seconds",
    "Unix time of the connection's last successful check.",
    "gauge",
    BY_CONNECTION,
)
CHECK_INTERVAL = Family(
    "healthgraph_connection_check_interval_seconds",
    "Configured interval between the connection's checks.",
    "gauge",
    BY_CONNECTION,
)
CHECK_DURATION = Family(
    "healthgraph_connection_check_duration_seconds",
    "Duration of the connection's last check.",
    "gauge",
    BY_CONNECTION,
)
CONSECUTIVE_FAILURES = Family(
    "healthgraph_connection_consecutive_failures",
    "Checks of the connection that failed in a row.",
    "gauge",
    BY_CONNECTION,
)
FAILURE_REASON = Family(
    "healthgraph_connection_failure_reason",
    "1 for the reason the connection's last check failed, while it is failing.",
    "gauge",
    ("connection_id", "reason"),
)
TLS_EXPIRY = Family(
    "healthgraph_connection_tls_cert_expiry_timestamp_seconds",
    "Unix time the certificate last seen by the connection's check expires (notAfter).",
    "gauge",
    BY_CONNECTION,
)
PENDING_SINCE = Family(
    "healthgraph_connection_pending_since_timestamp_seconds",
    "Unix time the connection became PENDING; only while it is PENDING.",
    "gauge",
    BY_CONNECTION,
)
# `category` is the connector's (one value per connector, so no series of its own): it lets
# Prometheus count by Unified API, e.g. count by (category) (healthgraph_connection_info).
CONNECTION_INFO = Family(
    "healthgraph_connection_info",
    "Always 1; the connection's names, lifecycle state and connector category, to join on "
    "connection_id.",
    "gauge",
    (
        "connection_id",
        "connection",
        "connector",
        "consumer",
        "consumer_id",
        "direction",
        "state",
        "category",
    ),
)
USE_UP = Family(
    "healthgraph_use_up",
    "1 if the use's last run succeeded, 0 if it failed; absent until it reports.",
    "gauge",
    ("use_id", "use", "kind", "connection_id"),
)
CONNECTIONS = Family(
    "healthgraph_connections",
    "Connections by lifecycle state.",
    "gauge",
    ("state",),
)
CONSUMERS = Family("healthgraph_consumers", "Consumers.", "gauge", ())
CONSUMERS_ACTIVE = Family(
    "healthgraph_consumers_active",
    "Consumers with at least one ACTIVE connection.",
    "gauge",
    (),
)
SYNC_ACTIVATIONS = Family(
    "healthgraph_sync_activations",
    "Sync activations by whether they are active.",
    "gauge",
    ("sync", "active"),
)
SYNC_ACTIVATION_RATIO = Family(
    "healthgraph_sync_activation_ratio",
    "Share of the sync's activations that are active (0 without activations).",
    "gauge",
    ("sync",),
)
SCHEDULER_OVERDUE = Family(
    "healthgraph_scheduler_overdue_connections",
    "Probed connections past their due time and not yet checked.",
    "gauge",
    (),
)
SCHEDULER_LAG = Family(
    "healthgraph_scheduler_lag_seconds",
    "How long the most overdue probed connection has been waiting for its check.",
    "gauge",
    (),
)

# Connector names need not be unique; the slug is, so it keeps one series per connector. The
# `connector` label is the name, as on the per-connection families, so Alertmanager can inhibit
# a connector's connection alerts on it.
BY_CONNECTOR = ("connector_slug", "connector")
CONNECTOR_OUTAGE = Family(
    "healthgraph_connector_outage",
    "1 while the connector is in outage (enough of its connections fail at once for reasons "
    "other than AUTH or PERMISSION), else 0.",
    "gauge",
    BY_CONNECTOR,
)
CONNECTOR_MUTED = Family(
    "healthgraph_connector_muted",
    "1 while a mute or maintenance window of the connector holds; absent otherwise.",
    "gauge",
    BY_CONNECTOR,
)
CONNECTION_MUTED = Family(
    "healthgraph_connection_muted",
    "1 while the connection is muted (by its own mute, its connector's or its consumer's); "
    "absent otherwise.",
    "gauge",
    BY_CONNECTION,
)
CREDENTIALS_EXPIRY = Family(
    "healthgraph_connection_credentials_expiry_timestamp_seconds",
    "Unix time the connection's OAuth2 refresh token expires, where the provider tells it.",
    "gauge",
    BY_CONNECTION,
)
WEBHOOK_PENDING = Family(
    "healthgraph_webhook_pending_events",
    "Webhook events not yet dispatched plus deliveries to enabled endpoints not yet done.",
    "gauge",
    (),
)
WEBHOOK_OLDEST_PENDING_AGE = Family(
    "healthgraph_webhook_oldest_pending_age_seconds",
    "Age of the oldest webhook event or delivery still pending (0 when none is).",
    "gauge",
    (),
)

STORE_FAMILIES = (
    CONNECTION_UP,
    LAST_CHECKED,
    LAST_SUCCESS,
    CHECK_INTERVAL,
    CHECK_DURATION,
    CONSECUTIVE_FAILURES,
    FAILURE_REASON,
    TLS_EXPIRY,
    PENDING_SINCE,
    CONNECTION_INFO,
    USE_UP,
    CONNECTIONS,
    CONSUMERS,
    CONSUMERS_ACTIVE,
    SYNC_ACTIVATIONS,
    SYNC_ACTIVATION_RATIO,
    SCHEDULER_OVERDUE,
    SCHEDULER_LAG,
    CONNECTOR_OUTAGE,
    CONNECTOR_MUTED,
    CONNECTION_MUTED,
    CREDENTIALS_EXPIRY,
    WEBHOOK_PENDING,
    WEBHOOK_OLDEST_PENDING_AGE,
)
"""Read from the store at scrape time, in exposition order."""

# Self-metrics, kept in a prometheus-client registry (see exporter.self_metrics).
CHECKS_TOTAL = "healthgraph_checks_total"
PROBE_DURATION = "healthgraph_probe_duration_seconds"
BUILD_INFO = "healthgraph_build_info"
OAUTH_REFRESHES_TOTAL = "healthgraph_oauth_refreshes_total"
OAUTH_REFRESH_RESULTS = (
    "ok",  # a new access token, saved before use
    "dead_grant",  # invalid_grant / invalid_client / unauthorized_client: reconnect
    "timeout",
    "rate_limited",
    "http_status",  # the token endpoint answered another error (5xx, 4xx)
    "connect",
    "dns",
    "tls",
    "blocked",
    "auth",
)
"""The `result` label of healthgraph_oauth_refreshes_total: "ok", "dead_grant", or the failure
reason of a refresh that changed nothing, lower-cased."""
WEBHOOK_DELIVERIES_TOTAL = "healthgraph_webhook_deliveries_total"
WEBHOOK_DELIVERY_RESULTS = (
    "delivered",  # answered with a 2xx
    "failed",  # not delivered this time; tried again later
    "gave_up",  # not delivered for a day: no more tries
)

# --- when a series exists ------------------------------------------------------------------------

_MONITORED = frozenset({ConnectionState.ACTIVE.value, ConnectionState.FAILED.value})
_FAILING = ConnectionStatus.CONNECTION_FAILURE.value
_UNKNOWN = ConnectionStatus.UNKNOWN.value
_PENDING = ConnectionState.PENDING.value
_FAILED = ConnectionState.FAILED.value


def connection_up(state: str, status: str) -> int | None:
    """1 connected, 0 failing (heartbeat or authentication), None (absent) when not known.

    PENDING and DISABLED connections are not checked, UNKNOWN ones never were.
    """
    if state not in _MONITORED or status == _UNKNOWN:
        return None
    return 0 if status == _FAILING or state == _FAILED else 1


def failing_reason(state: str, failure_reason: str | None) -> str | None:
    """The reason to publish: the last check's, while it fails and the connection is checked."""
    return failure_reason if state in _MONITORED else None


def pending_since(state: str, state_changed: float) -> float | None:
    return state_changed if state == _PENDING else None


USE_UP_VALUES = {UseStatus.HEALTHY.value: 1, UseStatus.FAILED.value: 0}
"""Use status → healthgraph_use_up; UNKNOWN is absent."""
