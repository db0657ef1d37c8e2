"""What silences or explains failures now: mutes and maintenance windows in force, and
connector outages, for many connections, connectors or consumers in one statement each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.domain import ConnectorOutage, MuteScope, MuteState
from store.models import ConnectionRow
from store.mutes import mute_windows
from store.outages import open_outages


async def mute_states(
    session: AsyncSession, scope: MuteScope, ids: Sequence[int], now: datetime
) -> dict[int, MuteState]:
    """The mute in force on each target that has one. A connection is silenced by its own
    mute, its connector's or its consumer's; the one that ends last is shown."""
    connection = await session.connection()
    windows = await mute_windows(connection, now, now)
    if not windows.by_scope or not ids:
        return {}
    if scope is not MuteScope.CONNECTION:
        found = {target: windows.state(scope, target, now) for target in ids}
        return {target: state for target, state in found.items() if state is not None}
    rows = await connection.execute(
        select(ConnectionRow.id, ConnectionRow.connector_id, ConnectionRow.consumer_id).where(
            ConnectionRow.id.in_(sorted(set(ids)))
        )
    )
    states: dict[int, MuteState] = {}
    for row in rows:
        holding = [
            state
            for state in (
                windows.state(MuteScope.CONNECTION, row.id, now),
                windows.state(MuteScope.CONNECTOR, row.connector_id, now),
                windows.state(MuteScope.CONSUMER, row.consumer_id, now),
            )
            if state is not None
        ]
        if holding:
            states[row.id] = max(holding, key=lambda state: state.muted_until)
    return states


async def outages_by_connector(
    session: AsyncSession, connector_ids: Sequence[int]
) -> dict[int, ConnectorOutage]:
    """The outage going on now of each connector in one."""
    return await open_outages(await session.connection(), connector_ids)


async def current_outages(session: AsyncSession) -> list[ConnectorOutage]:
    """Every outage going on now, longest first."""
    found = await open_outages(await session.connection())
    return sorted(found.values(), key=lambda outage: (outage.started_at, outage.connector_id))
