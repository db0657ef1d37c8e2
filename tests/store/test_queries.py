"""Lists, filters, search, keyset pagination and the overview, on every backend."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from healthgraph.database import Database
from store import derived, queries
from store.domain import (
    CategoryUsage,
    ConnectionState,
    ConnectionStatus,
    Direction,
    IssueCode,
    StatusCounts,
    StepFunnelEntry,
    SyncStep,
    UseStatus,
)
from store.errors import InvalidCursorError, PageSizeError
from store.filters import (
    ConnectionFilter,
    ConnectorFilter,
    ConsumerFilter,
    SyncActivationFilter,
    SyncFilter,
    UseFilter,
)
from store.models import ConnectionRow, ConnectorRow, ConsumerRow
from store.pagination import MAX_PAGE_SIZE, PageRequest, encode_cursor
from tests.factories import GraphFactory


@pytest.fixture
async def seeded(db: Database) -> dict[str, int]:
    """A small graph that every list test reads: ids by name."""
    ids: dict[str, int] = {}
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        quickbooks = await graph.connector("quickbooks", "QuickBooks Online")
        xero = await graph.connector("xero", "Xero")
        drive = await graph.connector("drive", "Google Drive", "storage")
        acme = await graph.consumer("acme", "Acme Corp")
        globex = await graph.consumer("globex", "Globex")
        initech = await graph.consumer("initech", "Initech 100%_real")
        await graph.consumer("hooli", "Hooli")
        acme_qb = await graph.connection(acme, quickbooks, name="Acme QuickBooks")
        acme_drive = await graph.connection(
            acme, drive, name="Acme Drive", direction=Direction.INBOUND
        )
        globex_xero = await graph.connection(
            globex,
            xero,
            name="Globex Xero",
            state=ConnectionState.FAILED,
            status=ConnectionStatus.CONNECTION_FAILURE,
        )
        initech_qb = await graph.connection(
            initech,
            quickbooks,
            name="Initech QuickBooks",
            state=ConnectionState.PENDING,
            status=ConnectionStatus.UNKNOWN,
        )
        await graph.use(acme_qb, "hypersync", "Invoices")
        await graph.use(acme_qb, "hypersync", "Bills", UseStatus.FAILED)
        await graph.use(acme_drive, "livesync", "Policies")
        invoices = await graph.sync("Invoices to accounting", [quickbooks])
        ledger = await graph.sync("Expenses to ledger", [xero])
        acme_invoices = await graph.activation(invoices, acme)
        globex_ledger = await graph.activation(ledger, globex)
        initech_invoices = await graph.activation(invoices, initech, mapping=False)
        for name, row in [
            ("quickbooks", quickbooks),
            ("xero", xero),
            ("drive", drive),
            ("acme", acme),
            ("globex", globex),
            ("initech", initech),
            ("acme_qb", acme_qb),
            ("acme_drive", acme_drive),
            ("globex_xero", globex_xero),
            ("initech_qb", initech_qb),
            ("invoices", invoices),
            ("ledger", ledger),
            ("acme_invoices", acme_invoices),
            ("globex_ledger", globex_ledger),
            ("initech_invoices", initech_invoices),
        ]:
            ids[name] = row.id
        ids["hooli"] = (await queries.consumers_by_external_id(session, ["hooli"]))["hooli"].id
    return ids


async def _consumer_ids(db: Database, f: ConsumerFilter) -> list[str]:
    async with db.sessions() as session:
        page = await queries.list_consumers(session, f, PageRequest())
        assert await queries.count_consumers(session, f) == len(page.items)
    return [c.external_id for c in page.items]


async def test_consumer_filters(db: Database, seeded: dict[str, int]) -> None:
    assert await _consumer_ids(db, ConsumerFilter()) == ["acme", "globex", "initech", "hooli"]
    assert await _consumer_ids(db, ConsumerFilter(active=True)) == ["acme"]
    assert await _consumer_ids(db, ConsumerFilter(active=False)) == ["globex", "initech", "hooli"]
    assert await _consumer_ids(db, ConsumerFilter(connector_ids=(seeded["quickbooks"],))) == [
        "acme",
        "initech",
    ]
    assert await _consumer_ids(db, ConsumerFilter(issue_codes=(IssueCode.CONNECTION_FAILED,))) == [
        "globex"
    ]
    assert await _consumer_ids(db, ConsumerFilter(issue_codes=(IssueCode.NOTHING,))) == ["hooli"]
    assert await _consumer_ids(
        db, ConsumerFilter(issue_codes=(IssueCode.NOTHING, IssueCode.CONNECTION_FAILED))
    ) == ["globex", "hooli"]
    assert (
        await _consumer_ids(db, ConsumerFilter(issue_codes=(IssueCode.MAPPING_INCOMPLETE,))) == []
    )
    assert await _consumer_ids(db, ConsumerFilter(consumer_ids=(seeded["globex"],))) == ["globex"]
    assert await _consumer_ids(db, ConsumerFilter(consumer_ids=())) == []


async def test_consumer_search_by_name_external_id_or_id(
    db: Database, seeded: dict[str, int]
) -> None:
    assert await _consumer_ids(db, ConsumerFilter(search="acme")) == ["acme"]
    assert await _consumer_ids(db, ConsumerFilter(search="ACME CO")) == ["acme"]
    assert await _consumer_ids(db, ConsumerFilter(search="glob")) == ["globex"]
    assert await _consumer_ids(db, ConsumerFilter(search=str(seeded["hooli"]))) == ["hooli"]
    # LIKE wildcards in the term are literal characters, not patterns.
    assert await _consumer_ids(db, ConsumerFilter(search="100%_")) == ["initech"]
    assert await _consumer_ids(db, ConsumerFilter(search="%")) == ["initech"]
    assert await _consumer_ids(db, ConsumerFilter(search="_")) == ["initech"]
    assert await _consumer_ids(db, ConsumerFilter(search="nobody")) == []
    assert await _consumer_ids(db, ConsumerFilter(search="  ")) == [
        "acme",
        "globex",
        "initech",
        "hooli",
    ]
    assert await _consumer_ids(
        db, ConsumerFilter(search="o", active=False, connector_ids=(seeded["xero"],))
    ) == ["globex"]


async def test_connection_filters(db: Database, seeded: dict[str, int]) -> None:
    async def names(f: ConnectionFilter) -> list[str]:
        async with db.sessions() as session:
            page = await queries.list_connections(session, f, PageRequest())
            assert await queries.count_connections(session, f) == len(page.items)
            await same_with_ends(session, f)
        return [c.name for c in page.items]

    async def same_with_ends(session: AsyncSession, f: ConnectionFilter) -> None:
        """The page with both ends of each connection is the same page, walked one by one."""
        request = PageRequest(first=1)
        while True:
            page = await queries.list_connections(session, f, request)
            listed = await queries.list_connections_with_ends(session, f, request)
            assert listed.page == page
            assert listed.consumers == await queries.consumers_by_id(
                session, {c.consumer_id for c in page.items}
            )
            assert listed.connectors == await queries.connectors_by_id(
                session, {c.connector_id for c in page.items}
            )
            if not page.has_next_page:
                return
            request = PageRequest(first=1, after=page.end_cursor)

    everything = ["Acme QuickBooks", "Acme Drive", "Globex Xero", "Initech QuickBooks"]
    assert await names(ConnectionFilter()) == everything
    assert await names(ConnectionFilter(states=(ConnectionState.FAILED,))) == ["Globex Xero"]
    assert await names(ConnectionFilter(statuses=(ConnectionStatus.CONNECTED,))) == [
        "Acme QuickBooks",
        "Acme Drive",
    ]
    assert await names(ConnectionFilter(directions=(Direction.INBOUND,))) == ["Acme Drive"]
    assert await names(ConnectionFilter(connector_ids=(seeded["quickbooks"],))) == [
        "Acme QuickBooks",
        "Initech QuickBooks",
    ]
    assert await names(ConnectionFilter(consumer_ids=(seeded["acme"],))) == [
        "Acme QuickBooks",
        "Acme Drive",
    ]
    assert await names(ConnectionFilter(search="quickbooks")) == [
        "Acme QuickBooks",
        "Initech QuickBooks",
    ]
    assert await names(ConnectionFilter(search=str(seeded["globex_xero"]))) == ["Globex Xero"]
    assert await names(
        ConnectionFilter(consumer_ids=(seeded["acme"],), directions=(Direction.OUTBOUND,))
    ) == ["Acme QuickBooks"]


async def test_connector_use_and_sync_lists(db: Database, seeded: dict[str, int]) -> None:
    async with db.sessions() as session:
        storage = await queries.list_connectors(
            session, ConnectorFilter(categories=("storage",)), PageRequest()
        )
        of_globex = await queries.list_connectors(
            session, ConnectorFilter(consumer_ids=(seeded["globex"],)), PageRequest()
        )
        searched = await queries.list_connectors(
            session, ConnectorFilter(search="quick"), PageRequest()
        )
        failed_uses = await queries.list_uses(
            session, UseFilter(statuses=(UseStatus.FAILED,)), PageRequest()
        )
        uses_of_acme = await queries.count_uses(session, UseFilter(consumer_ids=(seeded["acme"],)))
        uses_of_globex = await queries.count_uses(
            session, UseFilter(consumer_ids=(seeded["globex"],))
        )
        syncs = await queries.list_syncs(session, SyncFilter(search="ledger"), PageRequest())
        required = await queries.required_connector_ids(
            session, [seeded["invoices"], seeded["ledger"]]
        )

    assert [c.slug for c in storage.items] == ["drive"]
    assert [c.slug for c in of_globex.items] == ["xero"]
    assert [c.slug for c in searched.items] == ["quickbooks"]
    assert [(u.name, u.kind_label, u.status) for u in failed_uses.items] == [
        ("Bills", "Hypersyncs", UseStatus.FAILED)
    ]
    assert (uses_of_acme, uses_of_globex) == (3, 0)
    assert [s.name for s in syncs.items] == ["Expenses to ledger"]
    assert required == {
        seeded["invoices"]: (seeded["quickbooks"],),
        seeded["ledger"]: (seeded["xero"],),
    }


async def test_sync_activation_filters(db: Database, seeded: dict[str, int]) -> None:
    async def consumers(f: SyncActivationFilter) -> list[int]:
        async with db.sessions() as session:
            page = await queries.list_sync_activations(session, f, PageRequest())
            assert await queries.count_sync_activations(session, f) == len(page.items)
        return [a.consumer_id for a in page.items]

    acme, globex, initech = seeded["acme"], seeded["globex"], seeded["initech"]
    assert await consumers(SyncActivationFilter()) == [acme, globex, initech]
    assert await consumers(SyncActivationFilter(active=True)) == [acme]
    assert await consumers(SyncActivationFilter(active=False)) == [globex, initech]
    assert await consumers(SyncActivationFilter(sync_ids=(seeded["ledger"],))) == [globex]
    assert await consumers(SyncActivationFilter(connector_ids=(seeded["quickbooks"],))) == [
        acme,
        initech,
    ]
    assert await consumers(SyncActivationFilter(issue_codes=(IssueCode.CONNECTION_FAILED,))) == [
        globex
    ]
    # Initech's only QuickBooks connection is PENDING: the connection is what is missing.
    assert await consumers(SyncActivationFilter(issue_codes=(IssueCode.NO_CONNECTION,))) == [
        initech
    ]
    assert await consumers(SyncActivationFilter(search="initech")) == [initech]
    assert await consumers(SyncActivationFilter(search="ledger")) == [globex]
    assert await consumers(SyncActivationFilter(search="initech", active=True)) == []


async def test_pagination_walks_every_row_once(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        for index in range(23):
            await graph.consumer(f"c{index:02d}")

    seen: list[str] = []
    after = None
    pages = 0
    async with db.sessions() as session:
        while True:
            page = await queries.list_consumers(
                session, ConsumerFilter(), PageRequest(first=10, after=after)
            )
            pages += 1
            seen += [c.external_id for c in page.items]
            assert page.has_previous_page is (after is not None)
            if not page.has_next_page:
                break
            after = page.end_cursor
    assert seen == [f"c{index:02d}" for index in range(23)]
    assert pages == 3

    async with db.sessions() as session:
        empty = await queries.list_consumers(session, ConsumerFilter(), PageRequest(first=0))
        past_end = await queries.list_consumers(
            session, ConsumerFilter(), PageRequest(after=encode_cursor(10**6))
        )
    assert (empty.items, empty.has_next_page, empty.end_cursor) == ((), True, None)
    assert (past_end.items, past_end.has_next_page) == ((), False)


def test_page_request_rejects_bad_input() -> None:
    with pytest.raises(PageSizeError, match=r"first: 501 is out of range; use 0\.\.500"):
        PageRequest(first=MAX_PAGE_SIZE + 1)
    with pytest.raises(PageSizeError, match="first: -1"):
        PageRequest(first=-1)
    for bad in ("not-a-cursor", "", "aGcxOmFiYw", encode_cursor(5)[:-2] + "!!"):
        with pytest.raises(
            InvalidCursorError, match="is not valid; pass a cursor returned by this API"
        ):
            PageRequest(after=bad)


async def test_checks_are_listed_newest_first(db: Database, seeded: dict[str, int]) -> None:
    from datetime import UTC, datetime, timedelta

    from store.models import CheckRow

    start = datetime(2026, 11, 1, tzinfo=UTC)
    async with db.sessions.begin() as session:
        session.add_all(
            CheckRow(
                connection_id=seeded["acme_qb"],
                checked_at=start + timedelta(minutes=i),
                success=i % 2 == 0,
                latency_ms=float(i),
            )
            for i in range(5)
        )
    async with db.sessions() as session:
        first = await queries.list_checks(session, seeded["acme_qb"], PageRequest(first=3))
        rest = await queries.list_checks(
            session, seeded["acme_qb"], PageRequest(first=3, after=first.end_cursor)
        )
        none = await queries.list_checks(session, seeded["globex_xero"], PageRequest())
    assert [c.latency_ms for c in first.items] == [4.0, 3.0, 2.0]
    assert [c.latency_ms for c in rest.items] == [1.0, 0.0]
    assert first.items[0].checked_at == start + timedelta(minutes=4)
    assert (first.has_next_page, rest.has_next_page, none.items) == (True, False, ())


def _count_statements(engine: AsyncEngine) -> list[str]:
    statements: list[str] = []
    event.listen(
        engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    return statements


async def test_overview(db: Database, seeded: dict[str, int]) -> None:
    statements = _count_statements(db.engine)
    async with db.sessions() as session:
        overview = await queries.overview(session)

    assert len(statements) == 4
    assert (overview.consumers, overview.active_consumers) == (4, 1)
    assert (
        overview.active_connections,
        overview.pending_connections,
        overview.failed_connections,
        overview.disabled_connections,
    ) == (2, 1, 1, 0)
    assert overview.connections_by_status == StatusCounts(
        connected=2, connection_failure=1, unknown=1
    )
    assert [
        (u.connector.slug, u.active_connections, u.pending_connections, u.failed_connections)
        for u in overview.connectors
    ] == [
        ("drive", 1, 0, 0),
        ("quickbooks", 1, 1, 0),
        ("xero", 0, 0, 1),
    ]
    assert [
        (s.sync.name, s.activations, s.active_activations, s.activation_rate)
        for s in overview.syncs
    ] == [
        ("Expenses to ledger", 1, 0, 0.0),
        ("Invoices to accounting", 2, 1, 0.5),
    ]
    assert overview.active_syncs == 1
    assert overview.categories is None  # not asked for
    invoices = overview.syncs[1]
    assert invoices.step_funnel == (
        StepFunnelEntry(SyncStep.CONNECTION, 2, 0),
        StepFunnelEntry(SyncStep.MAPPING, 1, 1),
        StepFunnelEntry(SyncStep.CONFIGURATION, 2, 0),
    )


async def test_overview_scoped_to_one_consumer(db: Database, seeded: dict[str, int]) -> None:
    async with db.sessions() as session:
        overview = await queries.overview(session, consumer_ids=(seeded["globex"],))
    assert (overview.consumers, overview.active_consumers, overview.failed_connections) == (1, 0, 1)
    assert overview.active_connections == 0
    assert [(u.connector.slug, u.failed_connections) for u in overview.connectors] == [
        ("drive", 0),
        ("quickbooks", 0),
        ("xero", 1),
    ]
    assert [(s.sync.name, s.activations) for s in overview.syncs] == [
        ("Expenses to ledger", 1),
        ("Invoices to accounting", 0),
    ]


async def test_overview_per_category(db: Database, seeded: dict[str, int]) -> None:
    """Asked for, the categories come in the same four statements, and change nothing else."""
    async with db.sessions() as session:
        plain = await queries.overview(session)
        statements = _count_statements(db.engine)
        overview = await queries.overview(session, categories=True)
        scoped = await queries.overview(session, (seeded["globex"],), categories=True)
        nobody = await queries.overview(session, (), categories=True)

    assert len(statements) == 12
    assert replace(overview, categories=None) == plain
    # quickbooks (Acme ACTIVE, Initech PENDING) and xero (Globex FAILED); drive (Acme ACTIVE).
    assert overview.categories == (
        CategoryUsage("accounting", 2, 1, 1, 1, 1),
        CategoryUsage("storage", 1, 1, 0, 0, 1),
    )
    assert scoped.categories == (
        CategoryUsage("accounting", 2, 0, 0, 1, 0),
        CategoryUsage("storage", 1, 0, 0, 0, 0),
    )
    assert nobody.categories == (
        CategoryUsage("accounting", 2, 0, 0, 0, 0),
        CategoryUsage("storage", 1, 0, 0, 0, 0),
    )


async def test_overview_category_active_consumers_agree_with_the_definition(
    db: Database,
) -> None:
    """A consumer with ACTIVE connections to two connectors of a category, or two to one
    connector, counts once there; the definition is an EXISTS per consumer and category. Equal
    on every mix of states over three connectors in two categories, whole and scoped."""
    states = list(ConnectionState)
    mixes = [(), *((state,) for state in states), *itertools.product(states, repeat=3)]
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        connectors = [
            await graph.connector("qb", "QuickBooks", "accounting"),
            await graph.connector("xero", "Xero", "accounting"),
            await graph.connector("drive", "Drive", "storage"),
        ]
        ids = []
        for index, mix in enumerate(mixes):
            consumer = await graph.consumer(f"c{index:03}")
            ids.append(consumer.id)
            for n, state in enumerate(mix):
                await graph.connection(consumer, connectors[n], state=state, name=f"n{n}")
            if len(mix) == 3 and index % 2:
                await graph.connection(consumer, connectors[0], name="QuickBooks again")

    found = {}
    overviews = {}
    async with db.sessions() as session:
        for scope in (None, tuple(ids[::3]), ()):
            overview = await queries.overview(session, consumer_ids=scope, categories=True)
            overviews[scope] = overview
            assert overview.categories is not None
            for usage in overview.categories:
                defined = select(func.count()).where(
                    select(ConnectionRow.id)
                    .join(ConnectorRow, ConnectorRow.id == ConnectionRow.connector_id)
                    .where(
                        ConnectionRow.consumer_id == ConsumerRow.id,
                        derived.connection_is_active(),
                        ConnectorRow.category == usage.category,
                    )
                    .exists()
                )
                if scope is not None:
                    defined = defined.where(ConsumerRow.id.in_(scope))
                expected = await session.scalar(defined.select_from(ConsumerRow))
                found[(scope, usage.category)] = (usage.active_consumers, expected)
    assert all(by_overview == by_definition for by_overview, by_definition in found.values())
    assert [category for scope, category in found if scope is None] == ["accounting", "storage"]
    # Some consumers have two ACTIVE accounting connections: summing would count them twice.
    accounting = overviews[None].categories[0]
    assert accounting.active_consumers < accounting.active_connections
    assert found[(None, "accounting")][0] > 0 and found[((), "accounting")] == (0, 0)


async def test_overview_active_consumers_agree_with_the_definition(db: Database) -> None:
    """The overview counts active consumers from the connections (a distinct count); the
    definition is `derived.consumer_is_active` per consumer. Equal on every mix of states,
    whole and scoped."""
    states = list(ConnectionState)
    mixes = [(), *((state,) for state in states), *itertools.combinations(states, 2)]
    mixes.append((ConnectionState.ACTIVE, ConnectionState.ACTIVE))
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        connectors = [await graph.connector(f"k{i}", f"K{i}") for i in range(2)]
        ids = []
        for index, mix in enumerate(mixes):
            consumer = await graph.consumer(f"c{index:02}")
            ids.append(consumer.id)
            for n, state in enumerate(mix):
                await graph.connection(consumer, connectors[n], state=state, name=f"n{n}")

    counts = {}
    async with db.sessions() as session:
        for scope in (None, tuple(ids[::3]), ()):
            overview = await queries.overview(session, consumer_ids=scope)
            defined = select(func.count()).where(derived.consumer_is_active())
            if scope is not None:
                defined = defined.where(ConsumerRow.id.in_(scope))
            expected = await session.scalar(defined.select_from(ConsumerRow))
            counts[scope] = (overview.active_consumers, expected)
    assert all(by_overview == by_definition for by_overview, by_definition in counts.values())
    # Some active and some not, so the agreement means something.
    assert 0 < counts[None][0] < len(mixes)


async def test_overview_of_empty_database(db: Database) -> None:
    async with db.sessions() as session:
        overview = await queries.overview(session)
    assert overview.consumers == overview.active_consumers == overview.active_syncs == 0
    assert overview.connections_by_status == StatusCounts()
    assert overview.connectors == overview.syncs == ()


async def test_nested_pages_are_cut_per_parent_in_one_statement(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        jira = await graph.connector("jira")
        consumers = [await graph.consumer(f"c{index}") for index in range(3)]
        connections = {}
        for index, consumer in enumerate(consumers):
            for number in range(index * 2):
                connection = await graph.connection(
                    consumer, jira, name=f"{consumer.external_id}-{number}"
                )
                connections[connection.name] = connection
                await graph.use(connection, "hypersync", f"use {number}")
    consumer_ids = [c.id for c in consumers]

    statements = _count_statements(db.engine)
    async with db.sessions() as session:
        pages = await queries.connections_per_parent(
            session, "consumer", consumer_ids, ConnectionFilter(), PageRequest(first=3)
        )
        assert len(statements) == 1
        counts = await queries.count_connections_per_parent(
            session, "consumer", consumer_ids, ConnectionFilter()
        )
        following = await queries.connections_per_parent(
            session,
            "consumer",
            [consumers[2].id],
            ConnectionFilter(),
            PageRequest(first=3, after=pages[consumers[2].id].end_cursor),
        )
        uses = await queries.uses_per_connection(
            session,
            [connections["c1-0"].id, connections["c2-3"].id],
            UseFilter(),
            PageRequest(first=5),
        )

    assert {cid: [c.name for c in page.items] for cid, page in pages.items()} == {
        consumers[0].id: [],
        consumers[1].id: ["c1-0", "c1-1"],
        consumers[2].id: ["c2-0", "c2-1", "c2-2"],
    }
    assert [pages[c.id].has_next_page for c in consumers] == [False, False, True]
    assert [c.name for c in following[consumers[2].id].items] == ["c2-3"]
    assert counts == {consumers[0].id: 0, consumers[1].id: 2, consumers[2].id: 4}
    assert {cid: [(u.name, u.kind_label) for u in page.items] for cid, page in uses.items()} == {
        connections["c1-0"].id: [("use 0", "Hypersyncs")],
        connections["c2-3"].id: [("use 3", "Hypersyncs")],
    }
