"""Consumers: the customer accounts that own connections."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from store import domain, records, validation
from store.commands.base import UNSET, Unset, assign, ensure_free, get_row, saving
from store.models import ConsumerRow, utcnow


async def create_consumer(
    session: AsyncSession, *, external_id: str, name: str, email: str | None = None
) -> domain.Consumer:
    """Create a consumer; `external_id` (the client's own id) must be unused."""
    external_id = validation.text("external_id", external_id)
    name = validation.text("name", name)
    email = validation.email(email)

    async def check() -> None:
        await ensure_free(
            session,
            ConsumerRow.id,
            ConsumerRow.external_id == external_id,
            field="external_id",
            value=external_id,
            owner="consumer",
        )

    await check()
    row = ConsumerRow(external_id=external_id, name=name, email=email, created_at=utcnow())
    async with saving(session, check):
        session.add(row)
    return records.consumer(row)


async def update_consumer(
    session: AsyncSession,
    consumer_id: int,
    *,
    external_id: str | Unset = UNSET,
    name: str | Unset = UNSET,
    email: str | Unset | None = UNSET,
) -> domain.Consumer:
    """Change the given fields; `email=None` removes the email."""
    values: dict[str, Any] = {}
    if external_id is not UNSET:
        values["external_id"] = validation.text("external_id", external_id)
    if name is not UNSET:
        values["name"] = validation.text("name", name)
    if email is not UNSET:
        values["email"] = validation.email(email)

    async def check() -> ConsumerRow:
        row = await get_row(session, ConsumerRow, consumer_id, "consumer")
        if "external_id" in values:
            await ensure_free(
                session,
                ConsumerRow.id,
                ConsumerRow.external_id == values["external_id"],
                field="external_id",
                value=values["external_id"],
                owner="consumer",
                exclude=consumer_id,
            )
        return row

    row = await check()
    async with saving(session, check):
        assign(row, values)
    return records.consumer(row)


async def delete_consumer(session: AsyncSession, consumer_id: int) -> domain.Consumer:
    """Delete a consumer and (ON DELETE CASCADE) its connections, uses, activations, tokens."""
    row = await get_row(session, ConsumerRow, consumer_id, "consumer")
    record = records.consumer(row)
    async with saving(session):
        await session.delete(row)
    return record
