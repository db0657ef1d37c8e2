"""Claiming due checks for one worker: how many to ask for, and the claim transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from probes.host_limits import InFlight
from probes.scheduler_config import DATABASE_ERRORS, SchedulerConfig, describe
from store.scheduling import DueCheck, claim_due_connections

log = logging.getLogger(__name__)


class Claimer:
    """Claims due connections for `worker_id`, never more than the worker has room for."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        worker_id: str,
        config: SchedulerConfig,
        in_flight: InFlight,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._worker_id = worker_id
        self._config = config
        self._in_flight = in_flight
        self._clock = clock

    def room(self) -> int:
        """How many more checks to claim: free probe slots, counting those waiting for a busy
        host's slot as not using one, within `max_waiting` of such waiting checks."""
        budget = self._config.probes_in_flight
        return min(
            budget - self._in_flight.probing,
            budget + self._config.max_waiting - len(self._in_flight),
        )

    async def claim(self, limit: int) -> tuple[list[DueCheck], int] | None:
        """Claim up to `limit` rows: (those to probe, how many were claimed), or None after a
        database error (logged).

        Claims come oldest due first: a host with a thousand hanging checks is claimed
        before the others. Its checks wait for its slots without taking the others' room
        (`room`), so the next claims reach the other hosts.
        """
        now = self._clock()
        try:
            async with self._sessions.begin() as session:
                due = await claim_due_connections(
                    session,
                    worker_id=self._worker_id,
                    now=now,
                    limit=limit,
                    lease_seconds=self._config.lease_seconds,
                    due_by=now + timedelta(seconds=self._config.claim_ahead_seconds),
                )
        except DATABASE_ERRORS as exc:
            log.warning(
                "scheduler %s: cannot claim due checks (%s); retrying in %g s",
                self._worker_id,
                describe(exc),
                self._config.error_pause_seconds,
            )
            return None
        # A row still in flight here came back because its lease ran out while it waited:
        # the claim renewed the lease, and the probe already under way will write it.
        fresh = [item for item in due if item.connection_id not in self._in_flight]
        for item in fresh:
            self._in_flight.claimed(item.connection_id)
        return fresh, len(due)
