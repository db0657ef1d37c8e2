"""The store side of the scheduler, on SQLite and PostgreSQL: claims, leases, results, history.

Time is explicit (`now=` values), never slept through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from healthgraph.database import Database, open_database
from store.domain import (
    CheckOutcome,
    ConnectionState,
    ConnectionStatus,
    Direction,
    FailureReason,
    StatusChange,
)
from store.engine import create_engine
from store.migrate import upgrade_database
from store.models import CheckRow, ConnectionRow, ConnectorRow, ConsumerRow
from store.scheduling import (
    DueCheck,
    claim_due_connections,
    load_due_check,
    mark_missed_heartbeats,
    prune_checks,
    record_outcomes,
    record_unclaimed_outcomes,
    release_claims,
    scheduler_lag,
)
from tests.conftest import create_postgres_database, drop_postgres_database

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
W1, W2 = "host-a:101", "host-b:202"


def no_jitter(interval: int) -> float:
    return 0.0


def ok(at: datetime, **fields: Any) -> CheckOutcome:
    return CheckOutcome(success=True, checked_at=at, latency_ms=12.5, http_status=200, **fields)


def failed(
    at: datetime, reason: FailureReason = FailureReason.HTTP_STATUS, **fields: Any
) -> CheckOutcome:
    fields.setdefault("error", f"{reason.value.lower()} at {at:%H:%M:%S}")
    return CheckOutcome(
        success=False, checked_at=at, latency_ms=30.0, failure_reason=reason, **fields
    )


@dataclass
class Graph:
    db: Database
    consumer_id: int
    connector_id: int
    count: int = 0

    async def connection(
        self,
        *,
        direction: Direction = Direction.OUTBOUND,
        state: ConnectionState = ConnectionState.ACTIVE,
        status: ConnectionStatus = ConnectionStatus.UNKNOWN,
        next_check_at: datetime | None = T0,
        interval: int = 60,
        threshold: int = 1,
        heartbeat: dict[str, Any] | None = None,
        ciphertext: bytes | None = None,
    ) -> int:
        self.count += 1
        async with self.db.sessions.begin() as session:
            row = ConnectionRow(
                consumer_id=self.consumer_id,
                connector_id=self.connector_id,
                name=f"connection {self.count}",
                direction=direction,
                state=state,
                status=status,
                next_check_at=next_check_at,
                check_interval_seconds=interval,
                failure_threshold=threshold,
                heartbeat=heartbeat or {},
                credentials_ciphertext=ciphertext,
                state_changed_at=T0 - timedelta(days=1),
            )
            session.add(row)
            await session.flush()
            return row.id

    async def row(self, connection_id: int) -> ConnectionRow:
        async with self.db.sessions() as session:
            row = await session.get(ConnectionRow, connection_id)
            assert row is not None
            return row

    async def checks(self, connection_id: int) -> list[CheckRow]:
        async with self.db.sessions() as session:
            result = await session.scalars(
                select(CheckRow)
                .where(CheckRow.connection_id == connection_id)
                .order_by(CheckRow.checked_at, CheckRow.id)
            )
            return list(result)

    async def claim(
        self,
        now: datetime,
        worker: str = W1,
        limit: int = 100,
        lease: float = 30,
        due_by: datetime | None = None,
    ) -> list[DueCheck]:
        async with self.db.sessions.begin() as session:
            return await claim_due_connections(
                session,
                worker_id=worker,
                now=now,
                limit=limit,
                lease_seconds=lease,
                due_by=due_by,
            )

    async def record(
        self, outcomes: list[tuple[int, CheckOutcome]], worker: str = W1, jitter: Any = no_jitter
    ) -> list[StatusChange]:
        async with self.db.sessions.begin() as session:
            return await record_outcomes(
                session, worker_id=worker, outcomes=outcomes, jitter=jitter
            )

    async def check(self, connection_id: int, outcome: CheckOutcome) -> list[StatusChange]:
        """One scheduler round for `connection_id` at the outcome's time: claim, then record."""
        claimed = await self.claim(outcome.checked_at)
        assert connection_id in [due.connection_id for due in claimed]
        return await self.record([(connection_id, outcome)])


async def make_graph(db: Database) -> Graph:
    async with db.sessions.begin() as session:
        consumer = ConsumerRow(external_id="acme/eu", name="Acme")
        connector = ConnectorRow(
            slug="quickbooks",
            name="QuickBooks",
            category="accounting",
            heartbeat={
                "kind": "http",
                "url": "https://api.example.com/v3/{external_id}/info",
                "timeout_seconds": 5,
            },
        )
        session.add_all([consumer, connector])
        await session.flush()
        return Graph(db, consumer.id, connector.id)


@pytest.fixture
async def graph(db: Database) -> Graph:
    return await make_graph(db)


# --- claims ----------------------------------------------------------------------------------


async def test_claim_takes_only_due_active_or_failed_outbound_oldest_first(graph: Graph) -> None:
    failed_one = await graph.connection(
        state=ConnectionState.FAILED, next_check_at=T0 - timedelta(seconds=5)
    )
    active = await graph.connection(
        next_check_at=T0 - timedelta(seconds=1),
        heartbeat={"timeout_seconds": 2},
        ciphertext=b"sealed",
        interval=300,
        threshold=3,
    )
    exactly_now = await graph.connection(next_check_at=T0)
    for state in (ConnectionState.PENDING, ConnectionState.DISABLED):
        await graph.connection(state=state, next_check_at=T0 - timedelta(hours=1))
    await graph.connection(next_check_at=T0 + timedelta(seconds=1))
    await graph.connection(next_check_at=None)
    await graph.connection(direction=Direction.INBOUND, next_check_at=T0 - timedelta(hours=1))

    claimed = await graph.claim(T0, lease=45)

    assert [due.connection_id for due in claimed] == [failed_one, active, exactly_now]
    due = claimed[1]
    assert due == DueCheck(
        connection_id=active,
        external_id="acme/eu",
        heartbeat={
            "kind": "http",
            "url": "https://api.example.com/v3/{external_id}/info",
            "timeout_seconds": 2,
        },
        credentials_ciphertext=b"sealed",
        check_interval_seconds=300,
        failure_threshold=3,
        due_at=T0 - timedelta(seconds=1),
        lease_expires_at=T0 + timedelta(seconds=45),
        params={},
        connector_slug="quickbooks",
        oauth2=None,
        client_secret_ciphertext=None,
    )
    assert "sealed" not in repr(due)
    row = await graph.row(active)
    assert (row.claimed_by, row.lease_expires_at) == (W1, T0 + timedelta(seconds=45))


async def test_claim_respects_the_limit(graph: Graph) -> None:
    ids = [await graph.connection(next_check_at=T0 - timedelta(seconds=n)) for n in range(5)]
    first = await graph.claim(T0, limit=3)
    assert [due.connection_id for due in first] == [ids[4], ids[3], ids[2]]
    second = await graph.claim(T0, limit=3)
    assert [due.connection_id for due in second] == [ids[1], ids[0]]
    assert await graph.claim(T0, limit=0) == []


async def test_a_claim_ahead_takes_rows_due_by_then_and_leases_from_now(graph: Graph) -> None:
    overdue = await graph.connection(next_check_at=T0 - timedelta(seconds=3))
    soon = await graph.connection(next_check_at=T0 + timedelta(seconds=0.8))
    at_the_edge = await graph.connection(next_check_at=T0 + timedelta(seconds=1))
    await graph.connection(next_check_at=T0 + timedelta(seconds=1.2))
    # Another worker's lease runs until T0 + 0.5 s: not ours to take at T0, due or not.
    leased = await graph.connection(next_check_at=T0 - timedelta(seconds=40))
    assert [d.connection_id for d in await graph.claim(T0 - timedelta(seconds=29.5), W2)] == [
        leased
    ]

    claimed = await graph.claim(T0, lease=45, due_by=T0 + timedelta(seconds=1))

    assert [(d.connection_id, d.due_at, d.lease_expires_at) for d in claimed] == [
        (overdue, T0 - timedelta(seconds=3), T0 + timedelta(seconds=45)),
        (soon, T0 + timedelta(seconds=0.8), T0 + timedelta(seconds=45)),
        (at_the_edge, T0 + timedelta(seconds=1), T0 + timedelta(seconds=45)),
    ]
    assert (await graph.row(leased)).claimed_by == W2


async def test_a_claimed_row_is_not_claimed_again_until_its_lease_expires(graph: Graph) -> None:
    connection_id = await graph.connection()
    assert [d.connection_id for d in await graph.claim(T0, W1, lease=30)] == [connection_id]
    assert await graph.claim(T0 + timedelta(seconds=10), W2) == []
    assert await graph.claim(T0 + timedelta(seconds=29.9), W1) == []
    taken = await graph.claim(T0 + timedelta(seconds=30), W2, lease=30)
    assert [d.connection_id for d in taken] == [connection_id]
    row = await graph.row(connection_id)
    assert (row.claimed_by, row.lease_expires_at) == (W2, T0 + timedelta(seconds=60))


async def test_release_gives_back_only_this_workers_claims(graph: Graph) -> None:
    mine, theirs = await graph.connection(), await graph.connection()
    await graph.claim(T0, W1, limit=1)
    await graph.claim(T0, W2, limit=1)
    async with graph.db.sessions.begin() as session:
        released = await release_claims(session, worker_id=W1, connection_ids=[mine, theirs])
    assert released == 1
    assert (await graph.row(mine)).claimed_by is None
    assert (await graph.row(theirs)).claimed_by == W2
    assert [d.connection_id for d in await graph.claim(T0, W2)] == [mine]


async def test_worker_id_is_checked(graph: Graph) -> None:
    with pytest.raises(ValueError, match="worker_id"):
        await graph.claim(T0, worker="x" * 65)


# --- results ---------------------------------------------------------------------------------


async def test_a_success_writes_the_row_releases_the_claim_and_schedules_the_next(
    graph: Graph,
) -> None:
    connection_id = await graph.connection(interval=60, threshold=1)
    expires = datetime(2027, 2, 1, tzinfo=UTC)
    await graph.claim(T0)
    changes = await graph.record(
        [(connection_id, ok(T0, tls_cert_expires_at=expires))], jitter=lambda i: i * 0.1
    )

    assert changes == [
        StatusChange(
            connection_id,
            ConnectionStatus.UNKNOWN,
            ConnectionStatus.CONNECTED,
            ConnectionState.ACTIVE,
            ConnectionState.ACTIVE,
        )
    ]
    row = await graph.row(connection_id)
    assert (row.status, row.state, row.consecutive_failures) == (
        ConnectionStatus.CONNECTED,
        ConnectionState.ACTIVE,
        0,
    )
    assert (row.last_checked_at, row.last_success_at, row.latency_ms) == (T0, T0, 12.5)
    assert (row.failure_reason, row.last_error) == (None, None)
    assert row.tls_cert_expires_at == expires
    assert row.next_check_at == T0 + timedelta(seconds=66)  # interval + jitter(interval)
    assert (row.claimed_by, row.lease_expires_at) == (None, None)
    assert row.state_changed_at == T0 - timedelta(days=1)  # state did not change

    # A later check without a certificate keeps the known expiry.
    await graph.check(connection_id, ok(T0 + timedelta(seconds=66)))
    assert (await graph.row(connection_id)).tls_cert_expires_at == expires

    history = await graph.checks(connection_id)
    assert [(c.checked_at, c.success, c.http_status, c.latency_ms) for c in history] == [
        (T0, True, 200, 12.5),
        (T0 + timedelta(seconds=66), True, 200, 12.5),
    ]


async def test_the_next_check_keeps_the_cadence_of_the_due_time_not_of_the_check(
    graph: Graph,
) -> None:
    on_time, late, very_late = [await graph.connection(interval=60) for _ in range(3)]
    await graph.claim(T0)
    await graph.record(
        [
            (on_time, ok(T0 + timedelta(seconds=0.4))),
            # Up to half an interval late: still on the cadence.
            (late, ok(T0 + timedelta(seconds=30))),
            # Later than that: again from the check, a whole interval on, so an overloaded
            # scheduler is never asked for more than the intervals say.
            (very_late, ok(T0 + timedelta(seconds=45))),
        ]
    )
    assert [(await graph.row(id_)).next_check_at for id_ in (on_time, late, very_late)] == [
        T0 + timedelta(seconds=60),
        T0 + timedelta(seconds=60),
        T0 + timedelta(seconds=105),
    ]


async def test_a_check_out_of_turn_starts_the_cadence_again_from_its_own_time(
    graph: Graph,
) -> None:
    connection_id = await graph.connection(interval=60)
    async with graph.db.sessions.begin() as session:
        await record_unclaimed_outcomes(
            session, outcomes=[(connection_id, ok(T0 + timedelta(seconds=20)))], jitter=no_jitter
        )
    assert (await graph.row(connection_id)).next_check_at == T0 + timedelta(seconds=80)


async def test_status_flips_only_at_the_failure_threshold(graph: Graph) -> None:
    connection_id = await graph.connection(status=ConnectionStatus.CONNECTED, threshold=3)
    at = [T0 + timedelta(seconds=60 * n) for n in range(5)]

    assert await graph.check(connection_id, failed(at[0], FailureReason.TIMEOUT)) == []
    row = await graph.row(connection_id)
    assert (row.status, row.consecutive_failures) == (ConnectionStatus.CONNECTED, 1)
    assert (row.failure_reason, row.last_error) == (FailureReason.TIMEOUT, "timeout at 12:00:00")
    assert row.last_success_at is None

    assert await graph.check(connection_id, failed(at[1])) == []
    row = await graph.row(connection_id)
    assert (row.status, row.consecutive_failures, row.failure_reason) == (
        ConnectionStatus.CONNECTED,
        2,
        FailureReason.HTTP_STATUS,
    )

    changes = await graph.check(connection_id, failed(at[2]))
    assert [(c.old_status, c.new_status) for c in changes] == [
        (ConnectionStatus.CONNECTED, ConnectionStatus.CONNECTION_FAILURE)
    ]
    row = await graph.row(connection_id)
    assert (row.status, row.consecutive_failures) == (ConnectionStatus.CONNECTION_FAILURE, 3)

    assert await graph.check(connection_id, failed(at[3])) == []  # still down: no change
    assert (await graph.row(connection_id)).consecutive_failures == 4

    changes = await graph.check(connection_id, ok(at[4]))
    assert [(c.old_status, c.new_status) for c in changes] == [
        (ConnectionStatus.CONNECTION_FAILURE, ConnectionStatus.CONNECTED)
    ]
    row = await graph.row(connection_id)
    assert (row.status, row.consecutive_failures, row.failure_reason, row.last_error) == (
        ConnectionStatus.CONNECTED,
        0,
        None,
        None,
    )
    assert row.last_success_at == at[4]
    assert len(await graph.checks(connection_id)) == 5


async def test_flapping_reports_every_change_and_resets_the_count(graph: Graph) -> None:
    connection_id = await graph.connection(status=ConnectionStatus.CONNECTED, threshold=1)
    seen = []
    for n, up in enumerate([False, True, False, True, True, False]):
        at = T0 + timedelta(seconds=60 * n)
        changes = await graph.check(connection_id, ok(at) if up else failed(at))
        seen.append([c.new_status for c in changes])
        assert (await graph.row(connection_id)).consecutive_failures == (0 if up else 1)
    down, up_ = ConnectionStatus.CONNECTION_FAILURE, ConnectionStatus.CONNECTED
    assert seen == [[down], [up_], [down], [up_], [], [down]]


async def test_a_threshold_below_the_count_keeps_an_unknown_status(graph: Graph) -> None:
    connection_id = await graph.connection(threshold=2)
    assert await graph.check(connection_id, failed(T0)) == []
    assert (await graph.row(connection_id)).status == ConnectionStatus.UNKNOWN


async def test_auth_failure_sets_failed_and_a_later_success_restores_active(graph: Graph) -> None:
    connection_id = await graph.connection(status=ConnectionStatus.CONNECTED, threshold=3)

    changes = await graph.check(connection_id, failed(T0, FailureReason.AUTH))
    # The state falls at once; the status still waits for the threshold.
    assert changes == [
        StatusChange(
            connection_id,
            ConnectionStatus.CONNECTED,
            ConnectionStatus.CONNECTED,
            ConnectionState.ACTIVE,
            ConnectionState.FAILED,
        )
    ]
    row = await graph.row(connection_id)
    assert (row.state, row.state_changed_at, row.failure_reason) == (
        ConnectionState.FAILED,
        T0,
        FailureReason.AUTH,
    )

    # A FAILED connection is still probed, so it can recover.
    later = T0 + timedelta(seconds=60)
    assert [d.connection_id for d in await graph.claim(later)] == [connection_id]
    changes = await graph.record([(connection_id, ok(later))])
    assert [(c.old_state, c.new_state) for c in changes] == [
        (ConnectionState.FAILED, ConnectionState.ACTIVE)
    ]
    row = await graph.row(connection_id)
    assert (row.state, row.state_changed_at, row.status) == (
        ConnectionState.ACTIVE,
        later,
        ConnectionStatus.CONNECTED,
    )


async def test_a_connection_disabled_while_its_check_ran_stays_disabled(graph: Graph) -> None:
    connection_id = await graph.connection(status=ConnectionStatus.CONNECTED)
    await graph.claim(T0)
    async with graph.db.sessions.begin() as session:
        row = await session.get(ConnectionRow, connection_id)
        assert row is not None
        row.state = ConnectionState.DISABLED
    await graph.record([(connection_id, failed(T0, FailureReason.AUTH))])
    row = await graph.row(connection_id)
    assert (row.state, row.status) == (
        ConnectionState.DISABLED,
        ConnectionStatus.CONNECTION_FAILURE,
    )


async def test_a_worker_whose_lease_was_taken_over_writes_nothing(graph: Graph) -> None:
    connection_id = await graph.connection(status=ConnectionStatus.CONNECTED)
    await graph.claim(T0, W1, lease=10)
    await graph.claim(T0 + timedelta(seconds=10), W2, lease=10)

    late = await graph.record([(connection_id, failed(T0 + timedelta(seconds=12)))], worker=W1)
    assert late == []
    row = await graph.row(connection_id)
    assert (row.status, row.claimed_by, row.last_checked_at) == (
        ConnectionStatus.CONNECTED,
        W2,
        None,
    )
    assert await graph.checks(connection_id) == []

    await graph.record([(connection_id, ok(T0 + timedelta(seconds=11)))], worker=W2)
    row = await graph.row(connection_id)
    assert (row.claimed_by, row.last_checked_at) == (None, T0 + timedelta(seconds=11))
    # Once W2 wrote, W1's result is still refused: the row is claimed by nobody.
    assert await graph.record([(connection_id, failed(T0))], worker=W1) == []
    assert len(await graph.checks(connection_id)) == 1


async def test_an_expired_lease_nobody_took_is_still_written(graph: Graph) -> None:
    connection_id = await graph.connection()
    await graph.claim(T0, W1, lease=1)
    await graph.record([(connection_id, ok(T0 + timedelta(seconds=5)))])
    assert (await graph.row(connection_id)).status == ConnectionStatus.CONNECTED


async def test_one_batch_writes_many_connections_and_their_history(graph: Graph) -> None:
    ids = [await graph.connection(threshold=1) for _ in range(30)]
    await graph.claim(T0, limit=100)
    outcomes = [
        (connection_id, ok(T0) if n % 3 else failed(T0, FailureReason.CONNECT, http_status=None))
        for n, connection_id in enumerate(ids)
    ]
    changes = await graph.record(outcomes)
    assert len(changes) == 30
    assert sorted(c.connection_id for c in changes) == ids
    async with graph.db.sessions() as session:
        stored = (
            await session.execute(
                select(CheckRow.connection_id, CheckRow.success, CheckRow.failure_reason)
            )
        ).all()
    assert sorted(stored) == sorted(
        (cid, outcome.success, outcome.failure_reason) for cid, outcome in outcomes
    )


def health(row: ConnectionRow) -> tuple[Any, ...]:
    return (
        row.status,
        row.state,
        row.state_changed_at,
        row.consecutive_failures,
        row.failure_reason,
        row.last_error,
        row.last_checked_at,
        row.last_success_at,
        row.latency_ms,
        row.next_check_at,
        row.claimed_by,
        row.lease_expires_at,
    )


async def test_a_batch_of_steady_and_changing_results_writes_every_field_of_both(
    graph: Graph,
) -> None:
    # Steady rows are written without status and state (a narrower UPDATE): both kinds in
    # one batch must still come out whole.
    steady = await graph.connection(status=ConnectionStatus.CONNECTED)
    still_failing = await graph.connection(status=ConnectionStatus.CONNECTION_FAILURE)
    falling = await graph.connection(status=ConnectionStatus.CONNECTED)
    locked_out = await graph.connection(status=ConnectionStatus.CONNECTED)
    await graph.claim(T0)
    changes = await graph.record(
        [
            (steady, ok(T0)),
            (still_failing, failed(T0)),
            (falling, failed(T0, FailureReason.TIMEOUT)),
            (locked_out, failed(T0, FailureReason.AUTH, http_status=401)),
        ]
    )
    assert [(c.connection_id, c.new_status, c.new_state) for c in changes] == [
        (falling, ConnectionStatus.CONNECTION_FAILURE, ConnectionState.ACTIVE),
        (locked_out, ConnectionStatus.CONNECTION_FAILURE, ConnectionState.FAILED),
    ]
    next_at = T0 + timedelta(seconds=60)
    before = T0 - timedelta(days=1)
    assert health(await graph.row(steady)) == (
        ConnectionStatus.CONNECTED, ConnectionState.ACTIVE, before, 0, None, None,
        T0, T0, 12.5, next_at, None, None,
    )  # fmt: skip
    assert health(await graph.row(still_failing)) == (
        ConnectionStatus.CONNECTION_FAILURE, ConnectionState.ACTIVE, before, 1,
        FailureReason.HTTP_STATUS, "http_status at 12:00:00", T0, None, 30.0, next_at, None, None,
    )  # fmt: skip
    assert health(await graph.row(falling)) == (
        ConnectionStatus.CONNECTION_FAILURE, ConnectionState.ACTIVE, before, 1,
        FailureReason.TIMEOUT, "timeout at 12:00:00", T0, None, 30.0, next_at, None, None,
    )  # fmt: skip
    assert health(await graph.row(locked_out)) == (
        ConnectionStatus.CONNECTION_FAILURE, ConnectionState.FAILED, T0, 1,
        FailureReason.AUTH, "auth at 12:00:00", T0, None, 30.0, next_at, None, None,
    )  # fmt: skip


async def test_two_results_for_one_connection_apply_in_time_order(graph: Graph) -> None:
    connection_id = await graph.connection(threshold=2)
    await graph.claim(T0)
    changes = await graph.record(
        [
            (connection_id, failed(T0 + timedelta(seconds=2))),
            (connection_id, failed(T0 + timedelta(seconds=1))),
        ]
    )
    assert [c.new_status for c in changes] == [ConnectionStatus.CONNECTION_FAILURE]
    row = await graph.row(connection_id)
    assert (row.consecutive_failures, row.last_checked_at) == (2, T0 + timedelta(seconds=2))
    assert len(await graph.checks(connection_id)) == 2


async def test_a_connection_deleted_while_checked_is_skipped(graph: Graph) -> None:
    gone, kept = await graph.connection(), await graph.connection()
    await graph.claim(T0)
    async with graph.db.sessions.begin() as session:
        row = await session.get(ConnectionRow, gone)
        await session.delete(row)
    changes = await graph.record([(gone, ok(T0)), (kept, ok(T0))])
    assert [c.connection_id for c in changes] == [kept]


async def test_unclaimed_results_are_written_and_leave_claims_alone(graph: Graph) -> None:
    connection_id = await graph.connection(ciphertext=b"x")
    async with graph.db.sessions() as session:
        due = await load_due_check(session, connection_id)
        assert await load_due_check(session, 10_000) is None
    assert due is not None
    assert (due.external_id, due.credentials_ciphertext, due.lease_expires_at) == (
        "acme/eu",
        b"x",
        None,
    )
    await graph.claim(T0, W1)
    async with graph.db.sessions.begin() as session:
        changes = await record_unclaimed_outcomes(
            session, outcomes=[(connection_id, failed(T0, FailureReason.AUTH))], jitter=no_jitter
        )
    assert [c.new_state for c in changes] == [ConnectionState.FAILED]
    row = await graph.row(connection_id)
    assert (row.claimed_by, row.next_check_at) == (W1, T0 + timedelta(seconds=60))
    assert len(await graph.checks(connection_id)) == 1


# --- inbound ---------------------------------------------------------------------------------


async def test_inbound_silence_past_the_interval_is_a_missed_heartbeat(graph: Graph) -> None:
    inbound = await graph.connection(
        direction=Direction.INBOUND,
        status=ConnectionStatus.CONNECTED,
        next_check_at=T0 + timedelta(seconds=60),
        interval=60,
        threshold=2,
    )
    for state in (ConnectionState.PENDING, ConnectionState.DISABLED, ConnectionState.FAILED):
        await graph.connection(direction=Direction.INBOUND, state=state, next_check_at=T0)
    outbound = await graph.connection(next_check_at=T0)

    async def sweep(now: datetime) -> list[StatusChange]:
        async with graph.db.sessions.begin() as session:
            return await mark_missed_heartbeats(session, now=now, limit=100)

    assert await sweep(T0 + timedelta(seconds=59)) == []
    assert await sweep(T0 + timedelta(seconds=60)) == []  # one miss: below the threshold
    row = await graph.row(inbound)
    assert (row.status, row.consecutive_failures, row.failure_reason) == (
        ConnectionStatus.CONNECTED,
        1,
        FailureReason.MISSED_HEARTBEAT,
    )
    assert row.last_error == "no heartbeat received within 60 s (due by 2026-11-22 12:01:00 UTC)"
    assert row.next_check_at == T0 + timedelta(seconds=120)

    assert await sweep(T0 + timedelta(seconds=119)) == []  # not due again yet
    changes = await sweep(T0 + timedelta(seconds=121))
    assert [(c.connection_id, c.new_status) for c in changes] == [
        (inbound, ConnectionStatus.CONNECTION_FAILURE)
    ]
    history = await graph.checks(inbound)
    assert [(c.checked_at, c.success, c.failure_reason) for c in history] == [
        (T0 + timedelta(seconds=60), False, FailureReason.MISSED_HEARTBEAT),
        (T0 + timedelta(seconds=121), False, FailureReason.MISSED_HEARTBEAT),
    ]
    assert await graph.checks(outbound) == []


async def test_missed_heartbeats_honour_the_limit(graph: Graph) -> None:
    for _ in range(3):
        await graph.connection(direction=Direction.INBOUND, next_check_at=T0)
    async with graph.db.sessions.begin() as session:
        assert len(await mark_missed_heartbeats(session, now=T0, limit=2)) == 2
    async with graph.db.sessions.begin() as session:
        assert len(await mark_missed_heartbeats(session, now=T0, limit=2)) == 1


# --- retention and lag -----------------------------------------------------------------------


async def test_retention_deletes_old_history_but_keeps_the_newest_per_connection(
    graph: Graph,
) -> None:
    cutoff = T0 - timedelta(days=7)
    only_old = await graph.connection()  # 150 old checks: the newest 100 stay
    few = await graph.connection()  # 5 old checks: all stay
    busy = await graph.connection()  # 20 old + 100 recent: the old ones go
    mixed = await graph.connection()  # 90 old + 30 recent: 30 recent + the 70 newest old stay
    plan = {
        only_old: (150, 0),
        few: (5, 0),
        busy: (20, 100),
        mixed: (90, 30),
    }
    rows = []
    for connection_id, (old, recent) in plan.items():
        rows += [
            {"connection_id": connection_id, "checked_at": cutoff - timedelta(minutes=n + 1)}
            for n in range(old)
        ]
        rows += [
            {"connection_id": connection_id, "checked_at": cutoff + timedelta(minutes=n)}
            for n in range(recent)
        ]
    async with graph.db.sessions.begin() as session:
        await session.execute(
            CheckRow.__table__.insert(), [{**row, "success": True} for row in rows]
        )

    async with graph.db.sessions.begin() as session:
        deleted = await prune_checks(session, older_than=cutoff, keep_latest=100)
    assert deleted == 50 + 0 + 20 + 20
    expected = {
        only_old: [cutoff - timedelta(minutes=n + 1) for n in range(100)],
        few: [cutoff - timedelta(minutes=n + 1) for n in range(5)],
        busy: [cutoff + timedelta(minutes=n) for n in range(100)],
        mixed: [cutoff + timedelta(minutes=n) for n in range(30)]
        + [cutoff - timedelta(minutes=n + 1) for n in range(70)],
    }
    for connection_id, times in expected.items():
        kept = [c.checked_at for c in await graph.checks(connection_id)]
        assert kept == sorted(times), connection_id

    async with graph.db.sessions.begin() as session:
        assert await prune_checks(session, older_than=cutoff, keep_latest=100) == 0
    async with graph.db.sessions.begin() as session:
        deleted_all_old = await prune_checks(session, older_than=cutoff, keep_latest=0)
    assert deleted_all_old == 100 + 5 + 70
    async with graph.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CheckRow)) == 100 + 30


async def test_lag_counts_due_outbound_connections_and_the_oldest_delay(graph: Graph) -> None:
    async with graph.db.sessions() as session:
        assert await scheduler_lag(session, T0) == (0, 0.0)
    await graph.connection(next_check_at=T0 - timedelta(seconds=30))
    await graph.connection(state=ConnectionState.FAILED, next_check_at=T0 - timedelta(seconds=10))
    await graph.connection(next_check_at=T0 + timedelta(seconds=5))
    await graph.connection(state=ConnectionState.DISABLED, next_check_at=T0 - timedelta(hours=1))
    await graph.connection(direction=Direction.INBOUND, next_check_at=T0 - timedelta(hours=1))
    await graph.claim(T0, limit=1)  # claimed but not yet checked: still overdue
    async with graph.db.sessions() as session:
        assert await scheduler_lag(session, T0) == (2, 30.0)
        assert await scheduler_lag(session, T0 + timedelta(seconds=5)) == (3, 35.0)


# --- PostgreSQL: concurrent claims -------------------------------------------------------------


@pytest.fixture
async def postgres_db() -> AsyncIterator[Database]:
    url = await create_postgres_database()
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    database = await open_database(url)
    try:
        yield database
    finally:
        await database.close()
        await drop_postgres_database(url)


@pytest.mark.postgres
async def test_concurrent_claims_skip_rows_locked_by_another_transaction(
    postgres_db: Database,
) -> None:
    graph = await make_graph(postgres_db)
    ids = [await graph.connection(next_check_at=T0 - timedelta(seconds=n)) for n in range(10)]
    first_claimed = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> list[int]:
        async with postgres_db.sessions.begin() as session:
            claimed = await claim_due_connections(
                session, worker_id=W1, now=T0, limit=4, lease_seconds=30
            )
            first_claimed.set()
            await release_first.wait()  # hold the row locks, uncommitted
            return [d.connection_id for d in claimed]

    task = asyncio.create_task(first())
    await first_claimed.wait()
    async with postgres_db.sessions.begin() as session:
        second = await claim_due_connections(
            session, worker_id=W2, now=T0, limit=4, lease_seconds=30
        )
    release_first.set()
    oldest_first = list(reversed(ids))
    assert await task == oldest_first[:4]
    assert [d.connection_id for d in second] == oldest_first[4:8]
