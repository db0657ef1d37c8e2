"""The webhook loop beside the scheduler: dispatch the outbox, claim due deliveries, send them,
record how each went.

It runs as its own task, on its own sessions and its own in-flight bound, so a slow or hanging
receiver costs the checks nothing: a check never waits for a webhook, and the checks' writes
never wait behind a delivery (SQLite: the few writes here are short transactions of their own).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from probes.scheduler_config import DATABASE_ERRORS, describe
from probes.target import ProbeContext
from probes.waiting import first_of
from probes.webhook_sender import (
    WEBHOOK_TIMEOUT_SECONDS,
    SendResult,
    send_webhook,
    webhook_headers,
)
from store.crypto import KeyRing, KeyRingError
from store.deliveries import (
    DeliveryAttempt,
    DeliveryPolicy,
    DueDelivery,
    claim_due_deliveries,
    prune_history,
    record_attempts,
)
from store.dispatch import dispatch_events
from store.outages import OutageRules

log = logging.getLogger(__name__)

Render = Callable[[DueDelivery], bytes]
"""The JSON body of a delivery's event (the composition root adds what only it knows)."""


class DeliveryObserver(Protocol):
    """Told of every delivery attempt (the exporter's self-metrics implement it)."""

    def delivery_finished(self, result: str) -> None: ...


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    concurrency: int = 32  # deliveries in flight at once in this process
    per_endpoint: int = 4  # of which at most this many to one endpoint
    poll_seconds: float = 0.5
    lease_seconds: float = 60.0  # many times the 10 s a delivery may take
    record_every_seconds: float = 0.1
    timeout_seconds: float = WEBHOOK_TIMEOUT_SECONDS  # any 2xx within it is delivered
    retention: timedelta = timedelta(days=7)  # told events and ended mutes kept this long
    prune_every_seconds: float = 600.0


class WebhookWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        context: ProbeContext,
        key_ring: KeyRing,
        *,
        worker_id: str,
        render: Render,
        rules: OutageRules | None = None,
        policy: DeliveryPolicy | None = None,
        config: WebhookConfig | None = None,
        observer: DeliveryObserver | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._context = context
        self._key_ring = key_ring
        self.worker_id = worker_id
        self._render = render
        self._rules = rules or OutageRules()
        self._policy = policy or DeliveryPolicy()
        self.config = config or WebhookConfig()
        self._observer = observer
        self._clock = clock
        self._in_flight: dict[int, int] = {}  # endpoint id -> deliveries in flight
        self._done: list[DeliveryAttempt] = []
        self._changed = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; deliveries in flight then finish (within their timeout) and
        are recorded."""
        sending: set[asyncio.Task[None]] = set()
        next_prune = time.monotonic()
        finishing = asyncio.Event()
        recorder = asyncio.create_task(self._record_loop(finishing))
        try:
            while not stop.is_set():
                try:
                    await self._dispatch()
                    started = await self._start_due(sending)
                    if time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + self.config.prune_every_seconds
                        await self._prune()
                except Exception:  # a bug here must never stop the checks beside it
                    log.exception("webhooks: the delivery loop failed; trying again shortly")
                    started = 0
                if not started:
                    self._changed.clear()
                    await first_of(stop, self._changed, seconds=self.config.poll_seconds)
        finally:
            if sending:
                await asyncio.wait(set(sending))
            finishing.set()
            # Not cancelled: a write cut off midway would lose the attempts it carried.
            await asyncio.gather(recorder, return_exceptions=True)
            await self._record()

    async def _prune(self) -> None:
        try:
            async with self._sessions.begin() as session:
                deleted = await prune_history(
                    session, older_than=self._clock() - self.config.retention
                )
        except DATABASE_ERRORS as exc:
            log.warning("webhooks: cannot prune history (%s)", describe(exc))
            return
        if deleted:
            log.info("webhooks: pruned %d old events and mutes", deleted)

    async def _dispatch(self) -> None:
        try:
            async with self._sessions.begin() as session:
                report = await dispatch_events(session, now=self._clock(), rules=self._rules)
        except DATABASE_ERRORS as exc:
            log.warning("webhooks: cannot dispatch events (%s)", describe(exc))
            return
        for connector_id in report.outages_started:
            log.warning("connector %d: outage started", connector_id)
        for connector_id in report.outages_ended:
            log.info("connector %d: outage ended", connector_id)

    async def _start_due(self, sending: set[asyncio.Task[None]]) -> int:
        room = self.config.concurrency - sum(self._in_flight.values())
        if room <= 0:
            return 0
        try:
            async with self._sessions.begin() as session:
                due = await claim_due_deliveries(
                    session,
                    worker_id=self.worker_id,
                    now=self._clock(),
                    limit=room,
                    lease_seconds=self.config.lease_seconds,
                    room_per_endpoint={
                        eid: self.config.per_endpoint - count
                        for eid, count in self._in_flight.items()
                    },
                    per_endpoint=self.config.per_endpoint,
                )
        except DATABASE_ERRORS as exc:
            log.warning("webhooks: cannot claim deliveries (%s)", describe(exc))
            return 0
        started = 0
        for delivery in due:
            self._in_flight[delivery.endpoint_id] = self._in_flight.get(delivery.endpoint_id, 0) + 1
            task = asyncio.create_task(self._send(delivery))
            sending.add(task)
            task.add_done_callback(sending.discard)
            started += 1
        return started

    async def _send(self, delivery: DueDelivery) -> None:
        try:
            result = await self._attempt(delivery)
        finally:
            self._in_flight[delivery.endpoint_id] -= 1
            if not self._in_flight[delivery.endpoint_id]:
                del self._in_flight[delivery.endpoint_id]
            self._changed.set()
        self._done.append(
            DeliveryAttempt(
                delivery_id=delivery.delivery_id,
                delivered=result.delivered,
                at=self._clock(),
                response_status=result.status,
                error=result.error,
            )
        )

    async def _attempt(self, delivery: DueDelivery) -> SendResult:
        try:
            secrets = [
                str(self._key_ring.decrypt(ciphertext)["secret"])
                for ciphertext in delivery.secret_ciphertexts
            ]
            body = self._render(delivery)
        except KeyRingError as exc:
            return SendResult(False, error=f"cannot sign: {exc}")
        except Exception as exc:  # a bug in rendering must not stop the other deliveries
            log.exception("webhooks: cannot render event %d", delivery.event_id)
            return SendResult(False, error=f"cannot render the event ({type(exc).__name__})")
        timestamp = int(self._clock().timestamp())
        headers = webhook_headers(secrets, f"evt_{delivery.event_id}", timestamp, body)
        return await send_webhook(
            self._context, delivery.url, body, headers, timeout_seconds=self.config.timeout_seconds
        )

    async def _record_loop(self, finishing: asyncio.Event) -> None:
        while not finishing.is_set():
            await asyncio.sleep(self.config.record_every_seconds)
            await self._record()

    async def _record(self) -> None:
        if not self._done:
            return
        attempts, self._done = self._done, []
        try:
            async with self._sessions.begin() as session:
                report = await record_attempts(
                    session,
                    worker_id=self.worker_id,
                    attempts=attempts,
                    policy=self._policy,
                    now=self._clock(),
                    draw=random.random,
                )
        except DATABASE_ERRORS as exc:
            # The leases run out and another try follows: at least once, never lost.
            log.warning("webhooks: cannot record %d attempts (%s)", len(attempts), describe(exc))
            return
        self._observe("delivered", report.delivered)
        self._observe("failed", report.failed)
        self._observe("gave_up", report.gave_up)
        for endpoint_id in report.disabled_endpoints:
            log.warning("webhook endpoint %d disabled: every delivery failed too long", endpoint_id)

    def _observe(self, result: str, count: int) -> None:
        if self._observer is None:
            return
        for _ in range(count):
            try:
                self._observer.delivery_finished(result)
            except Exception:  # metrics never stop a delivery
                log.exception("delivery observer failed")
                return
