"""Live updates over graphql-transport-ws: a connection, fresh, each time it changes."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import replace
from functools import partial

import strawberry

from graphql_schema.context import Info
from graphql_schema.inputs import ConnectionFilterInput, connection_filter
from graphql_schema.types import ConnectionNode
from store import queries
from store.pagination import PageRequest

FIRST = PageRequest(first=1)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Connections matching `filter`, each time their status or state changes."
    )
    async def connection_status_changed(
        self,
        info: Info,
        filter: ConnectionFilterInput | None = None,
    ) -> AsyncGenerator[ConnectionNode, None]:
        context = info.context
        wanted = connection_filter(filter, None, context.viewer)
        async with context.services.broadcaster.subscribe() as changes:
            while True:
                connection_id = await changes.get()
                await context.refresh()
                # The filter (and the token's tenant) decide, on the connection as it is now.
                one = replace(wanted, connection_ids=(connection_id,))
                page = await context.read(partial(queries.list_connections, f=one, page=FIRST))
                for record in page.items:
                    yield ConnectionNode.from_record(record)
