"""Rows for the consumers CSV, one statement per batch with the issue column computed in SQL,
so an export of 100k consumers streams at database speed in flat memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from store import derived
from store.domain import Issue, IssueCode, SyncStep
from store.filters import ConsumerFilter, SyncActivationFilter
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncActivationStepRow,
    SyncRow,
)
from store.queries import consumer_conditions, sync_activation_conditions

ISSUE_SEPARATOR = "; "
_AGGREGATE_SEPARATOR = "\x1f"  # cannot occur in a name typed by a person


@dataclass(frozen=True, slots=True)
class ConsumerExportRow:
    id: int
    external_id: str
    name: str
    email: str | None
    active: bool
    connections: int
    issue: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ActivationExportRow:
    id: int
    consumer_external_id: str
    consumer_name: str
    sync_name: str
    active: bool
    connection_step: bool
    mapping_step: bool
    configuration_step: bool
    issue_code: str
    issue: str
    updated_at: datetime


async def consumers_by_connections(
    session: AsyncSession, f: ConsumerFilter, after_id: int, limit: int
) -> list[ConsumerExportRow]:
    """The next `limit` consumers after `after_id`, with the "by connections" issue column."""
    connection = aliased(ConnectionRow)
    connector = aliased(ConnectorRow)
    failed_names = (
        select(func.aggregate_strings(connector.name, _AGGREGATE_SEPARATOR))
        .select_from(connection)
        .join(connector, connector.id == connection.connector_id)
        .where(connection.consumer_id == ConsumerRow.id, derived.connection_is_failed(connection))
        .scalar_subquery()
    )
    counted = aliased(ConnectionRow)
    connection_count = (
        select(func.count()).select_from(counted).where(counted.consumer_id == ConsumerRow.id)
    ).scalar_subquery()
    statement = (
        select(
            ConsumerRow.id,
            ConsumerRow.external_id,
            ConsumerRow.name,
            ConsumerRow.email,
            derived.consumer_is_active(),
            connection_count,
            failed_names,
            ConsumerRow.created_at,
        )
        .where(ConsumerRow.id > after_id, *consumer_conditions(f))
        .order_by(ConsumerRow.id)
        .limit(limit)
    )
    rows = []
    for (
        row_id,
        external_id,
        name,
        email,
        active,
        count,
        failed,
        created_at,
    ) in await session.execute(statement):
        if not count:
            issue = Issue(IssueCode.NOTHING).message
        elif failed:
            issue = ISSUE_SEPARATOR.join(
                Issue(IssueCode.CONNECTION_FAILED, connector_name=n).message
                for n in failed.split(_AGGREGATE_SEPARATOR)
            )
        else:
            issue = ""
        rows.append(
            ConsumerExportRow(
                row_id, external_id, name, email, bool(active), int(count), issue, created_at
            )
        )
    return rows


async def consumers_by_syncs(
    session: AsyncSession, f: SyncActivationFilter, after_id: int, limit: int
) -> list[ActivationExportRow]:
    """The next `limit` sync activations after `after_id`, with the "by syncs" issue column."""
    code, connector_id = derived.activation_issue()
    issue_connector = aliased(ConnectorRow)

    def step_done(step: SyncStep) -> ScalarSelect[bool]:
        s = aliased(SyncActivationStepRow)
        return (
            select(s.complete)
            .where(s.activation_id == SyncActivationRow.id, s.step == step)
            .scalar_subquery()
        )

    statement = (
        select(
            SyncActivationRow.id,
            ConsumerRow.external_id,
            ConsumerRow.name,
            SyncRow.name,
            derived.activation_is_active(),
            step_done(SyncStep.CONNECTION),
            step_done(SyncStep.MAPPING),
            step_done(SyncStep.CONFIGURATION),
            code,
            issue_connector.name,
            SyncActivationRow.updated_at,
        )
        .join(ConsumerRow, ConsumerRow.id == SyncActivationRow.consumer_id)
        .join(SyncRow, SyncRow.id == SyncActivationRow.sync_id)
        .outerjoin(issue_connector, issue_connector.id == connector_id)
        .where(SyncActivationRow.id > after_id, *sync_activation_conditions(f))
        .order_by(SyncActivationRow.id)
        .limit(limit)
    )
    rows = []
    for (
        row_id,
        external_id,
        consumer_name,
        sync_name,
        active,
        connection_done,
        mapping_done,
        configuration_done,
        issue_code,
        connector_name,
        updated_at,
    ) in await session.execute(statement):
        issue = Issue(IssueCode(issue_code), None, connector_name).message if issue_code else ""
        rows.append(
            ActivationExportRow(
                row_id,
                external_id,
                consumer_name,
                sync_name,
                bool(active),
                bool(connection_done),
                bool(mapping_done),
                bool(configuration_done),
                issue_code or "",
                issue,
                updated_at,
            )
        )
    return rows
