"""The overview page of seed 2 as one object: every figure from a handful of statements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import strawberry
from strawberry.types.nodes import SelectedField, Selection

from graphql_schema.context import Info
from graphql_schema.types import Connector, ConnectorOutage, Sync
from store import domain, queries


@strawberry.type
class StatusCounts:
    connected: int
    connection_failure: int
    unknown: int


@strawberry.type
class ConnectorUsage:
    connector: Connector
    active_connections: int
    pending_connections: int
    failed_connections: int


@strawberry.type(description="One Unified API (a connector category) summed up.")
class CategoryUsage:
    category: str
    connectors: int = strawberry.field(description="Connectors in this category.")
    active_connections: int
    pending_connections: int
    failed_connections: int
    active_consumers: int = strawberry.field(
        description="Consumers with an ACTIVE connection to a connector of this category."
    )


@strawberry.type
class StepFunnelEntry:
    step: domain.SyncStep
    complete: int
    incomplete: int


@strawberry.type
class SyncUsage:
    sync: Sync
    activations: int
    active_activations: int
    activation_rate: float
    step_funnel: list[StepFunnelEntry]


@strawberry.type
class Overview:
    consumers: int
    active_consumers: int = strawberry.field(description="Consumers with an ACTIVE connection.")
    active_connections: int
    pending_connections: int = strawberry.field(description="Initiated but not finished.")
    failed_connections: int = strawberry.field(description="Failed to authenticate.")
    connections_by_status: StatusCounts
    connectors: list[ConnectorUsage]
    categories: list[CategoryUsage] = strawberry.field(
        description="Per Unified API (connector category), by category name."
    )
    active_syncs: int = strawberry.field(description="Active sync activations, all syncs.")
    syncs: list[SyncUsage]

    @strawberry.field(
        description="Connector outages going on now, the longest first: the providers that are "
        "down, apart from the customers whose own credentials fail. Empty for a token limited "
        "to one consumer (an outage counts every consumer's connections)."
    )
    async def outages(self, info: Info) -> list[ConnectorOutage]:
        if info.context.viewer.consumer_id is not None:
            return []
        found = await info.context.read(queries.current_outages)
        return [ConnectorOutage.from_record(outage) for outage in found]

    @classmethod
    def from_record(cls, record: domain.Overview) -> Overview:
        return cls(
            consumers=record.consumers,
            active_consumers=record.active_consumers,
            active_connections=record.active_connections,
            pending_connections=record.pending_connections,
            failed_connections=record.failed_connections,
            connections_by_status=StatusCounts(
                connected=record.connections_by_status.connected,
                connection_failure=record.connections_by_status.connection_failure,
                unknown=record.connections_by_status.unknown,
            ),
            connectors=[
                ConnectorUsage(
                    connector=Connector.from_record(usage.connector),
                    active_connections=usage.active_connections,
                    pending_connections=usage.pending_connections,
                    failed_connections=usage.failed_connections,
                )
                for usage in record.connectors
            ],
            categories=[
                CategoryUsage(
                    category=usage.category,
                    connectors=usage.connectors,
                    active_connections=usage.active_connections,
                    pending_connections=usage.pending_connections,
                    failed_connections=usage.failed_connections,
                    active_consumers=usage.active_consumers,
                )
                for usage in record.categories or ()
            ],
            active_syncs=record.active_syncs,
            syncs=[
                SyncUsage(
                    sync=Sync.from_record(usage.sync),
                    activations=usage.activations,
                    active_activations=usage.active_activations,
                    activation_rate=usage.activation_rate,
                    step_funnel=[
                        StepFunnelEntry(step=e.step, complete=e.complete, incomplete=e.incomplete)
                        for e in usage.step_funnel
                    ],
                )
                for usage in record.syncs
            ],
        )


def selects_categories(info: Info) -> bool:
    """Whether the `overview` being resolved selects `categories` (directly or in a fragment):
    only then does the store count its active consumers, a distinct count over every ACTIVE
    connection that the rest of the page does not need."""

    def names(selections: Iterable[Selection]) -> Iterator[str]:
        for selection in selections:
            if isinstance(selection, SelectedField):
                yield selection.name
            else:  # a fragment: its fields are the enclosing selection's
                yield from names(selection.selections)

    return any("categories" in names(field.selections) for field in info.selected_fields)
