"""Loading for a whole page at once: nested lists through their loaders, and the loaders of a
page's nodes primed in one batch each, so their fields resolve without a coroutine each."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Sequence
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types.nodes import SelectedField, Selection

from graphql_schema import relay
from graphql_schema.context import Info
from graphql_schema.inputs import use_filter
from store import domain
from store.errors import StoreError
from store.pagination import Page

R = TypeVar("R")
N = TypeVar("N")


async def nested(
    pages: DataLoader[tuple[int, Any], Page[R]],
    counts: DataLoader[tuple[int, Any], int],
    parent_id: int,
    arguments: tuple[Any, ...],
    first: int | None,
    after: str | None,
    wrap: Callable[[R], N],
) -> relay.Connection[N]:
    """A nested list (a consumer's connections, a connection's uses…) through its loaders:
    every parent on the page is answered by one statement, and one more for totalCount."""
    page = relay.page_request(first, after)
    result = await pages.load((parent_id, (*arguments, page)))
    return relay.to_connection(result, wrap, lambda: counts.load((parent_id, arguments)))


First = Annotated[int | None, strawberry.argument(description=relay.FIRST_DESCRIPTION)]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def now_or_later(loader: DataLoader[K, V], key: K, wrap: Callable[[V], R]) -> R | Awaitable[R]:
    """`wrap(value)` at once when the request has already loaded `key`, else an awaitable.

    A page primes its nodes' loaders (`prime_connection_page`), so their fields resolve
    without a coroutine, a future and an await each: at 100 connections with five such
    fields that overhead was most of the execution's CPU.
    """
    future = loader.cache_map.get(key)
    if (
        future is not None
        and future.done()
        and not future.cancelled()
        and future.exception() is None
    ):
        return wrap(future.result())

    async def later() -> R:
        return wrap(await loader.load(key))

    return later()


def node_selections(info: Info) -> dict[str, list[SelectedField]]:
    """The fields selected on the nodes of the connection being resolved (under `nodes` and
    `edges { node }`, through fragments), by name."""
    found: dict[str, list[SelectedField]] = defaultdict(list)

    def fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
        for selection in selections:
            if isinstance(selection, SelectedField):
                yield selection
            else:  # a fragment: its fields count as the enclosing selection's
                yield from fields(selection.selections)

    for connection_field in info.selected_fields:
        for field in fields(connection_field.selections):
            if field.name == "nodes":
                nodes = list(fields(field.selections))
            elif field.name == "edges":
                nodes = [
                    node
                    for edge_field in fields(field.selections)
                    if edge_field.name == "node"
                    for node in fields(edge_field.selections)
                ]
            else:
                continue
            for node_field in nodes:
                found[node_field.name].append(node_field)
    return found


_USE_SUMMARY_FIELDS = ("usedFor", "usedForSummary", "instanceHealth", "health")


async def prime_connection_page(
    info: Info,
    records: Sequence[domain.Connection],
    selected: dict[str, list[SelectedField]],
) -> None:
    """Load, in one batch per loader, what the `selected` fields (`node_selections`) ask of
    these connections, so that they resolve synchronously (`now_or_later`). Same statements as
    the lazy path; a loader already primed with every key runs none."""
    if not records:
        return
    loaders = info.context.loaders
    loads: list[Awaitable[Any]] = []
    if "consumer" in selected:
        loads.append(loaders.consumer.load_many({r.consumer_id for r in records}))
    if "connector" in selected or "heartbeat" in selected:
        loads.append(loaders.connector.load_many({r.connector_id for r in records}))
    if any(name in selected for name in _USE_SUMMARY_FIELDS):
        loads.append(loaders.use_summary.load_many([r.id for r in records]))
    uses = selected.get("uses", [])
    arguments = {name for field in uses for name in field.arguments}
    # Only the plain `uses(first:, after:)` of one shape is primed; anything else (filters,
    # several aliases with different pages) resolves lazily through the same loader.
    if len(uses) == 1 and arguments <= {"first", "after"}:
        given = uses[0].arguments
        first = given.get("first")
        try:
            # Strawberry hands an inline literal over as its source text (validated an Int).
            page = relay.page_request(
                int(first) if isinstance(first, str) else first, given.get("after")
            )
        except StoreError:
            page = None  # the field itself reports the bad argument
        if page is not None:
            key = (use_filter(None, None), page)
            loads.append(loaders.uses_of.load_many([(r.id, key) for r in records]))
    if loads:
        await asyncio.gather(*loads)
