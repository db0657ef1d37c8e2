"""Use kinds and uses: the things that use a connection, and how their last run went."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store import domain, records, validation
from store.commands.base import UNSET, Unset, assign, count_rows, ensure_free, get_row, saving
from store.domain import UseStatus
from store.errors import ConflictError, NotFoundError, ValidationError
from store.models import ConnectionRow, UseKindRow, UseRow
from store.outbox import record_use_event
from store.validation import MAX_KEY_LENGTH, MAX_TEXT_LENGTH


async def _use_kind_label(session: AsyncSession, kind: str) -> str:
    label = await session.scalar(select(UseKindRow.label).where(UseKindRow.kind == kind))
    if label is None:
        known = (await session.scalars(select(UseKindRow.kind).order_by(UseKindRow.kind))).all()
        raise ValidationError(
            "kind", kind, f"{kind!r} is not a use kind; known kinds: {', '.join(known) or 'none'}"
        )
    return label


async def _get_use(session: AsyncSession, use_id: int) -> tuple[UseRow, str]:
    row = (
        await session.execute(
            select(UseRow, UseKindRow.label).join(UseKindRow).where(UseRow.id == use_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError("use", use_id)
    return row[0], row[1]


async def upsert_use_kind(session: AsyncSession, *, kind: str, label: str) -> domain.UseKind:
    """Create the use kind, or give the existing one this label."""
    kind = validation.text("kind", kind, MAX_KEY_LENGTH)
    label = validation.text("label", label)
    row = await session.scalar(select(UseKindRow).where(UseKindRow.kind == kind))
    if row is None:
        try:
            async with saving(session):
                session.add(UseKindRow(kind=kind, label=label))
            return domain.UseKind(kind=kind, label=label)
        except IntegrityError:
            # A concurrent transaction created it since we looked: relabel that one.
            row = await session.scalar(select(UseKindRow).where(UseKindRow.kind == kind))
            if row is None:
                raise
    async with saving(session):
        row.label = label
    return domain.UseKind(kind=row.kind, label=row.label)


async def create_use(
    session: AsyncSession, *, connection_id: int, kind: str, name: str
) -> domain.Use:
    """Create a use of a connection; `kind` must be a known use kind."""
    kind = validation.text("kind", kind, MAX_KEY_LENGTH)
    name = validation.text("name", name)

    async def check() -> str:
        await get_row(session, ConnectionRow, connection_id, "connection")
        label = await _use_kind_label(session, kind)
        await ensure_free(
            session,
            UseRow.id,
            UseRow.connection_id == connection_id,
            UseRow.kind == kind,
            UseRow.name == name,
            field="name",
            value=name,
            owner=f"{kind} use of this connection",
        )
        return label

    label = await check()
    row = UseRow(connection_id=connection_id, kind=kind, name=name, status=UseStatus.UNKNOWN)
    async with saving(session, check):
        session.add(row)
    return records.use(row, label)


async def update_use(
    session: AsyncSession, use_id: int, *, kind: str | Unset = UNSET, name: str | Unset = UNSET
) -> domain.Use:
    """Change the kind or name of a use."""
    values: dict[str, Any] = {}
    if kind is not UNSET:
        values["kind"] = validation.text("kind", kind, MAX_KEY_LENGTH)
    if name is not UNSET:
        values["name"] = validation.text("name", name)

    async def check() -> tuple[UseRow, str]:
        row, label = await _get_use(session, use_id)
        if "kind" in values:
            label = await _use_kind_label(session, values["kind"])
        if values:
            kind_after, name_after = values.get("kind", row.kind), values.get("name", row.name)
            await ensure_free(
                session,
                UseRow.id,
                UseRow.connection_id == row.connection_id,
                UseRow.kind == kind_after,
                UseRow.name == name_after,
                field="name",
                value=name_after,
                owner=f"{kind_after} use of this connection",
                exclude=use_id,
            )
        return row, label

    row, label = await check()
    async with saving(session, check):
        assign(row, values)
    return records.use(row, label)


async def delete_use(session: AsyncSession, use_id: int) -> domain.Use:
    """Delete a use."""
    row, label = await _get_use(session, use_id)
    record = records.use(row, label)
    async with saving(session):
        await session.delete(row)
    return record


async def report_use_run(
    session: AsyncSession, use_id: int, *, success: bool, error: str | None, at: datetime
) -> domain.Use:
    """Record how a run of the use went, as reported by the app that runs it."""
    at = validation.aware("at", at)
    row, label = await _get_use(session, use_id)
    old_status = row.status
    async with saving(session):
        row.status = UseStatus.HEALTHY if success else UseStatus.FAILED
        row.last_run_at = at
        # The reporter's text is shown in tables and exports: keep it bounded.
        row.last_error = None if success or error is None else error[:MAX_TEXT_LENGTH]
    # In this transaction: the event is stored exactly when the run is (store.outbox).
    await record_use_event(await session.connection(), row, old_status, at)
    return records.use(row, label)


async def delete_use_kind(session: AsyncSession, kind: str) -> domain.UseKind:
    """Delete a use kind that no use has."""
    row = await get_row(session, UseKindRow, kind, "use kind")
    uses = await count_rows(session, UseRow, UseRow.kind == kind)
    if uses:
        raise ConflictError(
            "kind",
            kind,
            f"use kind {kind!r} is the kind of {validation.plural(uses, 'use')}; "
            "delete them or give them another kind first",
        )
    record = domain.UseKind(kind=row.kind, label=row.label)
    async with saving(session):
        await session.delete(row)
    return record
