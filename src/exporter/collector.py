"""The store collector: reads the store at scrape time, for the contract's families.

Nothing is cached between scrapes and no gauge object is kept: each scrape is one read
(exporter.stream renders it piece by piece). Scrapes that arrive while a read is running
share it (Prometheus HA pairs scrape at the same moment; the second read costs nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exporter.exposition import render_store
from exporter.stream import in_render_thread
from store.metrics import MetricsSnapshot, metrics_snapshot

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreCollector:
    """Scrape-time reader of `sessions`."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, clock: Clock = utc_now
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._reading: asyncio.Future[MetricsSnapshot] | None = None

    async def snapshot(self) -> MetricsSnapshot:
        """The store's state now, in one read transaction."""
        async with self._sessions() as session:
            return await metrics_snapshot(session, self._clock())

    async def shared_snapshot(self) -> MetricsSnapshot:
        """`snapshot()`, shared by the callers that arrive while it runs.

        Each caller then renders its own stream: sharing rendered text would mean keeping it
        whole, which is what streaming avoids.
        """
        if self._reading is None:
            self._reading = asyncio.ensure_future(self.snapshot())
            self._reading.add_done_callback(self._finished)
        # shield: one impatient client disconnecting must not cancel the others' read.
        return await asyncio.shield(self._reading)

    async def exposition(self) -> bytes:
        """The store families as one exposition text (for tests and small stores: the
        endpoint streams them instead)."""
        return await in_render_thread(render_store, await self.shared_snapshot())

    def _finished(self, future: asyncio.Future[MetricsSnapshot]) -> None:
        self._reading = None
        if not future.cancelled():
            future.exception()  # retrieved here, so a read nobody awaits logs no warning
