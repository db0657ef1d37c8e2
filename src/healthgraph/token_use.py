"""When each API token was last used, written beside the requests, never in their way.

A request that authenticates with a token tells `TokenUses.note`; at most once a minute per
token this process starts a write of `last_used_at` as a task of its own, which the request
does not wait for. The database keeps the same minute across processes (`tokens.record_use`
writes only when the stored time is a minute old). A write that fails is logged and tried
again at the token's next use; it never fails a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store import tokens

log = logging.getLogger(__name__)

INTERVAL_SECONDS = tokens.USE_RECORD_INTERVAL.total_seconds()
# Tokens remembered at once before the ones written over a minute ago are let go.
_REMEMBERED = 4096


class TokenUses:
    """Records token uses for one database, off the requests' path."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._written: dict[int, float] = {}  # token id -> monotonic time its write started
        self._writes: set[asyncio.Task[None]] = set()

    def note(self, token_id: int) -> bool:
        """`token_id` was used just now. Returns at once: whether a write was started (at most
        one a minute per token)."""
        now = time.monotonic()
        last = self._written.get(token_id)
        if last is not None and now - last < INTERVAL_SECONDS:
            return False
        if len(self._written) >= _REMEMBERED:
            self._written = {
                token: at for token, at in self._written.items() if now - at < INTERVAL_SECONDS
            }
        self._written[token_id] = now
        task = asyncio.get_running_loop().create_task(
            self._write(token_id, datetime.now(UTC)), name=f"token-{token_id}-last-used"
        )
        # Held until done: the loop keeps only a weak reference to a task.
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return True

    async def _write(self, token_id: int, at: datetime) -> None:
        try:
            async with self._sessions.begin() as session:
                await tokens.record_use(session, token_id, at)
        except Exception as exc:
            self._written.pop(token_id, None)  # the next use tries again
            log.warning(
                "could not record when API token %d was last used (%s)",
                token_id,
                type(exc).__name__,
            )

    async def close(self) -> None:
        """Wait for the writes under way (before the database they write to is closed)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
