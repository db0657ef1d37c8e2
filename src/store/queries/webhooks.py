"""Webhook endpoints and their deliveries, as the API lists them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import records
from store.domain import WebhookDelivery, WebhookEndpoint
from store.models import WebhookDeliveryRow, WebhookEndpointRow, WebhookEventRow
from store.pagination import Page, PageRequest, keyset_page, paginate_rows, paginate_rows_of

_ENDPOINT = WebhookEndpointRow.__table__
_DELIVERY = WebhookDeliveryRow.__table__


def _within(consumer_id: int | None) -> tuple[ColumnElement[bool], ...]:
    """A consumer's token sees the endpoints made with a token of that consumer only."""
    if consumer_id is None:
        return ()
    return (WebhookEndpointRow.consumer_id == consumer_id,)


async def list_webhook_endpoints(
    session: AsyncSession, page: PageRequest, *, consumer_id: int | None = None
) -> Page[WebhookEndpoint]:
    """Endpoints, oldest first."""
    statement = select(_ENDPOINT).where(*_within(consumer_id))
    keyset = keyset_page(statement, WebhookEndpointRow.id, page.after is not None)
    return await paginate_rows(session, keyset, page, records.webhook_endpoint)


async def count_webhook_endpoints(session: AsyncSession, *, consumer_id: int | None = None) -> int:
    statement = select(func.count()).select_from(_ENDPOINT).where(*_within(consumer_id))
    return int(await session.scalar(statement) or 0)


async def webhook_endpoints_by_id(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, WebhookEndpoint]:
    rows = await session.execute(
        select(_ENDPOINT).where(WebhookEndpointRow.id.in_(sorted(set(ids))))
    )
    return {row.id: records.webhook_endpoint(row) for row in rows}


def _deliveries(endpoint_id: int) -> Select[Any]:
    return (
        select(_DELIVERY, WebhookEventRow.type.label("event_type"))
        .join(WebhookEventRow, WebhookEventRow.id == WebhookDeliveryRow.event_id)
        .where(WebhookDeliveryRow.endpoint_id == endpoint_id)
    )


async def list_deliveries(
    session: AsyncSession, endpoint_id: int, page: PageRequest
) -> Page[WebhookDelivery]:
    """An endpoint's deliveries, newest first (what someone looking at them wants)."""
    statement = _deliveries(endpoint_id)
    if page.after is not None:
        statement = statement.where(WebhookDeliveryRow.id < bindparam("after_id"))
    statement = statement.order_by(WebhookDeliveryRow.id.desc()).limit(bindparam("row_limit"))
    parameters = {"row_limit": page.first + 1}
    if page.after_id is not None:
        parameters["after_id"] = page.after_id
    rows = (await (await session.connection()).execute(statement, parameters)).all()
    return paginate_rows_of(rows, page, lambda row: records.webhook_delivery(row, row.event_type))


async def count_deliveries(session: AsyncSession, endpoint_id: int) -> int:
    statement = select(func.count()).where(WebhookDeliveryRow.endpoint_id == endpoint_id)
    return int(await session.scalar(statement) or 0)


async def webhook_delivery(session: AsyncSession, delivery_id: int) -> WebhookDelivery | None:
    statement = (
        select(_DELIVERY, WebhookEventRow.type.label("event_type"))
        .join(WebhookEventRow, WebhookEventRow.id == WebhookDeliveryRow.event_id)
        .where(WebhookDeliveryRow.id == delivery_id)
    )
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else records.webhook_delivery(row, row.event_type)
