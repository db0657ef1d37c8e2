"""The heartbeat scheduler: claim due connections, probe them, write the results in batches.

One `Scheduler` per worker process. The database is the only thing workers share: a claim is
a lease on rows (store.scheduling), so a worker may die at any moment and whatever it claimed
and did not write is checked by another worker after the lease.

Three loops run side by side: claiming and probing (bounded globally and per host), writing
buffered results (every `flush_interval_seconds` or `flush_size` results), and housekeeping
(inbound deadlines, history retention). None of them stops for an error: a probe that raises
becomes a failed check, a database error is logged and retried after a pause.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from probes.check import check_connection
from probes.registry import ProbeFunction, run_probe
from probes.target import ProbeContext
from store.crypto import KeyRing
from store.domain import CheckOutcome, StatusChange
from store.scheduling import (
    DueCheck,
    Jitter,
    claim_due_connections,
    mark_missed_heartbeats,
    prune_checks,
    record_outcomes,
    release_claims,
)

log = logging.getLogger(__name__)

OnChanges = Callable[[list[StatusChange]], Awaitable[None]]
CheckRunner = Callable[[DueCheck], Awaitable[tuple[CheckOutcome, float]]]
"""Runs one check somewhere (probes.pool's child processes): its outcome and seconds."""
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    concurrency: int = 200  # probes in flight at once, per worker
    per_host_concurrency: int = 20  # of which at most this many to one host
    claim_batch: int = 200  # rows per claim transaction
    lease_seconds: float = 60.0  # how long a claim keeps other workers off a row
    flush_size: int = 500  # write when this many results wait...
    flush_interval_seconds: float = 0.5  # ...or this long after the last write
    idle_poll_seconds: float = 0.5  # how soon to look again when nothing is due
    error_pause_seconds: float = 2.0  # after a database error
    jitter_ratio: float = 0.1  # next due time: interval ± this share of it
    retention: timedelta = timedelta(days=7)
    keep_latest: int = 100  # checks kept per connection whatever their age
    prune_interval_seconds: float = 300.0
    sweep_interval_seconds: float = 1.0  # inbound deadlines
    sweep_batch: int = 1000
    shutdown_grace_seconds: float = 5.0  # probes in flight get this long to finish on stop
    # Checks claimed and waiting for a busy host's slot, at most this many per worker: they
    # do not count against `concurrency`, so one hanging host cannot stop every other.
    max_waiting: int = 4000

    def __post_init__(self) -> None:
        for name in (
            "concurrency",
            "per_host_concurrency",
            "claim_batch",
            "flush_size",
            "max_waiting",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if not 0 <= self.jitter_ratio < 1:
            raise ValueError("jitter_ratio must be in [0, 1)")


def random_jitter(ratio: float, rng: random.Random | None = None) -> Jitter:
    """± `ratio` of the interval, uniformly: connections created together drift apart."""
    source = rng or random.Random()  # not for secrets: spreading load only

    def jitter(interval: int) -> float:
        return source.uniform(-ratio, ratio) * interval

    return jitter


def _host(due: DueCheck) -> str:
    url = due.heartbeat.get("url")
    try:
        return (urlsplit(url).hostname or "") if isinstance(url, str) else ""
    except ValueError:
        return ""


def _describe(exc: BaseException) -> str:
    """An error in one line, without SQL or parameters (they may hold ciphertexts)."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0]}" if lines else type(inner).__name__


_DATABASE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


class _HostSlots:
    """A host's semaphore and how many probes use it."""

    __slots__ = ("semaphore", "users")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class _HostLimits:
    """One semaphore per host, dropped when no probe uses it (there may be 100k hosts).

    `enter`/`leave` rather than a generator-based context manager: this runs for every check.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._hosts: dict[str, _HostSlots] = {}

    def enter(self, host: str) -> asyncio.Semaphore:
        slots = self._hosts.get(host)
        if slots is None:
            slots = self._hosts[host] = _HostSlots(self._limit)
        slots.users += 1
        return slots.semaphore

    def leave(self, host: str) -> None:
        slots = self._hosts[host]
        slots.users -= 1
        if not slots.users:
            del self._hosts[host]


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
    ) -> None:
        """`run_check`: where checks run (default: in this process, with `probe`)."""
        self.worker_id = worker_id
        self.config = config or SchedulerConfig()
        self.checks_done = 0  # probe results written
        self._sessions = sessions
        self._context = context
        self._key_ring = key_ring
        self._on_changes = on_changes
        self._observer = observer
        self._probe = probe
        self._run_check = run_check or self._check_here
        self._jitter = jitter or random_jitter(self.config.jitter_ratio)
        self._clock = clock
        self._global = asyncio.Semaphore(self.config.concurrency)
        self._hosts = _HostLimits(self.config.per_host_concurrency)
        self._waiting_for_host = 0  # claimed checks not yet holding their host's slot
        self._inflight: set[int] = set()
        self._buffer: list[tuple[int, CheckOutcome]] = []
        self._flush_now = asyncio.Event()
        self._slot_freed = asyncio.Event()

    # --- one round, for tests and tools ----------------------------------------------------------

    async def run_once(self) -> int:
        """Sweep inbound deadlines, claim one batch, probe it and write it: probes recorded."""
        await self._sweep()
        claimed = await self._claim(self.config.claim_batch)
        if claimed:
            await asyncio.gather(*(self._check(item) for item in claimed[0]))
        done = 0
        while self._buffer:
            written = await self._flush()
            if written is None:
                break  # the database is down; the claims expire and another round retries
            done += written
        return done

    # --- the long-running loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then let probes in flight finish (briefly) and write them."""
        log.info(
            "scheduler %s: up to %d probes at once (%d per host), lease %g s",
            self.worker_id,
            self.config.concurrency,
            self.config.per_host_concurrency,
            self.config.lease_seconds,
        )
        writer = asyncio.create_task(self._write_loop(), name="scheduler-writer")
        keeper = asyncio.create_task(self._housekeeping_loop(), name="scheduler-housekeeping")
        probes: set[asyncio.Task[None]] = set()
        # Claim in chunks when busy: one claim per freed slot would be a transaction per probe.
        chunk = max(1, min(self.config.claim_batch, self.config.concurrency // 4))
        try:
            while not stop.is_set():
                room = self._room()
                if room < chunk and self._inflight:
                    self._slot_freed.clear()
                    await _first(stop, self._slot_freed, seconds=self.config.idle_poll_seconds)
                    continue
                asked = min(room, self.config.claim_batch)
                claimed = await self._claim(asked)
                if claimed is None:
                    await _first(stop, seconds=self.config.error_pause_seconds)
                    continue
                fresh, count = claimed
                for item in fresh:
                    task = asyncio.create_task(self._check(item))
                    probes.add(task)
                    task.add_done_callback(probes.discard)
                if count < asked:  # nothing more is due right now
                    await _first(stop, seconds=self.config.idle_poll_seconds)
        finally:
            await self._shut_down(probes, writer, keeper)

    # --- claiming and probing --------------------------------------------------------------------

    async def _claim(self, limit: int) -> tuple[list[DueCheck], int] | None:
        """Claim up to `limit` rows: (those to probe, how many were claimed), or None after a
        database error (logged).

        Claims come oldest due first: a host with a thousand hanging checks is claimed
        before the others. Its checks wait for its slots without taking the others' room
        (`_room`), so the next claims reach the other hosts.
        """
        try:
            async with self._sessions.begin() as session:
                due = await claim_due_connections(
                    session,
                    worker_id=self.worker_id,
                    now=self._clock(),
                    limit=limit,
                    lease_seconds=self.config.lease_seconds,
                )
        except _DATABASE_ERRORS as exc:
            log.warning(
                "scheduler %s: cannot claim due checks (%s); retrying in %g s",
                self.worker_id,
                _describe(exc),
                self.config.error_pause_seconds,
            )
            return None
        # A row still in flight here came back because its lease ran out while it waited:
        # the claim renewed the lease, and the probe already under way will write it.
        fresh = [item for item in due if item.connection_id not in self._inflight]
        self._inflight.update(item.connection_id for item in fresh)
        self._waiting_for_host += len(fresh)
        return fresh, len(due)

    def _room(self) -> int:
        """How many more checks to claim: free probe slots, counting those waiting for a busy
        host's slot as not using one, within `max_waiting` of such waiting checks."""
        probing = len(self._inflight) - self._waiting_for_host
        return min(
            self.config.concurrency - probing,
            self.config.concurrency + self.config.max_waiting - len(self._inflight),
        )

    async def _check(self, due: DueCheck) -> None:
        host = _host(due)
        host_slot = self._hosts.enter(host)
        waiting = True
        try:
            # Host first: a probe queued behind a busy host does not hold a global slot.
            async with host_slot:
                waiting = False
                self._waiting_for_host -= 1
                await self._probe_within_lease(due)
        finally:
            if waiting:
                self._waiting_for_host -= 1
            self._hosts.leave(host)
            self._inflight.discard(due.connection_id)
            self._slot_freed.set()

    async def _probe_within_lease(self, due: DueCheck) -> None:
        async with self._global:
            if due.lease_expires_at is not None and self._clock() >= due.lease_expires_at:
                # Waited too long for a slot: the row may be another worker's by now.
                log.debug("connection %d: lease ran out before its probe", due.connection_id)
                return
            outcome, seconds = await self._run_check(due)
        self._observe(due, outcome, seconds)
        self._buffer.append((due.connection_id, outcome))
        if len(self._buffer) >= self.config.flush_size:
            self._flush_now.set()

    async def _check_here(self, due: DueCheck) -> tuple[CheckOutcome, float]:
        started = time.perf_counter()
        outcome = await check_connection(due, self._context, self._key_ring, probe=self._probe)
        return outcome, time.perf_counter() - started

    def _observe(self, due: DueCheck, outcome: CheckOutcome, seconds: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer.check_finished(str(due.heartbeat.get("kind", "http")), outcome, seconds)
        except Exception:  # metrics never stop a check
            log.exception("scheduler %s: check observer failed", self.worker_id)

    # --- writing ---------------------------------------------------------------------------------

    async def _flush(self) -> int | None:
        """Write what is buffered in one transaction: its size, or None after a database error."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            async with self._sessions.begin() as session:
                changes = await record_outcomes(
                    session, worker_id=self.worker_id, outcomes=batch, jitter=self._jitter
                )
        except _DATABASE_ERRORS as exc:
            # Keep the results: the database may be back before their leases run out.
            self._buffer[:0] = batch
            log.warning(
                "scheduler %s: cannot write %d results (%s); retrying in %g s",
                self.worker_id,
                len(batch),
                _describe(exc),
                self.config.error_pause_seconds,
            )
            return None
        except asyncio.CancelledError:
            # Stopping mid-write: the transaction rolled back; the final flush writes these.
            self._buffer[:0] = batch
            raise
        except Exception:
            # Not the database: retrying the same batch would fail the same way. Its claims
            # expire and the checks run again.
            log.exception("scheduler %s: dropped %d results", self.worker_id, len(batch))
            return 0
        self.checks_done += len(batch)
        await self._publish(changes)
        return len(batch)

    async def _write_loop(self) -> None:
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(self.config.flush_interval_seconds):
                    await self._flush_now.wait()
            self._flush_now.clear()
            if await self._flush() is None:
                await asyncio.sleep(self.config.error_pause_seconds)

    async def _publish(self, changes: list[StatusChange]) -> None:
        for change in changes:
            log.info(
                "connection %d: %s/%s -> %s/%s",
                change.connection_id,
                change.old_state.value,
                change.old_status.value,
                change.new_state.value,
                change.new_status.value,
            )
        if changes and self._on_changes is not None:
            try:
                await self._on_changes(changes)
            except Exception:  # a subscriber's failure is not the scheduler's
                log.exception("scheduler %s: on_changes failed", self.worker_id)

    # --- housekeeping ----------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Inbound connections past their deadline: count the missed heartbeats."""
        try:
            async with self._sessions.begin() as session:
                changes = await mark_missed_heartbeats(
                    session, now=self._clock(), limit=self.config.sweep_batch
                )
        except _DATABASE_ERRORS as exc:
            log.warning("scheduler %s: inbound sweep failed (%s)", self.worker_id, _describe(exc))
            return
        await self._publish(changes)

    async def prune(self) -> int:
        """Apply the retention limit once; rows deleted (0 after a logged database error)."""
        try:
            async with self._sessions.begin() as session:
                deleted = await prune_checks(
                    session,
                    older_than=self._clock() - self.config.retention,
                    keep_latest=self.config.keep_latest,
                )
        except _DATABASE_ERRORS as exc:
            log.warning("scheduler %s: pruning failed (%s)", self.worker_id, _describe(exc))
            return 0
        if deleted:
            log.info("scheduler %s: pruned %d old checks", self.worker_id, deleted)
        return deleted

    async def _housekeeping_loop(self) -> None:
        next_prune = time.monotonic()
        while True:
            try:
                await self._sweep()
                if time.monotonic() >= next_prune:
                    await self.prune()
                    next_prune = time.monotonic() + self.config.prune_interval_seconds
            except Exception:  # never let housekeeping die silently
                log.exception("scheduler %s: housekeeping failed", self.worker_id)
            await asyncio.sleep(self.config.sweep_interval_seconds)

    # --- stopping --------------------------------------------------------------------------------

    async def _shut_down(
        self,
        probes: set[asyncio.Task[None]],
        writer: asyncio.Task[None],
        keeper: asyncio.Task[None],
    ) -> None:
        if probes:
            await asyncio.wait(set(probes), timeout=self.config.shutdown_grace_seconds)
        unfinished = sorted(self._inflight)
        for task in (*probes, writer, keeper):
            task.cancel()
        await asyncio.gather(*probes, writer, keeper, return_exceptions=True)
        while self._buffer:
            if await self._flush() is None:
                log.warning(
                    "scheduler %s: %d results not written; they are checked again after the lease",
                    self.worker_id,
                    len(self._buffer),
                )
                break
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
        except _DATABASE_ERRORS as exc:
            log.warning("scheduler %s: cannot release claims (%s)", self.worker_id, _describe(exc))


async def _first(*events: asyncio.Event, seconds: float) -> None:
    """Wait until any of `events` is set, or `seconds` pass."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
