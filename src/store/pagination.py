"""Keyset pagination: opaque cursors over the primary key; deep pages cost what the first does."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, bindparam
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from store.errors import InvalidCursorError, PageSizeError

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_PREFIX = "hg1:"


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidCursorError(cursor) from exc
    digits = text.removeprefix(_PREFIX)
    # ASCII digits only: '²' passes isdigit() and fails int().
    if not text.startswith(_PREFIX) or not (digits.isascii() and digits.isdigit()):
        raise InvalidCursorError(cursor)
    return int(digits)


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int = DEFAULT_PAGE_SIZE
    after: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.first <= MAX_PAGE_SIZE:
            raise PageSizeError(self.first, MAX_PAGE_SIZE)
        if self.after is not None:
            decode_cursor(self.after)

    @property
    def after_id(self) -> int | None:
        return decode_cursor(self.after) if self.after is not None else None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    # Cursors are encoded when asked for: most pages are read for their items alone.
    row_ids: tuple[int, ...]
    has_next_page: bool
    has_previous_page: bool

    @property
    def cursors(self) -> tuple[str, ...]:
        return tuple(encode_cursor(row_id) for row_id in self.row_ids)

    @property
    def start_cursor(self) -> str | None:
        return encode_cursor(self.row_ids[0]) if self.row_ids else None

    @property
    def end_cursor(self) -> str | None:
        return encode_cursor(self.row_ids[-1]) if self.row_ids else None


def page_of(items: Sequence[T], page: PageRequest, row_id: Callable[[T], int]) -> Page[T]:
    """Cut the `first + 1` items fetched for `page` into a page and whether another follows."""
    visible = items[: page.first]
    return Page(
        items=tuple(visible),
        row_ids=tuple(map(row_id, visible)),
        has_next_page=len(items) > page.first,
        has_previous_page=page.after is not None,
    )


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    id_column: InstrumentedAttribute[int],
    page: PageRequest,
    to_record: Callable[[Any], T],
) -> Page[T]:
    """Run `statement` (selecting one entity) ordered by `id_column`, one page after the cursor."""
    after_id = page.after_id
    if after_id is not None:
        statement = statement.where(id_column > after_id)
    statement = statement.order_by(id_column).limit(page.first + 1)
    rows: Sequence[Any] = (await session.scalars(statement)).all()
    return paginate_rows_of(rows, page, to_record)


def keyset_page(statement: Select[Any], id_column: Any, after: bool) -> Select[Any]:
    """`statement` (selecting Core rows with an `id`) as one page: ordered by `id_column`,
    `:row_limit` rows, after `:after_id` when `after`. Parameters from `page_parameters`."""
    if after:
        statement = statement.where(id_column > bindparam("after_id"))
    return statement.order_by(id_column).limit(bindparam("row_limit"))


def page_parameters(page: PageRequest) -> dict[str, int]:
    """The parameters of a `keyset_page` statement: one row more than the page shows."""
    parameters = {"row_limit": page.first + 1}
    after_id = page.after_id
    if after_id is not None:
        parameters["after_id"] = after_id
    return parameters


async def paginate_rows(
    session: AsyncSession,
    keyset: Select[Any],
    page: PageRequest,
    to_record: Callable[[Any], T],
) -> Page[T]:
    """Run a `keyset_page` statement for `page`: `paginate` for Core rows, not an entity."""
    connection = await session.connection()
    rows = (await connection.execute(keyset, page_parameters(page))).all()
    return paginate_rows_of(rows, page, to_record)


def paginate_rows_of(
    rows: Sequence[Any], page: PageRequest, to_record: Callable[[Any], T]
) -> Page[T]:
    """The page of the rows a `keyset_page` statement returned for `page`."""
    visible = rows[: page.first]
    return Page(
        items=tuple(to_record(row) for row in visible),
        row_ids=tuple(row.id for row in visible),
        has_next_page=len(rows) > page.first,
        has_previous_page=page.after is not None,
    )
