"""The inputs of the catalog mutations."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from graphql_schema import enums  # noqa: F401 - registers the enums with Strawberry
from graphql_schema.writes import given
from store import domain
from store.credentials import CREDENTIAL_FIELDS, CredentialKind
from store.validation import DEFAULT_CHECK_INTERVAL_SECONDS, DEFAULT_FAILURE_THRESHOLD


@strawberry.input(description="Heartbeat fields; on a connection they override the template.")
class HeartbeatInput:
    kind: domain.ProbeKind | None = strawberry.UNSET
    method: str | None = strawberry.UNSET
    url: str | None = strawberry.UNSET
    expected_status: list[int] | None = strawberry.UNSET
    timeout_seconds: float | None = strawberry.UNSET
    body_regex: str | None = strawberry.UNSET
    json_path: str | None = strawberry.UNSET
    json_equals: JSON | None = strawberry.UNSET

    def to_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in given(self).items() if v is not None}
        if isinstance(fields.get("kind"), domain.ProbeKind):
            fields["kind"] = fields["kind"].value
        return fields


@strawberry.input
class CreateConsumerInput:
    external_id: str
    name: str
    email: str | None = None


@strawberry.input
class UpdateConsumerInput:
    external_id: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET


@strawberry.input
class CreateConnectorInput:
    slug: str
    name: str
    category: str
    heartbeat: HeartbeatInput | None = None


@strawberry.input
class UpdateConnectorInput:
    slug: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    category: str | None = strawberry.UNSET
    heartbeat: HeartbeatInput | None = strawberry.UNSET


@strawberry.input
class CreateConnectionInput:
    consumer_id: strawberry.ID
    connector_id: strawberry.ID
    name: str
    direction: domain.Direction = domain.Direction.OUTBOUND
    state: domain.ConnectionState = domain.ConnectionState.ACTIVE
    check_interval_seconds: int = DEFAULT_CHECK_INTERVAL_SECONDS
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    heartbeat: HeartbeatInput | None = None


@strawberry.input
class UpdateConnectionInput:
    connector_id: strawberry.ID | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    direction: domain.Direction | None = strawberry.UNSET
    state: domain.ConnectionState | None = strawberry.UNSET
    check_interval_seconds: int | None = strawberry.UNSET
    failure_threshold: int | None = strawberry.UNSET
    heartbeat: HeartbeatInput | None = strawberry.UNSET


@strawberry.enum(description="How an OAuth2 connection gets its access tokens.")
class OAuth2Grant(enum.Enum):
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type, not a secret
    CLIENT_CREDENTIALS = "client_credentials"


@strawberry.input(
    description="Write-only: nothing ever reads these back. Which fields a kind needs: "
    "bearer token; basic username, password; header and query name, value; oauth2 a "
    "refreshToken (optionally the current accessToken and when it expires), or grant "
    "CLIENT_CREDENTIALS and nothing else (the connector's OAuth2 app holds the client)."
)
class CredentialsInput:
    kind: CredentialKind
    token: str | None = None
    username: str | None = None
    password: str | None = None
    name: str | None = None
    value: str | None = None
    grant: OAuth2Grant | None = None
    refresh_token: str | None = None
    access_token: str | None = None
    access_token_expires_at: datetime | None = None

    def to_secret(self) -> dict[str, str]:
        """The fields given, as the store's credential shape (`store.credentials`) names them."""
        secret = {"kind": self.kind.value}
        for field in CREDENTIAL_FIELDS:
            value = getattr(self, field)
            if isinstance(value, OAuth2Grant):
                value = value.value
            elif isinstance(value, datetime):
                value = value.isoformat()
            if value is not None:
                secret[field] = value
        return secret


@strawberry.input
class CreateUseInput:
    connection_id: strawberry.ID
    kind: str
    name: str


@strawberry.input
class UpdateUseInput:
    kind: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET


@strawberry.input
class SyncInput:
    name: str
    required_connector_ids: list[strawberry.ID]


@strawberry.input
class StepInput:
    step: domain.SyncStep
    complete: bool
    detail: str | None = None


@strawberry.type
class ConsumerLink:
    url: str
    expires_at: datetime
