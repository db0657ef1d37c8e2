"""Writing a worker's probe results in batches, and telling subscribers what changed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from probes.scheduler_config import DATABASE_ERRORS, SchedulerConfig, describe
from probes.waiting import first_of
from store.domain import CheckOutcome, StatusChange
from store.scheduling import Jitter, record_outcomes

log = logging.getLogger(__name__)

OnChanges = Callable[[list[StatusChange]], Awaitable[None]]


async def publish_changes(
    worker_id: str, changes: list[StatusChange], on_changes: OnChanges | None
) -> None:
    """Log each change and hand them to `on_changes`; its failure is logged, never raised."""
    for change in changes:
        log.info(
            "connection %d: %s/%s -> %s/%s",
            change.connection_id,
            change.old_state.value,
            change.old_status.value,
            change.new_state.value,
            change.new_status.value,
        )
    if changes and on_changes is not None:
        try:
            await on_changes(changes)
        except Exception:  # a subscriber's failure is not the scheduler's
            log.exception("scheduler %s: on_changes failed", worker_id)


class ResultWriter:
    """Buffers results; writes them every `flush_interval_seconds` or `flush_size` results."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        worker_id: str,
        config: SchedulerConfig,
        jitter: Jitter,
        on_changes: OnChanges | None,
    ) -> None:
        self.written = 0  # results written
        self._sessions = sessions
        self._worker_id = worker_id
        self._config = config
        self._jitter = jitter
        self._on_changes = on_changes
        self._buffer: list[tuple[int, CheckOutcome]] = []
        self._flush_now = asyncio.Event()

    def __len__(self) -> int:
        return len(self._buffer)

    def add(self, connection_id: int, outcome: CheckOutcome) -> None:
        self._buffer.append((connection_id, outcome))
        if len(self._buffer) >= self._config.flush_size:
            self._flush_now.set()

    async def flush(self) -> int | None:
        """Write what is buffered in one transaction: its size, or None after a database error."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            async with self._sessions.begin() as session:
                changes = await record_outcomes(
                    session, worker_id=self._worker_id, outcomes=batch, jitter=self._jitter
                )
        except DATABASE_ERRORS as exc:
            # Keep the results: the database may be back before their leases run out.
            self._buffer[:0] = batch
            log.warning(
                "scheduler %s: cannot write %d results (%s); retrying in %g s",
                self._worker_id,
                len(batch),
                describe(exc),
                self._config.error_pause_seconds,
            )
            return None
        except asyncio.CancelledError:
            # Stopping mid-write: the transaction rolled back; the final flush writes these.
            self._buffer[:0] = batch
            raise
        except Exception:
            # Not the database: retrying the same batch would fail the same way. Its claims
            # expire and the checks run again.
            log.exception("scheduler %s: dropped %d results", self._worker_id, len(batch))
            return 0
        self.written += len(batch)
        await publish_changes(self._worker_id, changes, self._on_changes)
        return len(batch)

    async def flush_all(self) -> None:
        """Write everything buffered, or leave it (logged) when the database is down."""
        while self._buffer:
            if await self.flush() is None:
                log.warning(
                    "scheduler %s: %d results not written; they are checked again after the lease",
                    self._worker_id,
                    len(self._buffer),
                )
                return

    async def run(self, done: asyncio.Event) -> None:
        """Flush on size or interval until `done` is set; a write under way finishes first."""
        while not done.is_set():
            await first_of(self._flush_now, done, seconds=self._config.flush_interval_seconds)
            self._flush_now.clear()
            if done.is_set():
                return  # what is left is the caller's to flush_all
            if await self.flush() is None:
                await first_of(done, seconds=self._config.error_pause_seconds)
