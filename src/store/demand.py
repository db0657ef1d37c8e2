"""What the catalog asks of the scheduler: how many checks a second its probed connections
need, read in one statement (for sizing the probe processes at start-up)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.domain import Direction
from store.models import ConnectionRow
from store.scheduling import PROBED_STATES


async def asked_checks_per_second(session: AsyncSession) -> float:
    """Σ 1 / interval over the outbound ACTIVE and FAILED connections."""
    total = await session.scalar(
        select(func.sum(1.0 / ConnectionRow.check_interval_seconds)).where(
            ConnectionRow.direction == Direction.OUTBOUND,
            ConnectionRow.state.in_(PROBED_STATES),
        )
    )
    return float(total or 0.0)
