"""What a catalog file says, entry by entry: frozen specs, checked for shape (their values are
the store's to accept or refuse)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.domain import ConnectionState, Direction, MuteScope, SyncStep


@dataclass(frozen=True, slots=True)
class UseKindSpec:
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    slug: str
    name: str
    category: str
    heartbeat: dict[str, Any]  # with a template: the template's, under the file's fields
    template: str | None = None
    # The OAuth2 app: token_url, client_id, scopes, auth_method (a template gives the others).
    oauth2: dict[str, Any] | None = None
    # Where its client secret is read from: {client_secret_env: X} or {client_secret_file: p}.
    client_secret_ref: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class UseSpec:
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class ConnectionSpec:
    name: str
    connector: str
    direction: Direction
    state: ConnectionState | None  # None: leave what the service found (e.g. FAILED after a 401)
    check_interval_seconds: int
    failure_threshold: int
    heartbeat: dict[str, Any]
    credentials: dict[str, str] | None  # the reference only (env/file names), never the secret
    uses: tuple[UseSpec, ...]
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    external_id: str
    name: str
    email: str | None
    connections: tuple[ConnectionSpec, ...]


@dataclass(frozen=True, slots=True)
class ActivationSpec:
    consumer: str
    steps: tuple[tuple[SyncStep, bool], ...]


@dataclass(frozen=True, slots=True)
class SyncSpec:
    name: str
    requires: tuple[str, ...]
    activations: tuple[ActivationSpec, ...]


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str  # the catalog's endpoints are told apart by their URL
    events: tuple[str, ...] | None  # None: every event
    description: str | None
    secret_ref: dict[str, str]  # {secret_env: X} or {secret_file: path}, never the secret


@dataclass(frozen=True, slots=True)
class MaintenanceSpec:
    scope: MuteScope
    target: tuple[str, ...]  # (slug,), (external_id,) or (consumer external_id, name)
    starts_at: datetime
    ends_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class CatalogSpec:
    use_kinds: tuple[UseKindSpec, ...] = ()
    connectors: tuple[ConnectorSpec, ...] = ()
    consumers: tuple[ConsumerSpec, ...] = ()
    syncs: tuple[SyncSpec, ...] = ()
    webhooks: tuple[WebhookSpec, ...] = ()
    maintenance: tuple[MaintenanceSpec, ...] = ()
