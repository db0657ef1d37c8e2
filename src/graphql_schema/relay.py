"""Relay plumbing: the Node interface, PageInfo, and cursor connections with a lazy totalCount."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageRequest

NodeType = TypeVar("NodeType")
RecordType = TypeVar("RecordType")


@strawberry.interface(description="An object with a global id, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID


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


@strawberry.type(description="A page of results, with cursors to fetch the next one.")
class Connection(Generic[NodeType]):
    edges: list[Edge[NodeType]]
    nodes: list[NodeType]
    page_info: PageInfo
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
    nodes: Sequence[NodeType] = [wrap(item) for item in page.items]
    return Connection(
        edges=[Edge(cursor=c, node=n) for c, n in zip(page.cursors, nodes, strict=True)],
        nodes=list(nodes),
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        ),
        _count=count,
    )


FIRST_DESCRIPTION = f"Page size, default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}."
