"""What every command shares: loading a row by id, uniqueness checks, and the SAVEPOINT that
keeps a refused command from leaving anything half-written."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.interfaces import ORMOption

from store.engine import begin_writing
from store.errors import NotFoundError, ValidationError
from store.models import Base

_Row = TypeVar("_Row", bound=Base)


class Unset(enum.Enum):
    """The type of UNSET."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET
"""In an update: leave the field as it is (None, where allowed, clears it)."""


def assign(row: Base, values: Mapping[str, Any]) -> set[str]:
    """Set the attributes; the names of those whose value changed."""
    changed = set()
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed.add(key)
    return changed


async def get_row(
    session: AsyncSession, model: type[_Row], identifier: object, kind: str, *options: ORMOption
) -> _Row:
    """The row by primary key, or NotFoundError naming `kind`.

    Always a SELECT (not the identity map), so a check run again after a race sees the
    database as it is now.
    """
    key = inspect(model).primary_key[0]
    row = await session.scalar(select(model).where(key == identifier).options(*options))
    if row is None:
        raise NotFoundError(kind, identifier)
    return row


async def ensure_free(
    session: AsyncSession,
    id_column: InstrumentedAttribute[int],
    *key: ColumnElement[bool],
    field: str,
    value: object,
    owner: str,
    exclude: int | None = None,
) -> None:
    """Refuse `value` when another row than `exclude` already holds this unique key."""
    conditions = [*key] if exclude is None else [*key, id_column != exclude]
    if await session.scalar(select(id_column).where(*conditions).limit(1)) is not None:
        raise ValidationError(field, value, f"{value!r} is already used by another {owner}")


async def count_rows(
    session: AsyncSession, model: type[Base], *conditions: ColumnElement[bool]
) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0
    )


async def _no_recheck() -> None:
    return None


@asynccontextmanager
async def saving(
    session: AsyncSession, recheck: Callable[[], Awaitable[object]] = _no_recheck
) -> AsyncIterator[None]:
    """Flush the changes made in the block inside a SAVEPOINT.

    The checks ran before, but a concurrent transaction can still take a unique key (or delete
    a referenced row) between the check and the flush. The SAVEPOINT keeps the caller's
    transaction usable, and running the checks again turns the database's refusal into the
    message the check gives; an IntegrityError they cannot explain is re-raised. On SQLite the
    SAVEPOINT goes inside a real transaction (`begin_writing`), so several commands in one
    session commit or roll back together.
    """
    await begin_writing(session)
    try:
        async with session.begin_nested():
            yield
    except IntegrityError:
        await recheck()
        raise
