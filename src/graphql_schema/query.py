"""The Query root: every list filtered, searched and paged; `node(id:)` for every type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_schema import relay
from graphql_schema.batching import First, node_selections, prime_connection_page
from graphql_schema.context import Info
from graphql_schema.ids import from_global_id
from graphql_schema.inputs import (
    ConnectionFilterInput,
    ConnectorFilterInput,
    ConsumerFilterInput,
    SyncActivationFilterInput,
    connection_filter,
    connector_filter,
    consumer_filter,
    sync_activation_filter,
    sync_filter,
)
from graphql_schema.overview import Overview, selects_categories
from graphql_schema.templates import TemplateQuery
from graphql_schema.tokens import TokenQuery
from graphql_schema.types import (
    ConnectionNode,
    Connector,
    Consumer,
    Sync,
    SyncActivation,
    Use,
)
from graphql_schema.webhooks import WebhookQuery
from store import queries
from store.filters import ConnectorFilter
from store.pagination import Page

R = TypeVar("R")
N = TypeVar("N")


async def _visible_node(info: Info, type_name: str, row_id: int) -> relay.Node | None:
    """The node if it exists and the viewer's tenant may see it; None otherwise (no hint which)."""
    loaders = info.context.loaders
    viewer = info.context.viewer
    if type_name == "Consumer":
        consumer = await loaders.consumer.load(row_id)
        if consumer and viewer.sees_consumer(consumer.id):
            return Consumer.from_record(consumer)
    elif type_name == "Connection":
        connection = await loaders.connection.load(row_id)
        if connection and viewer.sees_consumer(connection.consumer_id):
            return ConnectionNode.from_record(connection)
    elif type_name == "Use":
        use = await loaders.use.load(row_id)
        owner = await loaders.connection.load(use.connection_id) if use else None
        if use and owner and viewer.sees_consumer(owner.consumer_id):
            return Use.from_record(use)
    elif type_name == "SyncActivation":
        activation = await loaders.sync_activation.load(row_id)
        if activation and viewer.sees_consumer(activation.consumer_id):
            return SyncActivation.from_record(activation)
    elif type_name == "Sync":
        sync = await loaders.sync.load(row_id)
        return Sync.from_record(sync) if sync else None
    elif type_name == "Connector":
        connector = await loaders.connector.load(row_id)
        if connector is None:
            return None
        if viewer.consumer_id is None:
            return Connector.from_record(connector)
        # A tenant sees only the connectors it is connected to, as in `connectors`.
        scoped = ConnectorFilter(connector_ids=(row_id,), consumer_ids=viewer.consumers())
        visible = await info.context.read(lambda session: queries.count_connectors(session, scoped))
        return Connector.from_record(connector) if visible else None
    return None


async def _listed(
    info: Info,
    list_query: Callable[[AsyncSession], Awaitable[Page[R]]],
    count_query: Callable[[AsyncSession], Awaitable[int]],
    wrap: Callable[[R], N],
) -> relay.Connection[N]:
    page = await info.context.read(list_query)
    return relay.to_connection(page, wrap, lambda: info.context.read(count_query))


@strawberry.type
class Query(TokenQuery, TemplateQuery, WebhookQuery):
    @strawberry.field(description="The overview page: consumers, connections, connectors, syncs.")
    async def overview(self, info: Info) -> Overview:
        scope = info.context.viewer.consumers()
        sessions = info.context.sessions
        categories = selects_categories(info)
        record = await info.context.read(
            lambda session: queries.overview_on_pool(
                session, sessions, scope, categories=categories
            )
        )
        return Overview.from_record(record)

    @strawberry.field(description="Consumers; `search` matches the name or the external id.")
    async def consumers(
        self,
        info: Info,
        filter: ConsumerFilterInput | None = None,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[Consumer]:
        f = consumer_filter(filter, search, info.context.viewer)
        page = relay.page_request(first, after)
        return await _listed(
            info,
            lambda s: queries.list_consumers(s, f, page),
            lambda s: queries.count_consumers(s, f),
            Consumer.from_record,
        )

    @strawberry.field(description="Connectors; `search` matches the name or the slug.")
    async def connectors(
        self,
        info: Info,
        filter: ConnectorFilterInput | None = None,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[Connector]:
        f = connector_filter(filter, search, info.context.viewer)
        page = relay.page_request(first, after)
        return await _listed(
            info,
            lambda s: queries.list_connectors(s, f, page),
            lambda s: queries.count_connectors(s, f),
            Connector.from_record,
        )

    @strawberry.field(description="Connections; `search` matches the name or the id.")
    async def connections(
        self,
        info: Info,
        filter: ConnectionFilterInput | None = None,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[ConnectionNode]:
        f = connection_filter(filter, search, info.context.viewer)
        request = relay.page_request(first, after)
        selected = node_selections(info)
        if selected.keys() & {"consumer", "connector", "heartbeat"}:
            # Both ends of every connection from the page's own statement, into their loaders.
            listed = await info.context.read(
                lambda s: queries.list_connections_with_ends(s, f, request)
            )
            info.context.loaders.consumer.prime_many(listed.consumers)
            info.context.loaders.connector.prime_many(listed.connectors)
            page = listed.page
        else:
            page = await info.context.read(lambda s: queries.list_connections(s, f, request))
        await prime_connection_page(info, page.items, selected)
        return relay.to_connection(
            page,
            ConnectionNode.from_record,
            lambda: info.context.read(lambda s: queries.count_connections(s, f)),
        )

    @strawberry.field
    async def syncs(
        self,
        info: Info,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[Sync]:
        f = sync_filter(search)
        page = relay.page_request(first, after)
        return await _listed(
            info,
            lambda s: queries.list_syncs(s, f, page),
            lambda s: queries.count_syncs(s, f),
            Sync.from_record,
        )

    @strawberry.field(description="Consumers by syncs: one row per consumer and sync attempted.")
    async def sync_activations(
        self,
        info: Info,
        filter: SyncActivationFilterInput | None = None,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[SyncActivation]:
        f = sync_activation_filter(filter, search, info.context.viewer)
        page = relay.page_request(first, after)
        return await _listed(
            info,
            lambda s: queries.list_sync_activations(s, f, page),
            lambda s: queries.count_sync_activations(s, f),
            SyncActivation.from_record,
        )

    @strawberry.field(description="Any object by its global id; null if absent or not yours.")
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        type_name, row_id = from_global_id(id)
        return await _visible_node(info, type_name, row_id)
