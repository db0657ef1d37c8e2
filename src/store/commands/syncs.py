"""Syncs and their activations: the data flows that need connections, and each consumer's
progress through their steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from store import domain, records, validation
from store.commands.base import UNSET, Unset, ensure_free, get_row, saving
from store.domain import SyncStep
from store.errors import NotFoundError, ValidationError
from store.models import (
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncActivationStepRow,
    SyncRequirementRow,
    SyncRow,
    utcnow,
)
from store.validation import MAX_TEXT_LENGTH


def _connector_ids(value: Sequence[int]) -> tuple[int, ...]:
    ids = tuple(value)
    for position, connector_id in enumerate(ids):
        if connector_id in ids[:position]:
            raise ValidationError(
                "required_connector_ids", list(ids), f"connector {connector_id} is listed twice"
            )
    return ids


async def _check_connectors_exist(session: AsyncSession, ids: Sequence[int]) -> None:
    found = set(await session.scalars(select(ConnectorRow.id).where(ConnectorRow.id.in_(ids))))
    for connector_id in ids:
        if connector_id not in found:
            raise NotFoundError("connector", connector_id)


async def create_sync(
    session: AsyncSession, *, name: str, required_connector_ids: Sequence[int]
) -> domain.Sync:
    """Create a sync that needs connections to these connectors (in this order)."""
    name = validation.text("name", name)
    ids = _connector_ids(required_connector_ids)

    async def check() -> None:
        await _check_connectors_exist(session, ids)
        await ensure_free(
            session, SyncRow.id, SyncRow.name == name, field="name", value=name, owner="sync"
        )

    await check()
    row = SyncRow(
        name=name,
        created_at=utcnow(),
        requirements=[
            SyncRequirementRow(connector_id=connector_id, position=position)
            for position, connector_id in enumerate(ids)
        ],
    )
    async with saving(session, check):
        session.add(row)
    return records.sync(row)


async def update_sync(
    session: AsyncSession,
    sync_id: int,
    *,
    name: str | Unset = UNSET,
    required_connector_ids: Sequence[int] | Unset = UNSET,
) -> domain.Sync:
    """Rename the sync or replace its required connectors."""
    new_name = UNSET if name is UNSET else validation.text("name", name)
    ids = UNSET if required_connector_ids is UNSET else _connector_ids(required_connector_ids)

    async def check() -> SyncRow:
        row = await get_row(session, SyncRow, sync_id, "sync", selectinload(SyncRow.requirements))
        if ids is not UNSET:
            await _check_connectors_exist(session, ids)
        if new_name is not UNSET:
            await ensure_free(
                session,
                SyncRow.id,
                SyncRow.name == new_name,
                field="name",
                value=new_name,
                owner="sync",
                exclude=sync_id,
            )
        return row

    row = await check()
    async with saving(session, check):
        if new_name is not UNSET:
            row.name = new_name
        if ids is not UNSET:
            # Keep the rows of connectors that stay (their key is (sync, connector)).
            kept = {requirement.connector_id: requirement for requirement in row.requirements}
            row.requirements = [
                kept.get(connector_id) or SyncRequirementRow(connector_id=connector_id)
                for connector_id in ids
            ]
            for position, requirement in enumerate(row.requirements):
                requirement.position = position
    return records.sync(row)


async def delete_sync(session: AsyncSession, sync_id: int) -> domain.Sync:
    """Delete a sync with its activations (ON DELETE CASCADE)."""
    row = await get_row(session, SyncRow, sync_id, "sync")
    record = records.sync(row)
    async with saving(session):
        await session.delete(row)
    return record


# --- sync activations --------------------------------------------------------------------------


async def create_sync_activation(
    session: AsyncSession, *, sync_id: int, consumer_id: int
) -> domain.SyncActivation:
    """Start a consumer's activation of a sync, with every step incomplete."""

    async def check() -> None:
        sync = await get_row(session, SyncRow, sync_id, "sync")
        consumer = await get_row(session, ConsumerRow, consumer_id, "consumer")
        existing = await session.scalar(
            select(SyncActivationRow.id).where(
                SyncActivationRow.sync_id == sync_id,
                SyncActivationRow.consumer_id == consumer_id,
            )
        )
        if existing is not None:
            raise ValidationError(
                "consumer_id",
                consumer_id,
                f"consumer {consumer.external_id!r} already has an activation of sync "
                f"{sync.name!r} (activation {existing})",
            )

    await check()
    now = utcnow()
    row = SyncActivationRow(
        sync_id=sync_id,
        consumer_id=consumer_id,
        created_at=now,
        updated_at=now,
        steps=[
            SyncActivationStepRow(step=step, complete=False, detail=None)
            for step in domain.SYNC_STEPS
        ],
    )
    async with saving(session, check):
        session.add(row)
    return records.sync_activation(row)


async def update_sync_activation(
    session: AsyncSession,
    activation_id: int,
    *,
    steps: Mapping[SyncStep, tuple[bool, str | None]],
) -> domain.SyncActivation:
    """Set (complete, detail) of the given steps; the others stay as they are."""
    wanted = {
        step: (
            complete,
            validation.optional_text(f"steps.{step.value}.detail", detail, MAX_TEXT_LENGTH),
        )
        for step, (complete, detail) in steps.items()
    }
    row = await get_row(
        session,
        SyncActivationRow,
        activation_id,
        "sync activation",
        selectinload(SyncActivationRow.steps),
    )
    async with saving(session):
        existing = {step_row.step: step_row for step_row in row.steps}
        for step, (complete, detail) in wanted.items():
            if step in existing:
                existing[step].complete, existing[step].detail = complete, detail
            else:  # written before every activation got all three step rows
                row.steps.append(SyncActivationStepRow(step=step, complete=complete, detail=detail))
        row.updated_at = utcnow()
    return records.sync_activation(row)


async def delete_sync_activation(
    session: AsyncSession, activation_id: int
) -> domain.SyncActivation:
    """Delete an activation with its steps (ON DELETE CASCADE)."""
    row = await get_row(
        session,
        SyncActivationRow,
        activation_id,
        "sync activation",
        selectinload(SyncActivationRow.steps),
    )
    record = records.sync_activation(row)
    async with saving(session):
        await session.delete(row)
    return record
