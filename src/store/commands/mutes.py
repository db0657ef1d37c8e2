"""Mutes (over the API) and maintenance windows (from the catalog): while one holds, nothing
is told about what it silences, and the shipped alert rules do not page for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store import validation
from store.commands.base import get_row, saving
from store.domain import Mute, MuteScope
from store.errors import ValidationError
from store.models import ConnectionRow, ConnectorRow, ConsumerRow, MuteRow, utcnow
from store.mutes import mute_of

MAX_MUTE = timedelta(days=366)
_TARGETS = {
    MuteScope.CONNECTION: (ConnectionRow, "connection", MuteRow.connection_id),
    MuteScope.CONNECTOR: (ConnectorRow, "connector", MuteRow.connector_id),
    MuteScope.CONSUMER: (ConsumerRow, "consumer", MuteRow.consumer_id),
}


def _target_column(scope: MuteScope) -> str:
    return _TARGETS[scope][1] + "_id"


async def mute(
    session: AsyncSession,
    scope: MuteScope,
    target_id: int,
    *,
    until: datetime,
    reason: str,
    now: datetime | None = None,
) -> Mute:
    """Silence a connection, connector or consumer from now until `until` (at most a year),
    replacing the API mute it already has."""
    moment = now or utcnow()
    until = validation.aware("until", until)
    if until <= moment:
        raise ValidationError("until", until.isoformat(), "must be in the future")
    if until > moment + MAX_MUTE:
        raise ValidationError("until", until.isoformat(), "must be within a year from now")
    text = validation.text("reason", reason, validation.MAX_TEXT_LENGTH)
    model, kind, column = _TARGETS[scope]
    await get_row(session, model, target_id, kind)
    existing = await session.scalar(
        select(MuteRow).where(
            MuteRow.scope == scope,
            column == target_id,
            MuteRow.from_catalog.is_(False),
            MuteRow.ends_at > moment,
        )
    )
    async with saving(session):
        row = existing or MuteRow(scope=scope, from_catalog=False, starts_at=moment)
        setattr(row, _target_column(scope), target_id)
        row.ends_at = until
        row.reason = text
        row.settled_at = None
        if existing is None:
            session.add(row)
    return mute_of(row)


async def unmute(
    session: AsyncSession, scope: MuteScope, target_id: int, *, now: datetime | None = None
) -> int:
    """End the API mute of a connection, connector or consumer now; how many ended (a
    catalog maintenance window is ended by the catalog, not here)."""
    moment = now or utcnow()
    model, kind, column = _TARGETS[scope]
    await get_row(session, model, target_id, kind)
    async with saving(session):
        result = await session.execute(
            update(MuteRow)
            .where(
                MuteRow.scope == scope,
                column == target_id,
                MuteRow.from_catalog.is_(False),
                MuteRow.ends_at > moment,
            )
            .values(ends_at=moment, settled_at=None)
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True, slots=True)
class Window:
    """A maintenance window as the catalog states it (its target resolved to a row id)."""

    scope: MuteScope
    target_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str


def check_window(field: str, window: Window) -> Window:
    starts_at = validation.aware(f"{field}.from", window.starts_at)
    ends_at = validation.aware(f"{field}.until", window.ends_at)
    if ends_at <= starts_at:
        raise ValidationError(f"{field}.until", ends_at.isoformat(), "must be after from")
    if ends_at - starts_at > MAX_MUTE:
        raise ValidationError(
            f"{field}.until", ends_at.isoformat(), "must be within a year of from"
        )
    text = validation.text(f"{field}.reason", window.reason, validation.MAX_TEXT_LENGTH)
    return Window(window.scope, window.target_id, starts_at, ends_at, text)


async def set_maintenance_windows(
    session: AsyncSession, windows: Sequence[Window], *, now: datetime | None = None
) -> tuple[int, int]:
    """Make the catalog's maintenance windows exactly `windows`: (added, removed). A removed
    window that holds now ends now, so what it silenced is settled; others are deleted."""
    moment = now or utcnow()
    wanted = {
        (w.scope, w.target_id, w.starts_at, w.ends_at, w.reason): w
        for w in (check_window(f"maintenance.{n}", window) for n, window in enumerate(windows))
    }
    rows = list(await session.scalars(select(MuteRow).where(MuteRow.from_catalog.is_(True))))
    stored = {}
    for row in rows:
        stored[(row.scope, mute_of(row).target_id, row.starts_at, row.ends_at, row.reason)] = row
    added = [w for key, w in wanted.items() if key not in stored]
    removed = [row for key, row in stored.items() if key not in wanted]
    if not added and not removed:
        return 0, 0
    async with saving(session):
        for window in added:
            row = MuteRow(
                scope=window.scope,
                from_catalog=True,
                starts_at=window.starts_at,
                ends_at=window.ends_at,
                reason=window.reason,
            )
            setattr(row, _target_column(window.scope), window.target_id)
            session.add(row)
        holding = [row.id for row in removed if row.starts_at <= moment < row.ends_at]
        gone = [row.id for row in removed if row.id not in holding]
        if holding:
            # Kept (as ended, no longer the catalog's) until the dispatcher settles it.
            await session.execute(
                update(MuteRow)
                .where(MuteRow.id.in_(holding))
                .values(ends_at=moment, settled_at=None, from_catalog=False)
                .execution_options(synchronize_session=False)
            )
        if gone:
            await session.execute(
                delete(MuteRow)
                .where(MuteRow.id.in_(gone))
                .execution_options(synchronize_session=False)
            )
    return len(added), len(removed)
