"""A connection's check history: its pages, its count and its uptime over a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from store import domain, records
from store.models import (
    CheckRow,
)
from store.pagination import (
    Page,
    PageRequest,
    page_of,
)
from store.queries.conditions import count_where
from store.queries.lists import count_rows

T = TypeVar("T")


async def list_checks(
    session: AsyncSession, connection_id: int, page: PageRequest
) -> Page[domain.Check]:
    """Newest first: the history a viewer reads from the top."""
    stmt = select(CheckRow).where(CheckRow.connection_id == connection_id)
    after_id = page.after_id
    if after_id is not None:
        stmt = stmt.where(CheckRow.id < after_id)
    rows = (await session.scalars(stmt.order_by(CheckRow.id.desc()).limit(page.first + 1))).all()
    return page_of([records.check(row) for row in rows], page, lambda c: c.id)


async def uptime(session: AsyncSession, connection_id: int, window_seconds: int) -> float | None:
    """Share of successful checks in the last `window_seconds`; None when there were none."""
    since = datetime.now(UTC) - timedelta(seconds=window_seconds)
    total, successes = (
        await session.execute(
            select(func.count(), count_where(CheckRow.success.is_(True))).where(
                CheckRow.connection_id == connection_id, CheckRow.checked_at >= since
            )
        )
    ).one()
    return int(successes) / int(total) if total else None


async def count_checks(session: AsyncSession, connection_id: int) -> int:
    return await count_rows(session, CheckRow, [CheckRow.connection_id == connection_id])
