"""Filter inputs and their translation to store filters, with the token's tenant applied."""

from __future__ import annotations

import strawberry

from graphql_schema import enums  # noqa: F401 - registers the enums with Strawberry
from graphql_schema.context import Viewer
from graphql_schema.ids import decode_id
from store.domain import ConnectionState, ConnectionStatus, Direction, IssueCode, UseStatus
from store.filters import (
    ConnectionFilter,
    ConnectorFilter,
    ConsumerFilter,
    SyncActivationFilter,
    SyncFilter,
    UseFilter,
)


@strawberry.input(description="Narrow consumers; every field given must match.")
class ConsumerFilterInput:
    active: bool | None = None
    connector_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Consumers with a connection to any of these connectors."
    )
    issue: list[IssueCode] | None = strawberry.field(
        default=None, description="Consumers showing any of these issues (by connections)."
    )


@strawberry.input
class ConnectorFilterInput:
    category: list[str] | None = None


@strawberry.input
class ConnectionFilterInput:
    status: list[ConnectionStatus] | None = None
    state: list[ConnectionState] | None = None
    direction: list[Direction] | None = None
    connector_ids: list[strawberry.ID] | None = None
    consumer_ids: list[strawberry.ID] | None = None


@strawberry.input
class UseFilterInput:
    status: list[UseStatus] | None = None
    kind: list[str] | None = None


@strawberry.input
class SyncActivationFilterInput:
    sync_ids: list[strawberry.ID] | None = None
    connector_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Activations of syncs that require any of these connectors."
    )
    consumer_ids: list[strawberry.ID] | None = None
    active: bool | None = None
    issue: list[IssueCode] | None = None


def _ids(values: list[strawberry.ID] | None, type_name: str) -> tuple[int, ...] | None:
    return None if values is None else tuple(decode_id(value, type_name) for value in values)


def _tuple(values: list[object] | None) -> tuple[object, ...] | None:
    return None if values is None else tuple(values)


def consumer_filter(
    given: ConsumerFilterInput | None, search: str | None, viewer: Viewer
) -> ConsumerFilter:
    given = given or ConsumerFilterInput()
    return ConsumerFilter(
        consumer_ids=viewer.consumers(),
        active=given.active,
        connector_ids=_ids(given.connector_ids, "Connector"),
        issue_codes=None if given.issue is None else tuple(given.issue),
        search=search,
    )


def connector_filter(
    given: ConnectorFilterInput | None, search: str | None, viewer: Viewer
) -> ConnectorFilter:
    given = given or ConnectorFilterInput()
    return ConnectorFilter(
        categories=None if given.category is None else tuple(given.category),
        consumer_ids=viewer.consumers(),
        search=search,
    )


def connection_filter(
    given: ConnectionFilterInput | None, search: str | None, viewer: Viewer
) -> ConnectionFilter:
    given = given or ConnectionFilterInput()
    return ConnectionFilter(
        consumer_ids=viewer.consumers(_ids(given.consumer_ids, "Consumer")),
        connector_ids=_ids(given.connector_ids, "Connector"),
        states=None if given.state is None else tuple(given.state),
        statuses=None if given.status is None else tuple(given.status),
        directions=None if given.direction is None else tuple(given.direction),
        search=search,
    )


def use_filter(given: UseFilterInput | None, search: str | None) -> UseFilter:
    given = given or UseFilterInput()
    return UseFilter(
        statuses=None if given.status is None else tuple(given.status),
        kinds=None if given.kind is None else tuple(given.kind),
        search=search,
    )


def sync_filter(search: str | None) -> SyncFilter:
    return SyncFilter(search=search)


def sync_activation_filter(
    given: SyncActivationFilterInput | None, search: str | None, viewer: Viewer
) -> SyncActivationFilter:
    given = given or SyncActivationFilterInput()
    return SyncActivationFilter(
        consumer_ids=viewer.consumers(_ids(given.consumer_ids, "Consumer")),
        sync_ids=_ids(given.sync_ids, "Sync"),
        connector_ids=_ids(given.connector_ids, "Connector"),
        active=given.active,
        issue_codes=None if given.issue is None else tuple(given.issue),
        search=search,
    )
