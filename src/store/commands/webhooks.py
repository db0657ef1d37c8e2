"""Webhook endpoints: where events are sent, which ones, and the secret that signs them."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store import records, validation
from store.commands.base import UNSET, Unset, assign, get_row, saving
from store.crypto import KeyRing
from store.domain import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookEventType
from store.errors import ConflictError, ValidationError
from store.models import (
    ConsumerRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
    utcnow,
)
from store.outbound import OutboundPolicy, check_targets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
# Standard Webhooks: a secret is 24 to 64 random bytes, base64, after the prefix.
_SECRET_SIZES = range(24, 65)
MAX_URL_LENGTH = 2000
# How long the previous secret keeps signing beside the new one after a rotation, so receivers
# can switch over without refusing a delivery.
ROTATION_GRACE = timedelta(hours=24)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def check_secret(field: str, value: object) -> str:
    """A signing secret given by the user (the catalog's `secret_env`): whsec_ + base64 of 24 to
    64 bytes, as Standard Webhooks libraries expect. The value is never quoted back."""
    problem = (
        f"must be {SECRET_PREFIX!r} followed by the base64 of 24 to 64 random bytes "
        f"(for example from: python -c \"import base64,os;print('whsec_'+base64.b64encode("
        f'os.urandom(32)).decode())")'
    )
    if not isinstance(value, str) or not value.startswith(SECRET_PREFIX):
        raise ValidationError(field, "(hidden)", problem)
    try:
        raw = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "(hidden)", problem) from None
    if len(raw) not in _SECRET_SIZES:
        raise ValidationError(field, "(hidden)", problem)
    return value


def _url(value: object) -> str:
    url = validation.text("url", value, MAX_URL_LENGTH)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url", url, "must be an http or https URL with a host")
    if parts.username or parts.password:
        raise ValidationError(
            "url", parts.hostname, "must not carry a user or password; events are signed instead"
        )
    return url


def _events(value: Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    known = {kind.value for kind in WebhookEventType}
    chosen: list[str] = []
    for position, kind in enumerate(value):
        if kind not in known:
            raise ValidationError(
                f"events.{position}",
                kind,
                f"is not an event type; one of {', '.join(sorted(known))}",
            )
        if kind not in chosen:
            chosen.append(kind)
    if not chosen:
        raise ValidationError(
            "events", value, "must name at least one event type; leave it out for all of them"
        )
    return chosen


async def create_webhook_endpoint(
    session: AsyncSession,
    *,
    url: str,
    events: Sequence[str] | None,
    description: str | None,
    consumer_id: int | None,
    outbound: OutboundPolicy,
    key_ring: KeyRing,
    secret: str | None = None,
    secret_ref: dict[str, Any] | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (generated unless given): the only time the
    secret is returned."""
    checked_url = _url(url)
    chosen = _events(events)
    text = validation.optional_text("description", description, validation.MAX_TEXT_LENGTH)
    signing = new_secret() if secret is None else check_secret("secret", secret)
    if consumer_id is not None:
        await get_row(session, ConsumerRow, consumer_id, "consumer")
    await check_targets(outbound, [("url", checked_url)])
    row = WebhookEndpointRow(
        url=checked_url,
        events=chosen,
        description=text,
        enabled=True,
        consumer_id=consumer_id,
        secret_ciphertext=key_ring.encrypt({"secret": signing}),
        secret_ref=secret_ref,
    )
    async with saving(session):
        session.add(row)
    return records.webhook_endpoint(row), signing


async def update_webhook_endpoint(
    session: AsyncSession,
    endpoint_id: int,
    *,
    url: str | Unset = UNSET,
    events: Sequence[str] | Unset | None = UNSET,
    description: str | Unset | None = UNSET,
    enabled: bool | Unset = UNSET,
    outbound: OutboundPolicy,
) -> WebhookEndpoint:
    """Change the given fields. Enabling a disabled endpoint starts its failure count anew."""
    values: dict[str, Any] = {}
    if url is not UNSET:
        values["url"] = _url(url)
    if events is not UNSET:
        values["events"] = _events(events)
    if description is not UNSET:
        values["description"] = validation.optional_text(
            "description", description, validation.MAX_TEXT_LENGTH
        )
    if enabled is not UNSET:
        values["enabled"] = validation.boolean("enabled", enabled)
    row = await get_row(session, WebhookEndpointRow, endpoint_id, "webhook endpoint")
    if "url" in values:
        await check_targets(outbound, [("url", values["url"])])
    async with saving(session):
        changed = assign(row, values)
        if "enabled" in changed and row.enabled:
            row.disabled_reason = None
            row.failing_since = None
    return records.webhook_endpoint(row)


async def delete_webhook_endpoint(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    """Delete an endpoint with its deliveries."""
    row = await get_row(session, WebhookEndpointRow, endpoint_id, "webhook endpoint")
    record = records.webhook_endpoint(row)
    async with saving(session):
        await session.delete(row)
    return record


async def rotate_webhook_secret(
    session: AsyncSession,
    endpoint_id: int,
    *,
    key_ring: KeyRing,
    secret: str | None = None,
    now: datetime | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret (generated unless given); the previous one keeps signing beside it
    for `ROTATION_GRACE`, so receivers can switch without refusing a delivery."""
    signing = new_secret() if secret is None else check_secret("secret", secret)
    row = await get_row(session, WebhookEndpointRow, endpoint_id, "webhook endpoint")
    moment = now or utcnow()
    async with saving(session):
        row.previous_secret_ciphertext = row.secret_ciphertext
        row.previous_secret_expires_at = moment + ROTATION_GRACE
        row.secret_ciphertext = key_ring.encrypt({"secret": signing})
    return records.webhook_endpoint(row), signing


async def set_catalog_secret(
    session: AsyncSession,
    endpoint_id: int,
    *,
    secret: str,
    secret_ref: dict[str, Any],
    key_ring: KeyRing,
) -> bool:
    """The catalog's secret for its endpoint: replaced only when it differs from the stored
    one (whether it did), with no grace for the old one (the catalog says what holds)."""
    check_secret("secret", secret)
    row = await get_row(session, WebhookEndpointRow, endpoint_id, "webhook endpoint")
    stored = key_ring.decrypt(row.secret_ciphertext).get("secret")
    if stored == secret and row.secret_ref == secret_ref:
        return False
    async with saving(session):
        row.secret_ciphertext = key_ring.encrypt({"secret": secret})
        row.secret_ref = secret_ref
        row.previous_secret_ciphertext = None
        row.previous_secret_expires_at = None
    return True


async def redeliver_webhook_event(
    session: AsyncSession, delivery_id: int, *, now: datetime | None = None
) -> WebhookDelivery:
    """Send a delivery's event to its endpoint again: a pending delivery is tried at once, a
    finished one (delivered or given up) gets a new delivery of its own."""
    row = await get_row(session, WebhookDeliveryRow, delivery_id, "webhook delivery")
    endpoint = await get_row(session, WebhookEndpointRow, row.endpoint_id, "webhook endpoint")
    if not endpoint.enabled:
        raise ConflictError("id", delivery_id, "its webhook endpoint is disabled; enable it first")
    moment = now or utcnow()
    async with saving(session):
        if row.state == DeliveryState.PENDING:
            row.next_attempt_at = moment
            target = row
        else:
            target = WebhookDeliveryRow(
                event_id=row.event_id,
                endpoint_id=row.endpoint_id,
                state=DeliveryState.PENDING,
                attempts=0,
                next_attempt_at=moment,
                created_at=moment,
            )
            session.add(target)
    event_type = await session.scalar(
        select(WebhookEventRow.type).where(WebhookEventRow.id == target.event_id)
    )
    return records.webhook_delivery(target, str(event_type))
