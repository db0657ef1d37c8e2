"""Small writes asked for at the same moment, committed together.

A refresh wave (thousands of OAuth2 grants whose tokens were issued in the same minute expire
in the same minute) takes a lease and saves tokens for each: two commits per grant, hundreds a
second, each waiting for SQLite's one writer. Queued writes share one transaction instead, and
every caller gets its own result only once that transaction is committed, so nothing is used
before it is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")
Write = Callable[[AsyncSession], Awaitable[Any]]
MAX_BATCH = 200


class BatchedWrites:
    """Runs each queued write, in order, in one transaction per batch."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`write`'s result, once the transaction it ran in is committed. A write that
        raises fails its whole batch: each is one statement, so what fails one fails all."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # the writers of this moment queue theirs first
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                async with self._sessions.begin() as session:
                    results = [await write(session) for write, _ in batch]
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # its caller may have been cancelled meanwhile
                    future.set_result(result)
