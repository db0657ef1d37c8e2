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


@strawberry.input(
    description="A body that means failure although its status is expected: jsonPath equal "
    "to `equals`, or bodyRegex; under the given statuses only, if any."
)
class FailureRuleInput:
    reason: domain.FailureReason
    json_path: str | None = None
    equals: JSON | None = None
    body_regex: str | None = None
    status: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"reason": self.reason.value}
        if self.json_path is not None:
            rule["json_path"] = self.json_path
            rule["equals"] = self.equals
        if self.body_regex is not None:
            rule["body_regex"] = self.body_regex
        if self.status is not None:
            rule["status"] = list(self.status)
        return rule


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
    headers: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description='Non-secret headers, {"Name": "value"}; {params.NAME} and {external_id} '
        "are filled in per connection.",
    )
    body: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="For POST, PUT and PATCH: a string, or an object sent as JSON.",
    )
    failure_when: list[FailureRuleInput] | None = strawberry.UNSET

    def to_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in given(self).items() if v is not None}
        if isinstance(fields.get("kind"), domain.ProbeKind):
            fields["kind"] = fields["kind"].value
        if "failure_when" in fields:
            fields["failure_when"] = [rule.to_dict() for rule in fields["failure_when"]]
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


@strawberry.input(
    description="A connector's OAuth2 app. With a template, only clientId and clientSecret "
    "are needed (the template gives the rest). clientSecret is write-only."
)
class OAuth2AppInput:
    client_id: str
    client_secret: str | None = strawberry.field(
        default=strawberry.UNSET, description="Write-only; left out: keep the stored one."
    )
    token_url: str | None = strawberry.UNSET
    scopes: list[str] | None = strawberry.UNSET
    auth_method: str | None = strawberry.UNSET

    def app(self) -> dict[str, Any]:
        """The app's fields (no secret), as store.oauth names them."""
        return {
            key: value
            for key, value in given(self).items()
            if key != "client_secret" and value is not None
        }


@strawberry.input(
    description="A connector; with `template`, name, category, heartbeat and the OAuth2 app "
    "start from the library's (Query.connectorTemplates) and what is given overrides them."
)
class CreateConnectorInput:
    slug: str
    name: str | None = None
    category: str | None = None
    heartbeat: HeartbeatInput | None = None
    template: str | None = None
    oauth2: OAuth2AppInput | None = None


@strawberry.input
class UpdateConnectorInput:
    slug: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    category: str | None = strawberry.UNSET
    heartbeat: HeartbeatInput | None = strawberry.UNSET
    oauth2: OAuth2AppInput | None = strawberry.field(
        default=strawberry.UNSET, description="null removes the OAuth2 app."
    )


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
    params: JSON | None = strawberry.field(
        default=None, description='Values of the heartbeat\'s {params.NAME}: {"name": "value"}.'
    )


@strawberry.input
class UpdateConnectionInput:
    connector_id: strawberry.ID | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    direction: domain.Direction | None = strawberry.UNSET
    state: domain.ConnectionState | None = strawberry.UNSET
    check_interval_seconds: int | None = strawberry.UNSET
    failure_threshold: int | None = strawberry.UNSET
    heartbeat: HeartbeatInput | None = strawberry.UNSET
    params: JSON | None = strawberry.UNSET


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
