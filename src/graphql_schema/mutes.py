"""Mutes over GraphQL (write scope): silence a connection, a connector or a consumer until a
time, with a reason. While muted, no webhook event is sent for it and the shipped alert rules
do not page for it; when the mute ends, what changed meanwhile is told.

A token limited to one consumer mutes that consumer's connections and the consumer itself,
never a connector (every consumer's connections hang on it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from graphql_schema.context import Info
from graphql_schema.types import ConnectionNode, Connector, Consumer
from graphql_schema.writes import owned, write
from store.commands.mutes import mute, unmute
from store.domain import MuteScope

Reason = Annotated[
    str, strawberry.argument(description="Why: shown as muteReason and on the dashboards.")
]


async def _mute(
    info: Info, scope: MuteScope, type_name: str, id: strawberry.ID, until: datetime, reason: str
) -> int:
    target = await owned(info, type_name, id)
    await write(info, lambda s: mute(s, scope, target, until=until, reason=reason))
    return target


async def _unmute(info: Info, scope: MuteScope, type_name: str, id: strawberry.ID) -> int:
    target = await owned(info, type_name, id)
    await write(info, lambda s: unmute(s, scope, target))
    return target


@strawberry.type
class MuteMutation:
    @strawberry.mutation(description="Silence a connection until `until` (at most a year).")
    async def mute_connection(
        self,
        info: Info,
        id: strawberry.ID,
        until: datetime,
        reason: Reason,
    ) -> ConnectionNode:
        row_id = await _mute(info, MuteScope.CONNECTION, "Connection", id, until, reason)
        record = await info.context.loaders.connection.load(row_id)
        assert record is not None
        return ConnectionNode.from_record(record)

    @strawberry.mutation(description="End a connection's mute now.")
    async def unmute_connection(self, info: Info, id: strawberry.ID) -> ConnectionNode:
        row_id = await _unmute(info, MuteScope.CONNECTION, "Connection", id)
        record = await info.context.loaders.connection.load(row_id)
        assert record is not None
        return ConnectionNode.from_record(record)

    @strawberry.mutation(
        description="Silence every connection of a connector until `until` (a provider's "
        "planned maintenance, for example)."
    )
    async def mute_connector(
        self,
        info: Info,
        id: strawberry.ID,
        until: datetime,
        reason: Reason,
    ) -> Connector:
        row_id = await _mute(info, MuteScope.CONNECTOR, "Connector", id, until, reason)
        record = await info.context.loaders.connector.load(row_id)
        assert record is not None
        return Connector.from_record(record)

    @strawberry.mutation(description="End a connector's mute now.")
    async def unmute_connector(self, info: Info, id: strawberry.ID) -> Connector:
        row_id = await _unmute(info, MuteScope.CONNECTOR, "Connector", id)
        record = await info.context.loaders.connector.load(row_id)
        assert record is not None
        return Connector.from_record(record)

    @strawberry.mutation(description="Silence every connection of a consumer until `until`.")
    async def mute_consumer(
        self,
        info: Info,
        id: strawberry.ID,
        until: datetime,
        reason: Reason,
    ) -> Consumer:
        row_id = await _mute(info, MuteScope.CONSUMER, "Consumer", id, until, reason)
        record = await info.context.loaders.consumer.load(row_id)
        assert record is not None
        return Consumer.from_record(record)

    @strawberry.mutation(description="End a consumer's mute now.")
    async def unmute_consumer(self, info: Info, id: strawberry.ID) -> Consumer:
        row_id = await _unmute(info, MuteScope.CONSUMER, "Consumer", id)
        record = await info.context.loaders.consumer.load(row_id)
        assert record is not None
        return Consumer.from_record(record)
