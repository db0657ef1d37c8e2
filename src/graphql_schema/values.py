"""The graph's leaf value types: plain results with no edges back into the graph, each built
from a store record (`from_record`)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from store import domain


@strawberry.type(description='One "Used for" entry, e.g. Hypersyncs (4).')
class UsedFor:
    kind: str
    label: str
    count: int


@strawberry.type(description="How many uses of a connection are healthy, failed or unknown.")
class InstanceHealth:
    healthy: int
    failed: int
    unknown: int
    total: int
    status: domain.Health

    @classmethod
    def from_record(cls, health: domain.InstanceHealth) -> InstanceHealth:
        return cls(
            healthy=health.healthy,
            failed=health.failed,
            unknown=health.unknown,
            total=health.total,
            status=health.status,
        )


@strawberry.type(description="A body that means failure although its status is expected.")
class FailureRule:
    reason: domain.FailureReason
    json_path: str | None
    equals: JSON | None
    body_regex: str | None
    status: list[int] = strawberry.field(description="Empty: under any status.")

    @classmethod
    def from_record(cls, rule: domain.FailureRule) -> FailureRule:
        return cls(
            reason=rule.reason,
            json_path=rule.json_path,
            equals=rule.equals,
            body_regex=rule.body_regex,
            status=list(rule.statuses),
        )


@strawberry.type(
    description="The effective heartbeat: the connector's template with overrides, its "
    "placeholders filled with the connection's values."
)
class Heartbeat:
    kind: domain.ProbeKind
    method: str
    url: str | None
    expected_status: list[int]
    timeout_seconds: float
    has_credentials: bool
    headers: JSON = strawberry.field(description="Sent with every check (never a secret).")
    body: str | None
    failure_when: list[FailureRule]


@strawberry.type(description="How many of an outage's connections fail for one reason.")
class OutageReason:
    reason: domain.FailureReason
    connections: int


@strawberry.type(description="A connector's OAuth2 app (its client secret is write-only).")
class OAuth2App:
    token_url: str
    client_id: str
    scopes: list[str]
    auth_method: str
    has_client_secret: bool


@strawberry.type(description="One heartbeat result.")
class Check:
    checked_at: datetime
    success: bool
    failure_reason: domain.FailureReason | None
    latency_ms: float | None
    http_status: int | None
    error: str | None

    @classmethod
    def from_record(cls, record: domain.Check) -> Check:
        return cls(
            checked_at=record.checked_at,
            success=record.success,
            failure_reason=record.failure_reason,
            latency_ms=record.latency_ms,
            http_status=record.http_status,
            error=record.error,
        )
