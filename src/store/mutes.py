"""Mutes and maintenance windows: who is silenced when, read the same way by the dispatcher,
the API and the exporter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.domain import Mute, MuteScope, MuteState
from store.models import ConnectionRow, MuteRow


def mute_of(row: Any) -> Mute:
    """From a mutes row (ORM or Core)."""
    target = {
        MuteScope.CONNECTION: row.connection_id,
        MuteScope.CONNECTOR: row.connector_id,
        MuteScope.CONSUMER: row.consumer_id,
    }[row.scope]
    assert target is not None
    return Mute(
        id=row.id,
        scope=row.scope,
        target_id=target,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        reason=row.reason,
        from_catalog=row.from_catalog,
    )


@dataclass(frozen=True, slots=True)
class MuteWindows:
    """Every mute that holds at some moment of a span, by what it silences."""

    by_scope: dict[MuteScope, dict[int, list[Mute]]] = field(default_factory=dict)

    def _holding(self, scope: MuteScope, target_id: int | None, at: datetime) -> list[Mute]:
        if target_id is None:
            return []
        mutes = self.by_scope.get(scope, {}).get(target_id, [])
        return [mute for mute in mutes if mute.starts_at <= at < mute.ends_at]

    def connection_muted(
        self,
        connection_id: int | None,
        connector_id: int | None,
        consumer_id: int | None,
        at: datetime,
    ) -> bool:
        """Whether a mute of the connection, its connector or its consumer holds at `at`."""
        return bool(
            self._holding(MuteScope.CONNECTION, connection_id, at)
            or self._holding(MuteScope.CONNECTOR, connector_id, at)
            or self._holding(MuteScope.CONSUMER, consumer_id, at)
        )

    def connector_muted(self, connector_id: int, at: datetime) -> bool:
        return bool(self._holding(MuteScope.CONNECTOR, connector_id, at))

    def state(self, scope: MuteScope, target_id: int, at: datetime) -> MuteState | None:
        """The mute of exactly this target that ends last, if one holds at `at`."""
        holding = self._holding(scope, target_id, at)
        if not holding:
            return None
        last = max(holding, key=lambda mute: mute.ends_at)
        return MuteState(muted_until=last.ends_at, reason=last.reason)


async def mute_windows(
    connection: AsyncConnection, since: datetime, until: datetime
) -> MuteWindows:
    """Every mute that holds at some moment between `since` and `until` (mutes are few: the
    whole set is read, never per connection)."""
    rows = await connection.execute(
        select(MuteRow.__table__).where(MuteRow.starts_at <= until, MuteRow.ends_at > since)
    )
    by_scope: dict[MuteScope, dict[int, list[Mute]]] = {}
    for row in rows:
        mute = mute_of(row)
        by_scope.setdefault(mute.scope, {}).setdefault(mute.target_id, []).append(mute)
    return MuteWindows(by_scope)


async def muted_connection_ids(connection: AsyncConnection, at: datetime) -> list[int]:
    """Every connection silenced at `at`, by its own mute or its connector's or consumer's."""
    holding = (MuteRow.starts_at <= at) & (MuteRow.ends_at > at)
    by_connection = select(MuteRow.connection_id).where(
        holding, MuteRow.scope == MuteScope.CONNECTION
    )
    by_connector = select(ConnectionRow.id).where(
        ConnectionRow.connector_id.in_(
            select(MuteRow.connector_id).where(holding, MuteRow.scope == MuteScope.CONNECTOR)
        )
    )
    by_consumer = select(ConnectionRow.id).where(
        ConnectionRow.consumer_id.in_(
            select(MuteRow.consumer_id).where(holding, MuteRow.scope == MuteScope.CONSUMER)
        )
    )
    ids = await connection.scalars(by_connection.union(by_connector, by_consumer))
    return sorted(int(connection_id) for connection_id in ids if connection_id is not None)


def targets(mutes: Iterable[Mute]) -> dict[MuteScope, set[int]]:
    found: dict[MuteScope, set[int]] = {}
    for mute in mutes:
        found.setdefault(mute.scope, set()).add(mute.target_id)
    return found
