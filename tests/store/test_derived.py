"""Derived fields, with the cases the two seed pages describe."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select

from healthgraph.database import Database
from store import derived, exports, queries
from store.domain import (
    SYNC_STEPS,
    ConnectionState,
    ConnectionStatus,
    Health,
    InstanceHealth,
    Issue,
    IssueCode,
    UsedFor,
    UseStatus,
)
from store.filters import ConsumerFilter, SyncActivationFilter
from store.models import ConnectionRow, ConsumerRow, SyncActivationRow, step_bit
from tests.factories import GraphFactory


async def test_consumer_with_active_and_failed_connection_is_active_and_shows_connection_failed(
    db: Database,
) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        quickbooks = await graph.connector("quickbooks", "QuickBooks Online")
        drive = await graph.connector("drive", "Google Drive", "storage")
        acme = await graph.consumer("acme")
        await graph.connection(acme, drive)
        await graph.connection(acme, quickbooks, state=ConnectionState.FAILED)

    async with db.sessions() as session:
        active = await queries.consumers_active(session, [acme.id])
        issues = await queries.consumer_issues(session, [acme.id])

    assert active == {acme.id: True}
    assert issues == {
        acme.id: (Issue(IssueCode.CONNECTION_FAILED, quickbooks.id, "QuickBooks Online"),)
    }
    assert issues[acme.id][0].message == "Connection failed (QuickBooks Online)"


async def test_consumer_with_failing_heartbeat_shows_connection_failed(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        xero = await graph.connector("xero", "Xero")
        globex = await graph.consumer("globex")
        await graph.connection(globex, xero, status=ConnectionStatus.CONNECTION_FAILURE)

    async with db.sessions() as session:
        issues = await queries.consumer_issues(session, [globex.id])
        active = await queries.consumers_active(session, [globex.id])

    assert issues == {globex.id: (Issue(IssueCode.CONNECTION_FAILED, xero.id, "Xero"),)}
    assert active == {globex.id: True}


async def test_consumer_without_connection_shows_nothing_and_is_inactive(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        xero = await graph.connector("xero")
        lonely = await graph.consumer("lonely")
        pending_only = await graph.consumer("pending-only")
        disabled_failure = await graph.consumer("disabled-failure")
        await graph.connection(
            pending_only, xero, state=ConnectionState.PENDING, status=ConnectionStatus.UNKNOWN
        )
        await graph.connection(
            disabled_failure,
            xero,
            state=ConnectionState.DISABLED,
            status=ConnectionStatus.CONNECTION_FAILURE,
        )

    ids = [lonely.id, pending_only.id, disabled_failure.id]
    async with db.sessions() as session:
        issues = await queries.consumer_issues(session, ids)
        active = await queries.consumers_active(session, ids)

    assert issues == {
        lonely.id: (Issue(IssueCode.NOTHING),),
        pending_only.id: (),
        disabled_failure.id: (),
    }
    assert issues[lonely.id][0].message == "Nothing: no connection process was initiated"
    assert active == {lonely.id: False, pending_only.id: False, disabled_failure.id: False}


async def test_the_four_sync_issues_and_an_active_activation(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        stripe = await graph.connector("stripe", "Stripe", "invoicing")
        quickbooks = await graph.connector("quickbooks", "QuickBooks Online")
        invoices = await graph.sync("Invoices to accounting", [stripe, quickbooks])

        failed = await graph.consumer("failed")
        await graph.connection(failed, stripe)
        await graph.connection(failed, quickbooks, state=ConnectionState.FAILED)
        failed_activation = await graph.activation(invoices, failed, mapping=False)

        missing = await graph.consumer("missing")
        await graph.connection(missing, stripe)
        missing_activation = await graph.activation(invoices, missing)

        unmapped = await graph.consumer("unmapped")
        await graph.connection(unmapped, stripe)
        await graph.connection(unmapped, quickbooks)
        unmapped_activation = await graph.activation(
            invoices, unmapped, mapping=False, configuration=False
        )

        unconfigured = await graph.consumer("unconfigured")
        await graph.connection(unconfigured, stripe)
        await graph.connection(unconfigured, quickbooks)
        unconfigured_activation = await graph.activation(
            invoices, unconfigured, configuration=False
        )

        done = await graph.consumer("done")
        await graph.connection(done, stripe)
        await graph.connection(done, quickbooks)
        done_activation = await graph.activation(invoices, done)

        started = await graph.consumer("started")
        await graph.connection(started, stripe)
        await graph.connection(started, quickbooks)
        started_activation = await graph.activation(invoices, started, connection=False)

    ids = [
        failed_activation.id,
        missing_activation.id,
        unmapped_activation.id,
        unconfigured_activation.id,
        done_activation.id,
        started_activation.id,
    ]
    async with db.sessions() as session:
        state = await queries.sync_activations_state(session, ids)

    assert state == {
        failed_activation.id: (
            False,
            Issue(IssueCode.CONNECTION_FAILED, quickbooks.id, "QuickBooks Online"),
        ),
        missing_activation.id: (
            False,
            Issue(IssueCode.NO_CONNECTION, quickbooks.id, "QuickBooks Online"),
        ),
        unmapped_activation.id: (False, Issue(IssueCode.MAPPING_INCOMPLETE)),
        unconfigured_activation.id: (False, Issue(IssueCode.CONFIGURATION_INCOMPLETE)),
        done_activation.id: (True, None),
        started_activation.id: (False, Issue(IssueCode.NO_CONNECTION)),
    }
    assert [issue.message for _, issue in state.values() if issue] == [
        "Connection failed (QuickBooks Online)",
        "No connection: required connections are missing (QuickBooks Online)",
        "Mapping incomplete: some mappings were not correctly set",
        "Configuration incomplete: the sync was not activated",
        "No connection: required connections are missing",
    ]


async def test_used_for_counts_uses_per_kind(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        jira = await graph.connector("jira", "Jira", "ticketing")
        acme = await graph.consumer("acme")
        connection = await graph.connection(acme, jira)
        unused = await graph.connection(acme, jira, name="spare")
        for index in range(4):
            await graph.use(connection, "hypersync", f"Hypersync {index}")
        await graph.use(connection, "livesync", "Policies folder")

    async with db.sessions() as session:
        summaries = await queries.use_summaries(session, [connection.id, unused.id])
    used_for = {key: summary.used_for for key, summary in summaries.items()}

    assert used_for == {
        connection.id: (
            UsedFor("livesync", "Cloud files", 1),
            UsedFor("hypersync", "Hypersyncs", 4),
        ),
        unused.id: (),
    }
    assert [str(entry) for entry in used_for[connection.id]] == [
        "Cloud files (1)",
        "Hypersyncs (4)",
    ]


async def test_instance_health_three_of_four_healthy(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        jira = await graph.connector("jira")
        acme = await graph.consumer("acme")
        connection = await graph.connection(acme, jira)
        no_uses = await graph.connection(acme, jira, name="no uses")
        for index in range(3):
            await graph.use(connection, "hypersync", f"Hypersync {index}")
        await graph.use(connection, "hypersync", "Missing resource", UseStatus.FAILED)

    async with db.sessions() as session:
        summaries = await queries.use_summaries(session, [connection.id, no_uses.id])
    health = {key: summary.instance_health for key, summary in summaries.items()}

    assert health == {
        connection.id: InstanceHealth(healthy=3, failed=1),
        no_uses.id: InstanceHealth(),
    }
    assert (health[connection.id].total, health[connection.id].status) == (4, Health.DEGRADED)
    assert health[no_uses.id].status is Health.UNKNOWN


def test_instance_health_rollup() -> None:
    assert InstanceHealth(healthy=2).status is Health.HEALTHY
    assert InstanceHealth(healthy=2, unknown=1).status is Health.HEALTHY
    assert InstanceHealth(failed=2).status is Health.DOWN
    assert InstanceHealth(healthy=1, failed=1).status is Health.DEGRADED
    assert InstanceHealth(unknown=3).status is Health.UNKNOWN


# What one consumer's connections to one connector can be, as the "by syncs" facts see them.
_CONNECTION_CASES: dict[str, tuple[tuple[ConnectionState, ConnectionStatus], ...]] = {
    "none": (),
    "healthy": ((ConnectionState.ACTIVE, ConnectionStatus.CONNECTED),),
    "failing heartbeat": ((ConnectionState.ACTIVE, ConnectionStatus.CONNECTION_FAILURE),),
    "auth failed": ((ConnectionState.FAILED, ConnectionStatus.UNKNOWN),),
    "pending": ((ConnectionState.PENDING, ConnectionStatus.UNKNOWN),),
    "disabled, was failing": ((ConnectionState.DISABLED, ConnectionStatus.CONNECTION_FAILURE),),
    "healthy and failed": (
        (ConnectionState.ACTIVE, ConnectionStatus.CONNECTED),
        (ConnectionState.FAILED, ConnectionStatus.UNKNOWN),
    ),
}


async def _connect_as(graph: GraphFactory, consumer: Any, cases: Iterable[tuple[Any, str]]) -> None:
    """For each (connector, case), the connections `_CONNECTION_CASES[case]` lists."""
    for connector, case in cases:
        for n, (state, status) in enumerate(_CONNECTION_CASES[case]):
            await graph.connection(
                consumer, connector, state=state, status=status, name=f"{connector.slug} {n}"
            )


async def test_python_activation_state_agrees_with_the_sql_definition(db: Database) -> None:
    """`derived.activation_state` (the CSV export's batches) gives what `activation_issue` and
    `activation_is_active` (lists, filters, GraphQL) give, on every combination of two required
    connectors' connections and step completion."""
    masks = (0b000, 0b001, 0b011, 0b101, 0b111)
    cases = list(itertools.product(_CONNECTION_CASES, _CONNECTION_CASES, masks))
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        first = await graph.connector("first", "First Connector")
        second = await graph.connector("second", "Second Connector")
        sync = await graph.sync("Both", [second, first])  # position order: second, then first
        for index, (on_second, on_first, mask) in enumerate(cases):
            consumer = await graph.consumer(f"c{index:03}")
            await _connect_as(graph, consumer, ((second, on_second), (first, on_first)))
            steps = {step.value.lower(): bool(mask & step_bit(step)) for step in SYNC_STEPS}
            await graph.activation(sync, consumer, **steps)

    async with db.sessions() as session:
        batch = await exports.consumers_by_syncs(session, SyncActivationFilter(), 0, 1000)
        ids = list(
            await session.scalars(select(SyncActivationRow.id).order_by(SyncActivationRow.id))
        )
        by_sql = await queries.sync_activations_state(session, ids)
    assert batch is not None and len(batch.rows) == len(cases) == len(ids)
    # Cells: active, then issue_code and issue at SYNC_COLUMNS' places.
    python = {i: (row[3] == "true", row[7], row[8]) for i, row in zip(ids, batch.rows, strict=True)}
    sql = {
        activation_id: (active, issue.code.value if issue else "", issue.message if issue else "")
        for activation_id, (active, issue) in by_sql.items()
    }
    assert python == sql
    # The cases do reach every outcome, so the agreement means something.
    assert {code for _, code, _ in python.values()} == {
        "",
        "CONNECTION_FAILED",
        "NO_CONNECTION",
        "MAPPING_INCOMPLETE",
        "CONFIGURATION_INCOMPLETE",
    }
    assert {active for active, _, _ in python.values()} == {True, False}
    assert "Connection failed (Second Connector)" in {issue for _, _, issue in python.values()}
    assert "No connection: required connections are missing (First Connector)" in {
        issue for _, _, issue in python.values()
    }


async def test_csv_by_connections_batches_agree_with_the_sql_definitions(db: Database) -> None:
    """`exports.consumers_by_connections` (grouped reads over a batch's id range) gives the
    activity, connection count and issue column that `derived` gives per consumer, over
    batches smaller than the data, whole and filtered (a filter leaves other consumers in the
    range, which must not leak into the rows)."""
    cases = list(itertools.product(_CONNECTION_CASES, _CONNECTION_CASES))
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        first = await graph.connector("first", "First Connector")
        second = await graph.connector("second", "Second Connector")
        consumer_ids = []
        for index, (on_first, on_second) in enumerate(cases):
            consumer = await graph.consumer(f"c{index:03}")
            consumer_ids.append(consumer.id)
            # Second first: connection order is not connector order.
            await _connect_as(graph, consumer, ((second, on_second), (first, on_first)))

    tenants = ConsumerFilter(consumer_ids=(consumer_ids[3], consumer_ids[30]))
    whole: dict[object, tuple[object, ...]] = {}
    for f in (ConsumerFilter(), ConsumerFilter(active=False), tenants):
        async with db.sessions() as session:
            batches, after = [], 0
            while batch := await exports.consumers_by_connections(session, f, after, 7):
                batches.append(batch)
                after = batch.last_id
            # Cells by external id: active, connections and issue at CONSUMER_COLUMNS' places.
            exported: dict[object, tuple[object, ...]] = {
                row[0]: (row[3] == "true", row[4], row[5]) for b in batches for row in b.rows
            }
            external_ids = dict(
                (
                    await session.execute(
                        select(ConsumerRow.id, ConsumerRow.external_id)
                        .where(*queries.consumer_conditions(f))
                        .order_by(ConsumerRow.id)
                    )
                ).all()
            )
            ids = list(external_ids)
            active = await queries.consumers_active(session, ids)
            issues = await queries.consumer_issues(session, ids)
            counted = dict(
                (
                    await session.execute(
                        select(ConnectionRow.consumer_id, func.count())
                        .where(ConnectionRow.consumer_id.in_(ids))
                        .group_by(ConnectionRow.consumer_id)
                    )
                ).all()
            )
        defined = {
            external_ids[i]: (
                active[i],
                counted.get(i, 0),
                "; ".join(issue.message for issue in issues[i]),
            )
            for i in ids
        }
        assert list(exported) == list(defined)
        assert exported == defined
        whole = whole or exported
    # The cases reach every outcome, so the agreement means something.
    assert {active for active, _, _ in whole.values()} == {True, False}
    assert {"", "Nothing: no connection process was initiated"} <= {i for _, _, i in whole.values()}
    assert "Connection failed (Second Connector); Connection failed (First Connector)" in {
        issue for _, _, issue in whole.values()
    }


def test_activation_state_precedence() -> None:
    """First failed connector by position wins over a missing one; steps come after both."""
    healthy = derived.RequirementHealth(healthy=True, active=True)
    failed = derived.RequirementHealth(failed=True)
    pending = derived.RequirementHealth()
    assert derived.activation_state([1, 2], {1: healthy, 2: healthy}, 0b111) == (True, None, None)
    assert derived.activation_state([1, 2], {1: pending, 2: failed}, 0b111) == (
        False,
        IssueCode.CONNECTION_FAILED,
        2,
    )
    assert derived.activation_state([1, 2], {2: healthy}, 0b111) == (
        False,
        IssueCode.NO_CONNECTION,
        1,
    )
    assert derived.activation_state([1], {1: healthy}, 0b110) == (
        False,
        IssueCode.NO_CONNECTION,
        None,
    )
    assert derived.activation_state([1], {1: healthy}, 0b101) == (
        False,
        IssueCode.MAPPING_INCOMPLETE,
        None,
    )
    assert derived.activation_state([], {}, 0b011) == (
        False,
        IssueCode.CONFIGURATION_INCOMPLETE,
        None,
    )
    # ACTIVE but failing its heartbeat: active (the sync can run), yet the issue names it.
    failing = derived.RequirementHealth(failed=True, active=True)
    assert derived.activation_state([1], {1: failing}, 0b111) == (
        True,
        IssueCode.CONNECTION_FAILED,
        1,
    )
