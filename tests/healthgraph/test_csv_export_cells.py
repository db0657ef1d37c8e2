"""The CSV's bytes, cell for cell, against the formatter it replaced: Python values read through
the ORM (aware datetimes, booleans, None) written by `_cell`. The export now takes its cells from
SQL (timestamps formatted by the database), so every odd value is tried on both backends."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from healthgraph import csv_export
from healthgraph.database import Database
from store import queries
from store.domain import ConnectionState, ConnectionStatus, IssueCode, SyncStep
from store.filters import ConsumerFilter, SyncActivationFilter
from store.models import ConnectionRow, ConsumerRow, SyncActivationRow, SyncRow, step_bit
from tests.factories import GraphFactory

# Microseconds zero (isoformat leaves them out), one, the largest; odd dates and times.
TIMESTAMPS = (
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 2, 29, 0, 0, 0, 500000, tzinfo=UTC),
    datetime(2030, 10, 10, 10, 10, 10, 100000, tzinfo=UTC),
)
NAMES = ("Plain", 'Quote "q", comma', "Line\nbreak", " leading space", "Ünïcødé ✓", "semi; colon")
CASES = (
    (ConnectionState.ACTIVE, ConnectionStatus.CONNECTED),
    (ConnectionState.FAILED, ConnectionStatus.CONNECTION_FAILURE),
    (ConnectionState.ACTIVE, ConnectionStatus.CONNECTION_FAILURE),
    (ConnectionState.PENDING, ConnectionStatus.UNKNOWN),
    (ConnectionState.DISABLED, ConnectionStatus.CONNECTED),
)


SYNC_STEP_COLUMNS = (SyncStep.CONNECTION, SyncStep.MAPPING, SyncStep.CONFIGURATION)


def _cell(value: Any) -> Any:
    """The replaced formatter's cell, kept as the reference."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


def _reference(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue().encode()


async def _body(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


@pytest.fixture
async def catalog(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        first = await graph.connector("first", 'Quick, "Books"')
        second = await graph.connector("second", "Second\nConnector")
        sync = await graph.sync("Both, synced", [first, second])
        for index in range(len(TIMESTAMPS) * 3):
            consumer = await graph.consumer(f"c{index:02}", NAMES[index % len(NAMES)])
            consumer.email = None if index % 3 else f"c{index}@example.com"
            consumer.created_at = TIMESTAMPS[index % len(TIMESTAMPS)]
            for n in range(index % 4):
                state, status = CASES[(index + n) % len(CASES)]
                connector = (first, second)[n % 2]
                await graph.connection(
                    consumer, connector, state=state, status=status, name=f"x{n}"
                )
            if index % 4 != 3:
                activation = await graph.activation(
                    sync, consumer, mapping=index % 2 == 0, configuration=index % 5 != 0
                )
                activation.updated_at = TIMESTAMPS[(index + 2) % len(TIMESTAMPS)]


async def _consumers_reference(db: Database) -> bytes:
    async with db.sessions() as session:
        consumers = list(await session.scalars(select(ConsumerRow).order_by(ConsumerRow.id)))
        ids = [c.id for c in consumers]
        active = await queries.consumers_active(session, ids)
        issues = await queries.consumer_issues(session, ids)
        counts = dict(
            (
                await session.execute(
                    select(ConnectionRow.consumer_id, func.count()).group_by(
                        ConnectionRow.consumer_id
                    )
                )
            ).all()
        )
    return _reference(
        [csv_export.CONSUMER_COLUMNS]
        + [
            (
                c.external_id,
                c.name,
                c.email,
                active[c.id],
                counts.get(c.id, 0),
                "; ".join(issue.message for issue in issues[c.id]),
                c.created_at,
            )
            for c in consumers
        ]
    )


async def _activations_reference(db: Database) -> bytes:
    async with db.sessions() as session:
        activations = (
            await session.execute(
                select(SyncActivationRow, ConsumerRow, SyncRow.name)
                .join(ConsumerRow, ConsumerRow.id == SyncActivationRow.consumer_id)
                .join(SyncRow, SyncRow.id == SyncActivationRow.sync_id)
                .order_by(SyncActivationRow.id)
            )
        ).all()
        state = await queries.sync_activations_state(session, [a.id for a, _, _ in activations])
    rows: list[Sequence[Any]] = [csv_export.SYNC_COLUMNS]
    for activation, consumer, sync_name in activations:
        active, issue = state[activation.id]
        steps = [bool(activation.completed_steps & step_bit(step)) for step in SYNC_STEP_COLUMNS]
        code, message = (issue.code.value, issue.message) if issue else ("", "")
        rows.append(
            (
                consumer.external_id,
                consumer.name,
                sync_name,
                active,
                *steps,
                code,
                message,
                activation.updated_at,
            )
        )
    return _reference(rows)


@pytest.mark.usefixtures("catalog")
async def test_bytes_match_the_replaced_formatter(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_export, "BATCH_SIZE", 4)  # several batches, one partly filled
    consumers = await _body(csv_export._stream_consumers(db, ConsumerFilter()))
    activations = await _body(csv_export._stream_activations(db, SyncActivationFilter()))
    assert consumers == await _consumers_reference(db)
    assert activations == await _activations_reference(db)
    assert consumers.count(b"+00:00") == len(TIMESTAMPS) * 3


@pytest.mark.usefixtures("catalog")
async def test_activation_search_and_issue_filters(db: Database) -> None:
    """The page joins consumers and syncs; the filters' subqueries over them still work."""
    whole = list(
        csv.DictReader(
            io.StringIO(
                (await _body(csv_export._stream_activations(db, SyncActivationFilter()))).decode()
            )
        )
    )
    codes = sorted({r["issue_code"] for r in whole} - {""})
    assert len(codes) > 1
    for f, expected in (
        (SyncActivationFilter(search="c1"), [r for r in whole if "c1" in r["consumer_id"]]),
        (
            SyncActivationFilter(issue_codes=(IssueCode(codes[0]),)),
            [r for r in whole if r["issue_code"] == codes[0]],
        ),
    ):
        body = await _body(csv_export._stream_activations(db, f))
        assert list(csv.DictReader(io.StringIO(body.decode()))) == expected
        assert expected
