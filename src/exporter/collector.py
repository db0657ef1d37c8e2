"""The store collector: reads the store at scrape time and writes the contract's families.

Nothing is cached between scrapes and no gauge object is kept: each scrape is one read
transaction and one rendering. Scrapes that arrive while one is running share its result
(Prometheus HA pairs scrape at the same moment; the second costs nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exporter.exposition import render_chunks
from store.metrics import MetricsSnapshot, metrics_snapshot

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreCollector:
    """Scrape-time reader of `sessions`; `exposition()` returns the families as text bytes."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, clock: Clock = utc_now
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._running: asyncio.Future[list[bytes]] | None = None

    async def snapshot(self) -> MetricsSnapshot:
        """The store's state now, in one read transaction."""
        async with self._sessions() as session:
            return await metrics_snapshot(session, self._clock())

    async def exposition(self) -> bytes:
        """The store families as exposition text; concurrent callers share one scrape."""
        return b"".join(await self.chunks())

    async def chunks(self) -> list[bytes]:
        """`exposition()` as one chunk per family, not joined (it can be ~100 MB)."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._scrape())
            self._running.add_done_callback(self._finished)
        # shield: one impatient client disconnecting must not cancel the others' scrape.
        return await asyncio.shield(self._running)

    def _finished(self, future: asyncio.Future[list[bytes]]) -> None:
        self._running = None
        if not future.cancelled():
            future.exception()  # retrieved here, so a scrape nobody awaits logs no warning

    async def _scrape(self) -> list[bytes]:
        snapshot = await self.snapshot()
        # Rendering 100k connections takes a good part of a second of pure Python: in a
        # thread, the event loop (API, scheduler) keeps getting GIL slices meanwhile.
        return await asyncio.to_thread(_render, snapshot)


def _render(snapshot: MetricsSnapshot) -> list[bytes]:
    return list(render_chunks(snapshot))
