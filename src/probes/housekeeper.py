"""A worker's housekeeping: missed inbound heartbeats, and the history's retention limit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from probes.result_writer import OnChanges, publish_changes
from probes.scheduler_config import DATABASE_ERRORS, SchedulerConfig, describe
from probes.waiting import first_of
from store.scheduling import mark_missed_heartbeats, prune_checks

log = logging.getLogger(__name__)


class Housekeeper:
    """Sweeps inbound deadlines every `sweep_interval_seconds`, prunes history every
    `prune_interval_seconds`; a failure is logged and the loop goes on."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        worker_id: str,
        config: SchedulerConfig,
        on_changes: OnChanges | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._worker_id = worker_id
        self._config = config
        self._on_changes = on_changes
        self._clock = clock

    async def sweep(self) -> None:
        """Inbound connections past their deadline: count the missed heartbeats."""
        try:
            async with self._sessions.begin() as session:
                changes = await mark_missed_heartbeats(
                    session, now=self._clock(), limit=self._config.sweep_batch
                )
        except DATABASE_ERRORS as exc:
            log.warning("scheduler %s: inbound sweep failed (%s)", self._worker_id, describe(exc))
            return
        await publish_changes(self._worker_id, changes, self._on_changes)

    async def prune(self) -> int:
        """Apply the retention limit once; rows deleted (0 after a logged database error)."""
        try:
            async with self._sessions.begin() as session:
                deleted = await prune_checks(
                    session,
                    older_than=self._clock() - self._config.retention,
                    keep_latest=self._config.keep_latest,
                )
        except DATABASE_ERRORS as exc:
            log.warning("scheduler %s: pruning failed (%s)", self._worker_id, describe(exc))
            return 0
        if deleted:
            log.info("scheduler %s: pruned %d old checks", self._worker_id, deleted)
        return deleted

    async def run(self, done: asyncio.Event) -> None:
        """Until `done` is set; a sweep or prune under way finishes first."""
        next_prune = time.monotonic()
        while not done.is_set():
            try:
                await self.sweep()
                if time.monotonic() >= next_prune:
                    await self.prune()
                    next_prune = time.monotonic() + self._config.prune_interval_seconds
            except Exception:  # never let housekeeping die silently
                log.exception("scheduler %s: housekeeping failed", self._worker_id)
            await first_of(done, seconds=self._config.sweep_interval_seconds)
