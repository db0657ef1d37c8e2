"""Relay plumbing: the Node interface, PageInfo, and cursor connections with a lazy totalCount."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.types.base import get_object_definition

from graphql_schema.ids import to_global_id
from store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageRequest

NodeType = TypeVar("NodeType")
RecordType = TypeVar("RecordType")


@strawberry.interface(description="An object with a global id, fetchable with `node(id:)`.")
class Node:
    _row_id: strawberry.Private[int]

    @strawberry.field
    def id(self) -> strawberry.ID:
        # Encoded when selected: a page wraps many more objects than it shows ids of.
        type_name = get_object_definition(type(self), strict=True).name
        return strawberry.ID(to_global_id(type_name, self._row_id))


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeType]):
    cursor: str
    node: NodeType


def _edges(self: Connection[Any]) -> list[Edge[Any]]:
    return [
        Edge(cursor=cursor, node=node)
        for cursor, node in zip(self._page.cursors, self.nodes, strict=True)
    ]


def _page_info(self: Connection[Any]) -> PageInfo:
    page = self._page
    return PageInfo(
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        start_cursor=page.start_cursor,
        end_cursor=page.end_cursor,
    )


@strawberry.type(description="A page of results, with cursors to fetch the next one.")
class Connection(Generic[NodeType]):
    # Edges and page info are built when selected: most clients ask for nodes alone.
    edges: list[Edge[NodeType]] = strawberry.field(resolver=_edges)
    nodes: list[NodeType]
    page_info: PageInfo = strawberry.field(resolver=_page_info)
    _page: strawberry.Private[Page[Any]]
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many results match, across all pages.")
    async def total_count(self) -> int:
        return await self._count()


def page_request(first: int | None, after: str | None) -> PageRequest:
    """Validated page arguments: default 50, at most 500 (a bigger `first` is an error)."""
    return PageRequest(first=DEFAULT_PAGE_SIZE if first is None else first, after=after)


def to_connection(
    page: Page[RecordType],
    wrap: Callable[[RecordType], NodeType],
    count: Callable[[], Awaitable[int]],
) -> Connection[NodeType]:
    return Connection(nodes=[wrap(item) for item in page.items], _page=page, _count=count)


FIRST_DESCRIPTION = f"Page size, default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}."
