"""Per-request DataLoaders: every field that needs the database batches its keys into one query.

A page of N connections costs the same number of statements as a page of 10.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from store import domain, queries
from store.filters import ConnectionFilter, SyncActivationFilter, UseFilter
from store.pagination import Page, PageRequest

if TYPE_CHECKING:
    from graphql_schema.context import GraphQLContext

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
F = TypeVar("F", bound=Hashable)


def _batch(
    context: GraphQLContext,
    fetch: Callable[[AsyncSession, list[K]], Awaitable[Mapping[K, V]]],
    default: V,
) -> DataLoader[K, V]:
    async def load(keys: list[K]) -> list[V]:
        found = await context.read(lambda session: fetch(session, keys))
        return [found.get(key, default) for key in keys]

    return DataLoader(load_fn=load)


def _grouped(
    context: GraphQLContext,
    fetch: Callable[[AsyncSession, list[int], Any], Awaitable[Mapping[int, V]]],
) -> DataLoader[tuple[int, Any], V]:
    """Keys are (parent id, arguments); one query per distinct arguments in the batch."""

    async def load(keys: list[tuple[int, Any]]) -> list[V]:
        by_arguments: dict[Any, list[int]] = defaultdict(list)
        for parent_id, arguments in keys:
            by_arguments[arguments].append(parent_id)
        results: dict[tuple[int, Any], V] = {}
        for arguments, parent_ids in by_arguments.items():

            async def run(session: AsyncSession) -> Mapping[int, V]:
                return await fetch(session, parent_ids, arguments)  # noqa: B023 - awaited at once

            found = await context.read(run)
            results.update({(parent_id, arguments): found[parent_id] for parent_id in parent_ids})
        return [results[key] for key in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """Created lazily, one per loader actually used by the request."""

    def __init__(self, context: GraphQLContext) -> None:
        self.context = context

    @cached_property
    def consumer(self) -> DataLoader[int, domain.Consumer | None]:
        return _batch(self.context, queries.consumers_by_id, None)

    @cached_property
    def connector(self) -> DataLoader[int, domain.Connector | None]:
        return _batch(self.context, queries.connectors_by_id, None)

    @cached_property
    def connection(self) -> DataLoader[int, domain.Connection | None]:
        return _batch(self.context, queries.connections_by_id, None)

    @cached_property
    def use(self) -> DataLoader[int, domain.Use | None]:
        return _batch(self.context, queries.uses_by_id, None)

    @cached_property
    def sync(self) -> DataLoader[int, domain.Sync | None]:
        return _batch(self.context, queries.syncs_by_id, None)

    @cached_property
    def sync_activation(self) -> DataLoader[int, domain.SyncActivation | None]:
        return _batch(self.context, queries.sync_activations_by_id, None)

    @cached_property
    def connection_mute(self) -> DataLoader[int, domain.MuteState | None]:
        return self._mutes(domain.MuteScope.CONNECTION)

    @cached_property
    def connector_mute(self) -> DataLoader[int, domain.MuteState | None]:
        return self._mutes(domain.MuteScope.CONNECTOR)

    @cached_property
    def consumer_mute(self) -> DataLoader[int, domain.MuteState | None]:
        return self._mutes(domain.MuteScope.CONSUMER)

    def _mutes(self, scope: domain.MuteScope) -> DataLoader[int, domain.MuteState | None]:
        async def fetch(session: AsyncSession, ids: list[int]) -> dict[int, domain.MuteState]:
            return await queries.mute_states(session, scope, ids, datetime.now(UTC))

        return _batch(self.context, fetch, None)

    @cached_property
    def connector_outage(self) -> DataLoader[int, domain.ConnectorOutage | None]:
        return _batch(self.context, queries.outages_by_connector, None)

    @cached_property
    def consumer_active(self) -> DataLoader[int, bool]:
        return _batch(self.context, queries.consumers_active, False)

    @cached_property
    def consumer_issues(self) -> DataLoader[int, tuple[domain.Issue, ...]]:
        return _batch(self.context, queries.consumer_issues, ())

    @cached_property
    def use_summary(self) -> DataLoader[int, domain.UseSummary]:
        return _batch(self.context, queries.use_summaries, domain.UseSummary())

    @cached_property
    def activation_state(self) -> DataLoader[int, tuple[bool, domain.Issue | None]]:
        return _batch(self.context, queries.sync_activations_state, (False, None))

    @cached_property
    def required_connectors(self) -> DataLoader[int, tuple[int, ...]]:
        return _batch(self.context, queries.required_connector_ids, ())

    @cached_property
    def consumer_health(self) -> DataLoader[int, domain.Health]:
        return _batch(self.context, queries.consumer_health, domain.Health.UNKNOWN)

    @cached_property
    def connector_health(self) -> DataLoader[int, domain.Health]:
        scope = self.context.viewer.consumers()
        return _batch(
            self.context,
            lambda session, ids: queries.connector_health(session, ids, scope),
            domain.Health.UNKNOWN,
        )

    @cached_property
    def sync_stats(self) -> DataLoader[int, tuple[int, int]]:
        scope = self.context.viewer.consumers()
        return _batch(
            self.context,
            lambda session, ids: queries.sync_activation_counts(session, ids, scope),
            (0, 0),
        )

    @cached_property
    def connections_of(self) -> DataLoader[tuple[int, Any], Page[domain.Connection]]:
        async def fetch(
            session: AsyncSession, ids: list[int], args: tuple[str, ConnectionFilter, PageRequest]
        ) -> dict[int, Page[domain.Connection]]:
            parent, f, page = args
            return await queries.connections_per_parent(session, parent, ids, f, page)

        return _grouped(self.context, fetch)

    @cached_property
    def connection_counts_of(self) -> DataLoader[tuple[int, Any], int]:
        async def fetch(
            session: AsyncSession, ids: list[int], args: tuple[str, ConnectionFilter]
        ) -> dict[int, int]:
            parent, f = args
            return await queries.count_connections_per_parent(session, parent, ids, f)

        return _grouped(self.context, fetch)

    @cached_property
    def uses_of(self) -> DataLoader[tuple[int, Any], Page[domain.Use]]:
        async def fetch(
            session: AsyncSession, ids: list[int], args: tuple[UseFilter, PageRequest]
        ) -> dict[int, Page[domain.Use]]:
            return await queries.uses_per_connection(session, ids, *args)

        return _grouped(self.context, fetch)

    @cached_property
    def use_counts_of(self) -> DataLoader[tuple[int, Any], int]:
        async def fetch(
            session: AsyncSession, ids: list[int], args: tuple[UseFilter]
        ) -> dict[int, int]:
            return await queries.count_uses_per_connection(session, ids, *args)

        return _grouped(self.context, fetch)

    @cached_property
    def activations_of(self) -> DataLoader[tuple[int, Any], Page[domain.SyncActivation]]:
        async def fetch(
            session: AsyncSession,
            ids: list[int],
            args: tuple[str, SyncActivationFilter, PageRequest],
        ) -> dict[int, Page[domain.SyncActivation]]:
            parent, f, page = args
            return await queries.activations_per_parent(session, parent, ids, f, page)

        return _grouped(self.context, fetch)

    @cached_property
    def activation_counts_of(self) -> DataLoader[tuple[int, Any], int]:
        async def fetch(
            session: AsyncSession, ids: list[int], args: tuple[str, SyncActivationFilter]
        ) -> dict[int, int]:
            parent, f = args
            return await queries.count_activations_per_parent(session, parent, ids, f)

        return _grouped(self.context, fetch)


async def load_all(loader: DataLoader[K, V | None], keys: Iterable[K]) -> Sequence[V]:
    """Load several keys, dropping those that no longer exist."""
    return [value for value in await loader.load_many(list(keys)) if value is not None]
