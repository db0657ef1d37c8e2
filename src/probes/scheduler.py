"""The heartbeat scheduler: claim due connections, probe them, write the results in batches.

One `Scheduler` per worker process. The database is the only thing workers share: a claim is
a lease on rows (store.scheduling), so a worker may die at any moment and whatever it claimed
and did not write is checked by another worker after the lease.

Three loops run side by side: claiming and probing (here, bounded globally and per host, with
`Claimer`), writing buffered results (`ResultWriter`) and housekeeping (`Housekeeper`:
inbound deadlines, history retention). None of them stops for an error: a probe that raises
becomes a failed check, a database error is logged and retried after a pause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from probes.check import check_connection
from probes.claimer import Claimer
from probes.host_limits import HostLimits, InFlight
from probes.housekeeper import Housekeeper
from probes.registry import ProbeFunction, run_probe
from probes.result_writer import OnChanges, ResultWriter
from probes.scheduler_config import DATABASE_ERRORS, SchedulerConfig, describe, random_jitter
from probes.target import ProbeContext
from probes.token_broker import TokenBroker
from probes.waiting import first_of
from store.crypto import KeyRing
from store.domain import CheckOutcome
from store.scheduling import DueCheck, Jitter, release_claims

__all__ = [
    "CheckObserver",
    "CheckRunner",
    "OnChanges",
    "Scheduler",
    "SchedulerConfig",
    "random_jitter",
]

log = logging.getLogger(__name__)

CheckRunner = Callable[[DueCheck], Awaitable[tuple[CheckOutcome, float]]]
"""Runs one check somewhere (probes.pool's child processes): its outcome and seconds."""
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _host(due: DueCheck) -> str:
    url = due.heartbeat.get("url")
    try:
        return (urlsplit(url).hostname or "") if isinstance(url, str) else ""
    except ValueError:
        return ""


class CheckObserver(Protocol):
    """Told of every probe the scheduler runs (the exporter's self-metrics implement it)."""

    def check_finished(self, kind: str, outcome: CheckOutcome, seconds: float) -> None: ...


class Scheduler:
    """Claims, probes and records heartbeats for one worker; see the module docstring."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        context: ProbeContext,
        *,
        worker_id: str,
        key_ring: KeyRing | None = None,
        config: SchedulerConfig | None = None,
        on_changes: OnChanges | None = None,
        observer: CheckObserver | None = None,
        probe: ProbeFunction = run_probe,
        run_check: CheckRunner | None = None,
        jitter: Jitter | None = None,
        clock: Clock = utc_now,
        tokens: TokenBroker | None = None,
    ) -> None:
        """`run_check`: where checks run (default: in this process, with `probe`);
        `tokens`: access tokens for OAuth2 connections checked here."""
        self.worker_id = worker_id
        self.config = config or SchedulerConfig()
        self._sessions = sessions
        self._context = context
        self._key_ring = key_ring
        self._observer = observer
        self._probe = probe
        self._tokens = tokens
        self._run_check = run_check or self._check_here
        self._clock = clock
        self._global = asyncio.Semaphore(self.config.probes_in_flight)
        self._hosts = HostLimits(self.config.per_host_concurrency)
        self._in_flight = InFlight()
        self._claimer = Claimer(
            sessions,
            worker_id=worker_id,
            config=self.config,
            in_flight=self._in_flight,
            clock=clock,
        )
        self._writer = ResultWriter(
            sessions,
            worker_id=worker_id,
            config=self.config,
            jitter=jitter or random_jitter(self.config.jitter_ratio),
            on_changes=on_changes,
        )
        self._housekeeper = Housekeeper(
            sessions, worker_id=worker_id, config=self.config, on_changes=on_changes, clock=clock
        )

    @property
    def checks_done(self) -> int:
        """Probe results written."""
        return self._writer.written

    # --- one round, for tests and tools ----------------------------------------------------------

    async def run_once(self) -> int:
        """Sweep inbound deadlines, claim one batch, probe it and write it: probes recorded."""
        await self._housekeeper.sweep()
        claimed = await self._claimer.claim(self.config.claim_batch)
        if claimed:
            await asyncio.gather(*(self._check(item) for item in claimed[0]))
        done = 0
        while len(self._writer):
            written = await self._writer.flush()
            if written is None:
                break  # the database is down; the claims expire and another round retries
            done += written
        return done

    async def prune(self) -> int:
        """Apply the retention limit once; rows deleted (0 after a logged database error)."""
        return await self._housekeeper.prune()

    # --- the long-running loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then let probes in flight finish (briefly) and write them."""
        log.info(
            "scheduler %s: up to %d probes at once (%d per host), lease %g s",
            self.worker_id,
            self.config.probes_in_flight,
            self.config.per_host_concurrency,
            self.config.lease_seconds,
        )
        # The writer and the housekeeper are told to stop, never cancelled: a task cancelled
        # inside a transaction can leave its connection holding SQLite's write lock, and the
        # last flush then failed with "database is locked" after busy_timeout (3 stops in 5
        # at 6,000 connections a second).
        done = asyncio.Event()
        writer = asyncio.create_task(self._writer.run(done), name="scheduler-writer")
        keeper = asyncio.create_task(self._housekeeper.run(done), name="scheduler-housekeeping")
        probes: set[asyncio.Task[None]] = set()
        # Claim in chunks when busy: one claim per freed slot would be a transaction per probe.
        chunk = max(1, min(self.config.claim_batch, self.config.probes_in_flight // 4))
        try:
            while not stop.is_set():
                room = self._claimer.room()
                if room < chunk and len(self._in_flight):
                    self._in_flight.changed.clear()
                    await first_of(
                        stop, self._in_flight.changed, seconds=self.config.idle_poll_seconds
                    )
                    continue
                asked = min(room, self.config.claim_batch)
                claimed = await self._claimer.claim(asked)
                if claimed is None:
                    await first_of(stop, seconds=self.config.error_pause_seconds)
                    continue
                fresh, count = claimed
                for item in fresh:
                    task = asyncio.create_task(self._check(item))
                    probes.add(task)
                    task.add_done_callback(probes.discard)
                if count < asked:  # nothing more is due right now
                    await first_of(stop, seconds=self.config.idle_poll_seconds)
        finally:
            await self._shut_down(probes, done, writer, keeper)

    # --- probing ---------------------------------------------------------------------------------

    async def _check(self, due: DueCheck) -> None:
        host = _host(due)
        host_slot = self._hosts.enter(host)
        waiting = True
        try:
            await self._until_due(due)
            # Host first: a probe queued behind a busy host does not hold a global slot.
            async with host_slot:
                waiting = False
                self._in_flight.started()
                await self._probe_within_lease(due)
        finally:
            self._hosts.leave(host)
            self._in_flight.finished(due.connection_id, was_waiting=waiting)

    async def _until_due(self, due: DueCheck) -> None:
        """Claimed ahead of its time (SchedulerConfig.claim_ahead_seconds): wait for it."""
        if due.due_at is None:
            return
        early = (due.due_at - self._clock()).total_seconds()
        if early > 0:
            await asyncio.sleep(min(early, self.config.claim_ahead_seconds))

    async def _probe_within_lease(self, due: DueCheck) -> None:
        async with self._global:
            if due.lease_expires_at is not None and self._clock() >= due.lease_expires_at:
                # Waited too long for a slot: the row may be another worker's by now.
                log.debug("connection %d: lease ran out before its probe", due.connection_id)
                return
            outcome, seconds = await self._run_check(due)
        self._observe(due, outcome, seconds)
        self._writer.add(due.connection_id, outcome)

    async def _check_here(self, due: DueCheck) -> tuple[CheckOutcome, float]:
        started = time.perf_counter()
        outcome = await check_connection(
            due, self._context, self._key_ring, probe=self._probe, tokens=self._tokens
        )
        return outcome, time.perf_counter() - started

    def _observe(self, due: DueCheck, outcome: CheckOutcome, seconds: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer.check_finished(str(due.heartbeat.get("kind", "http")), outcome, seconds)
        except Exception:  # metrics never stop a check
            log.exception("scheduler %s: check observer failed", self.worker_id)

    # --- stopping --------------------------------------------------------------------------------

    async def _shut_down(
        self,
        probes: set[asyncio.Task[None]],
        done: asyncio.Event,
        writer: asyncio.Task[None],
        keeper: asyncio.Task[None],
    ) -> None:
        if probes:
            await asyncio.wait(set(probes), timeout=self.config.shutdown_grace_seconds)
        unfinished = self._in_flight.ids()
        for task in probes:
            task.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        done.set()
        await asyncio.gather(writer, keeper, return_exceptions=True)
        await self._writer.flush_all()
        if unfinished:
            await self._release(unfinished)
        log.info("scheduler %s: stopped after %d checks", self.worker_id, self.checks_done)

    async def _release(self, connection_ids: Sequence[int]) -> None:
        # So that other workers need not wait out the lease of checks this one gave up.
        try:
            async with self._sessions.begin() as session:
                await release_claims(
                    session, worker_id=self.worker_id, connection_ids=connection_ids
                )
        except DATABASE_ERRORS as exc:
            log.warning("scheduler %s: cannot release claims (%s)", self.worker_id, describe(exc))
