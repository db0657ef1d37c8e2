"""The domain enums, exposed once under their GraphQL names."""

from __future__ import annotations

import strawberry

from store import credentials, domain

ConnectionState = strawberry.enum(domain.ConnectionState, name="ConnectionState")
ConnectionStatus = strawberry.enum(domain.ConnectionStatus, name="ConnectionStatus")
Direction = strawberry.enum(domain.Direction, name="Direction")
UseStatus = strawberry.enum(domain.UseStatus, name="UseStatus")
Health = strawberry.enum(domain.Health, name="Health")
SyncStep = strawberry.enum(domain.SyncStep, name="SyncStep")
FailureReason = strawberry.enum(domain.FailureReason, name="FailureReason")
IssueCode = strawberry.enum(domain.IssueCode, name="IssueCode")
ProbeKind = strawberry.enum(domain.ProbeKind, name="ProbeKind")
TokenScope = strawberry.enum(domain.TokenScope, name="TokenScope")
CredentialKind = strawberry.enum(credentials.CredentialKind, name="CredentialKind")
WebhookEventType = strawberry.enum(
    domain.WebhookEventType,
    name="WebhookEventType",
    description="What a webhook tells; CONNECTION_FAILED is sent as type `connection.failed`, "
    "CONNECTOR_OUTAGE_STARTED as `connector.outage_started`, and so on.",
)
DeliveryState = strawberry.enum(domain.DeliveryState, name="DeliveryState")
