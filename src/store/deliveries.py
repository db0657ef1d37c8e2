"""Webhook deliveries: claimed by senders under a lease, retried with backoff, given up after a
day; an endpoint that has failed every delivery for three days is disabled.

Claims work as the scheduler's (store.scheduling): on PostgreSQL `FOR UPDATE SKIP LOCKED` and
a lease written in the same transaction, so several workers share the deliveries and no
delivery is in flight twice at once; a sender that dies leaves its claims to the next one
after the lease. Delivery is at least once: a sender killed between the receiver's 2xx and its
own commit sends that event again (receivers deduplicate by `webhook-id`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.domain import DeliveryState
from store.engine import begin_writing
from store.models import MuteRow, WebhookDeliveryRow, WebhookEndpointRow, WebhookEventRow
from store.validation import MAX_TEXT_LENGTH

_DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)
_ENDPOINTS = cast(Table, WebhookEndpointRow.__table__)
_EVENTS = cast(Table, WebhookEventRow.__table__)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are retried and when they, or their endpoint, are given up."""

    first_retry_seconds: float = 5.0
    retry_factor: float = 4.0
    max_retry_seconds: float = 3600.0
    jitter_ratio: float = 0.2
    give_up_after: timedelta = timedelta(hours=24)
    disable_after: timedelta = timedelta(days=3)

    def retry_delay(self, attempts: int, draw: Callable[[], float] = random.random) -> float:
        """Seconds before the next try after `attempts` failed ones: 5 s, 20 s, 80 s, … up to an
        hour, each ±20 % so that endpoints that failed together are not retried together."""
        base = min(
            self.max_retry_seconds,
            self.first_retry_seconds * self.retry_factor ** max(0, attempts - 1),
        )
        return base * (1 + self.jitter_ratio * (2 * draw() - 1))


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """One event to send to one endpoint, with what sending it needs. repr shows no secret."""

    delivery_id: int
    event_id: int
    event_type: str
    occurred_at: datetime
    data: dict[str, Any]
    attempts: int
    endpoint_id: int
    url: str
    # The endpoint's signing secrets, encrypted: the current one, and the previous one while
    # a rotation's grace period lasts (Standard Webhooks allows several signatures).
    secret_ciphertexts: tuple[bytes, ...] = field(repr=False)
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    delivery_id: int
    delivered: bool
    at: datetime
    response_status: int | None = None
    error: str | None = None  # why it failed, for people: no secret in it


@dataclass(slots=True)
class AttemptsReport:
    delivered: int = 0
    failed: int = 0  # to be retried
    gave_up: int = 0
    disabled_endpoints: list[int] = field(default_factory=list)


async def claim_due_deliveries(
    session: AsyncSession,
    *,
    worker_id: str,
    now: datetime,
    limit: int,
    lease_seconds: float,
    per_endpoint: int,
    room_per_endpoint: Mapping[int, int] | None = None,
) -> list[DueDelivery]:
    """Claim up to `limit` pending deliveries due by `now`, to enabled endpoints, oldest due
    first, at most `per_endpoint` to one endpoint (`room_per_endpoint`: fewer to those the
    caller is already sending to), for `lease_seconds`. The claim holds once the caller's
    transaction commits.

    Endpoints without room are left out of the scan, so a receiver with a backlog (or one
    that hangs) never keeps the others' deliveries waiting.
    """
    if limit <= 0:
        return []
    room = dict(room_per_endpoint or {})
    connection = await begin_writing(session)
    query = (
        select(_DELIVERIES.c.id, _DELIVERIES.c.endpoint_id)
        .where(
            _DELIVERIES.c.state == DeliveryState.PENDING,
            _DELIVERIES.c.next_attempt_at <= now,
            or_(_DELIVERIES.c.lease_expires_at.is_(None), _DELIVERIES.c.lease_expires_at <= now),
            _DELIVERIES.c.endpoint_id.in_(
                select(_ENDPOINTS.c.id).where(_ENDPOINTS.c.enabled.is_(True))
            ),
        )
        .order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.id)
        .limit(limit)
    )
    full = sorted(eid for eid, left in room.items() if left <= 0)
    if full:
        query = query.where(_DELIVERIES.c.endpoint_id.not_in(full))
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=_DELIVERIES)
    ids = []
    for delivery_id, endpoint_id in await connection.execute(query):
        left = room.get(endpoint_id, per_endpoint)
        if left > 0:
            ids.append(delivery_id)
            room[endpoint_id] = left - 1
    if not ids:
        return []
    lease_expires_at = now + timedelta(seconds=lease_seconds)
    await connection.execute(
        update(_DELIVERIES)
        .where(_DELIVERIES.c.id.in_(ids))
        .values(claimed_by=worker_id, lease_expires_at=lease_expires_at)
    )
    rows = await connection.execute(
        select(
            _DELIVERIES.c.id,
            _DELIVERIES.c.event_id,
            _DELIVERIES.c.attempts,
            _DELIVERIES.c.endpoint_id,
            _EVENTS.c.type,
            _EVENTS.c.occurred_at,
            _EVENTS.c.data,
            _ENDPOINTS.c.url,
            _ENDPOINTS.c.secret_ciphertext,
            _ENDPOINTS.c.previous_secret_ciphertext,
            _ENDPOINTS.c.previous_secret_expires_at,
        )
        .join(_EVENTS, _EVENTS.c.id == _DELIVERIES.c.event_id)
        .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
        .where(_DELIVERIES.c.id.in_(ids))
        .order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.id)
    )
    return [
        DueDelivery(
            delivery_id=row.id,
            event_id=row.event_id,
            event_type=row.type,
            occurred_at=row.occurred_at,
            data=row.data,
            attempts=row.attempts,
            endpoint_id=row.endpoint_id,
            url=row.url,
            secret_ciphertexts=_secrets(row, now),
            lease_expires_at=lease_expires_at,
        )
        for row in rows
    ]


def _secrets(row: Any, now: datetime) -> tuple[bytes, ...]:
    previous = row.previous_secret_ciphertext
    if previous is not None and (
        row.previous_secret_expires_at is not None and row.previous_secret_expires_at > now
    ):
        return (row.secret_ciphertext, previous)
    return (row.secret_ciphertext,)


async def record_attempts(
    session: AsyncSession,
    *,
    worker_id: str,
    attempts: Sequence[DeliveryAttempt],
    policy: DeliveryPolicy,
    now: datetime,
    draw: Callable[[], float] = random.random,
) -> AttemptsReport:
    """Write how each claimed delivery went and release it; track each endpoint's failing
    streak and disable the endpoints whose streak reached `policy.disable_after`.

    An attempt for a delivery no longer claimed by `worker_id` (its lease ran out and another
    sender took it) is dropped: that sender's result is the one kept.
    """
    report = AttemptsReport()
    if not attempts:
        return report
    connection = await begin_writing(session)
    query = (
        select(
            _DELIVERIES.c.id,
            _DELIVERIES.c.endpoint_id,
            _DELIVERIES.c.attempts,
            _DELIVERIES.c.created_at,
        )
        .where(
            _DELIVERIES.c.id.in_([attempt.delivery_id for attempt in attempts]),
            _DELIVERIES.c.claimed_by == worker_id,
        )
        .order_by(_DELIVERIES.c.id)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    claimed = {row.id: row for row in await connection.execute(query)}
    updates: list[dict[str, Any]] = []
    endpoint_delivered: dict[int, datetime] = {}
    endpoint_failed: dict[int, tuple[datetime, str]] = {}
    for attempt in attempts:
        row = claimed.get(attempt.delivery_id)
        if row is None:
            continue
        tries = row.attempts + 1
        error = None if attempt.error is None else attempt.error[:MAX_TEXT_LENGTH]
        if attempt.delivered:
            state, next_attempt_at, delivered_at = DeliveryState.DELIVERED, None, attempt.at
            report.delivered += 1
            endpoint_delivered[row.endpoint_id] = attempt.at
        else:
            endpoint_failed[row.endpoint_id] = (attempt.at, error or "failed")
            delivered_at = None
            if attempt.at - row.created_at >= policy.give_up_after:
                state, next_attempt_at = DeliveryState.FAILED, None
                report.gave_up += 1
            else:
                state = DeliveryState.PENDING
                next_attempt_at = attempt.at + timedelta(seconds=policy.retry_delay(tries, draw))
                report.failed += 1
        updates.append(
            {
                "b_id": row.id,
                "b_state": state,
                "b_attempts": tries,
                "b_next_attempt_at": next_attempt_at,
                "b_last_attempt_at": attempt.at,
                "b_last_response_status": attempt.response_status,
                "b_last_error": error,
                "b_delivered_at": delivered_at,
            }
        )
    if updates:
        await connection.execute(
            update(_DELIVERIES)
            .where(_DELIVERIES.c.id == bindparam("b_id"))
            .values(
                state=bindparam("b_state"),
                attempts=bindparam("b_attempts"),
                next_attempt_at=bindparam("b_next_attempt_at"),
                last_attempt_at=bindparam("b_last_attempt_at"),
                last_response_status=bindparam("b_last_response_status"),
                last_error=bindparam("b_last_error"),
                delivered_at=bindparam("b_delivered_at"),
                claimed_by=None,
                lease_expires_at=None,
            ),
            updates,
        )
    if endpoint_delivered:
        await connection.execute(
            update(_ENDPOINTS)
            .where(_ENDPOINTS.c.id == bindparam("b_id"))
            .values(last_delivered_at=bindparam("b_at"), failing_since=None),
            [{"b_id": eid, "b_at": at} for eid, at in sorted(endpoint_delivered.items())],
        )
    failing = {eid: seen for eid, seen in endpoint_failed.items() if eid not in endpoint_delivered}
    if failing:
        await connection.execute(
            update(_ENDPOINTS)
            .where(_ENDPOINTS.c.id == bindparam("b_id"), _ENDPOINTS.c.failing_since.is_(None))
            .values(failing_since=bindparam("b_at")),
            [{"b_id": eid, "b_at": at} for eid, (at, _) in sorted(failing.items())],
        )
        report.disabled_endpoints = await _disable_failing(connection, failing, policy, now)
    return report


async def _disable_failing(
    connection: Any,
    failing: dict[int, tuple[datetime, str]],
    policy: DeliveryPolicy,
    now: datetime,
) -> list[int]:
    """Disable the endpoints among `failing` whose streak is `disable_after` old; their
    pending deliveries are given up with the reason."""
    rows = await connection.execute(
        select(_ENDPOINTS.c.id, _ENDPOINTS.c.failing_since).where(
            _ENDPOINTS.c.id.in_(sorted(failing)),
            _ENDPOINTS.c.enabled.is_(True),
            _ENDPOINTS.c.failing_since <= now - policy.disable_after,
        )
    )
    disabled = []
    for row in rows:
        _, last_error = failing[row.id]
        since = row.failing_since.strftime("%Y-%m-%d %H:%M UTC")
        days = policy.disable_after.total_seconds() / 86400
        reason = (
            f"every delivery has failed since {since} (over {days:g} days); last: {last_error}"
        )[:MAX_TEXT_LENGTH]
        await connection.execute(
            update(_ENDPOINTS)
            .where(_ENDPOINTS.c.id == row.id)
            .values(enabled=False, disabled_reason=reason)
        )
        await connection.execute(
            update(_DELIVERIES)
            .where(
                _DELIVERIES.c.endpoint_id == row.id,
                _DELIVERIES.c.state == DeliveryState.PENDING,
            )
            .values(
                state=DeliveryState.FAILED,
                last_error="not sent: the endpoint was disabled",
                claimed_by=None,
                lease_expires_at=None,
            )
        )
        disabled.append(row.id)
    return disabled


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is waiting to be told: events not yet dispatched and deliveries not yet done."""

    pending: int
    oldest_age_seconds: float


async def backlog(session: AsyncSession, now: datetime) -> Backlog:
    """Undispatched events and pending deliveries to enabled endpoints, and the age of the
    oldest of them (0 when there is none)."""
    connection = await session.connection()
    events, oldest_event = (
        await connection.execute(
            select(func.count(), func.min(_EVENTS.c.occurred_at)).where(
                _EVENTS.c.dispatched_at.is_(None)
            )
        )
    ).one()
    deliveries, oldest_delivery = (
        await connection.execute(
            select(func.count(), func.min(_DELIVERIES.c.created_at)).where(
                and_(
                    _DELIVERIES.c.state == DeliveryState.PENDING,
                    _DELIVERIES.c.endpoint_id.in_(
                        select(_ENDPOINTS.c.id).where(_ENDPOINTS.c.enabled.is_(True))
                    ),
                )
            )
        )
    ).one()
    oldest = [moment for moment in (oldest_event, oldest_delivery) if moment is not None]
    age = max(0.0, (now - min(oldest)).total_seconds()) if oldest else 0.0
    return Backlog(pending=int(events) + int(deliveries), oldest_age_seconds=age)


async def prune_history(session: AsyncSession, *, older_than: datetime) -> int:
    """Delete events told (or silenced) before `older_than` with no delivery still pending,
    their deliveries with them, and mutes that ended and were settled before it; rows deleted.
    """
    connection = await begin_writing(session)
    pending = select(_DELIVERIES.c.event_id).where(_DELIVERIES.c.state == DeliveryState.PENDING)
    events = await connection.execute(
        delete(_EVENTS).where(_EVENTS.c.dispatched_at < older_than, _EVENTS.c.id.not_in(pending))
    )
    mutes = cast(Table, MuteRow.__table__)
    ended = await connection.execute(
        delete(mutes).where(mutes.c.ends_at < older_than, mutes.c.settled_at.is_not(None))
    )
    return int(events.rowcount) + int(ended.rowcount)
