"""What a list can be narrowed by: plain values the API, CSV export and exporter all pass in.

`None` means "no restriction"; an empty tuple matches nothing. `consumer_ids` doubles as the
tenant boundary for consumer-scoped tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.domain import (
    ConnectionState,
    ConnectionStatus,
    Direction,
    IssueCode,
    UseStatus,
)


@dataclass(frozen=True, slots=True)
class ConsumerFilter:
    consumer_ids: tuple[int, ...] | None = None
    active: bool | None = None
    connector_ids: tuple[int, ...] | None = None
    issue_codes: tuple[IssueCode, ...] | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectorFilter:
    connector_ids: tuple[int, ...] | None = None
    categories: tuple[str, ...] | None = None
    # Tenant boundary: only connectors that these consumers have connections to.
    consumer_ids: tuple[int, ...] | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionFilter:
    connection_ids: tuple[int, ...] | None = None
    consumer_ids: tuple[int, ...] | None = None
    connector_ids: tuple[int, ...] | None = None
    states: tuple[ConnectionState, ...] | None = None
    statuses: tuple[ConnectionStatus, ...] | None = None
    directions: tuple[Direction, ...] | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class UseFilter:
    connection_ids: tuple[int, ...] | None = None
    consumer_ids: tuple[int, ...] | None = None
    kinds: tuple[str, ...] | None = None
    statuses: tuple[UseStatus, ...] | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class SyncFilter:
    search: str | None = None


@dataclass(frozen=True, slots=True)
class SyncActivationFilter:
    consumer_ids: tuple[int, ...] | None = None
    sync_ids: tuple[int, ...] | None = None
    connector_ids: tuple[int, ...] | None = None
    active: bool | None = None
    issue_codes: tuple[IssueCode, ...] | None = None
    search: str | None = None
