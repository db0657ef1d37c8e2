"""The write side: validated commands, exact messages, nothing half-written, on every backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from healthgraph.database import Database
from store import commands, domain, queries
from store.crypto import KeyRing, generate_key
from store.domain import (
    ConnectionState,
    ConnectionStatus,
    Direction,
    FailureReason,
    Issue,
    IssueCode,
    StepState,
    SyncStep,
    TokenScope,
    UseStatus,
)
from store.errors import ConflictError, NotFoundError, StoreError, ValidationError
from store.models import (
    ApiTokenRow,
    Base,
    CheckRow,
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationStepRow,
)
from store.pagination import PageRequest
from tests.factories import GraphFactory
from tests.outbound import OUTBOUND
from tests.store.steps_check import completed_steps

T = TypeVar("T")
Command = Callable[[AsyncSession], Awaitable[object]]
CANARY = "canary-7f3e9a"
AT = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
async def ids(db: Database) -> dict[str, int]:
    """Two consumers, two connectors, an outbound and an inbound connection, a use, a sync."""
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        await graph.use_kinds()
        quickbooks = await graph.connector("quickbooks", "QuickBooks Online")
        xero = await graph.connector("xero", "Xero")
        acme = await graph.consumer("acme", "Acme Corp")
        globex = await graph.consumer("globex", "Globex")
        acme_qb = await graph.connection(acme, quickbooks, name="Acme QuickBooks")
        acme_push = await graph.connection(
            acme,
            xero,
            name="Acme push",
            direction=Direction.INBOUND,
            status=ConnectionStatus.CONNECTION_FAILURE,
        )
        acme_push.failure_reason = FailureReason.MISSED_HEARTBEAT
        acme_push.consecutive_failures = 2
        acme_push.check_interval_seconds = 3600
        invoices = await graph.use(acme_qb, "hypersync", "Invoices")
        sync = await graph.sync("Invoices to accounting", [quickbooks])
        rows = {
            "quickbooks": quickbooks,
            "xero": xero,
            "acme": acme,
            "globex": globex,
            "acme_qb": acme_qb,
            "acme_push": acme_push,
            "invoices": invoices,
            "sync": sync,
        }
        return {name: row.id for name, row in rows.items()}


async def _snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that a refused command changed nothing."""
    async with db.sessions() as session:
        return {
            table.name: [
                tuple(row)
                for row in await session.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


async def _run(db: Database, command: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with db.sessions.begin() as session:
        return await command(session)


async def _refused(
    db: Database, command: Command, error_type: type[StoreError] = ValidationError
) -> StoreError:
    """Run `command` expecting `error_type`; the caller's transaction must stay usable and
    commit without any trace of the command."""
    before = await _snapshot(db)
    async with db.sessions.begin() as session:
        with pytest.raises(error_type) as info:
            await command(session)
        assert await session.scalar(select(func.count()).select_from(ConnectionRow)) is not None
    assert await _snapshot(db) == before
    return info.value


async def _load(
    db: Database, batch: Callable[[AsyncSession, Iterable[int]], Awaitable[dict[int, T]]], key: int
) -> T | None:
    async with db.sessions() as session:
        return (await batch(session, [key])).get(key)


def _since_now() -> Callable[[datetime | None], bool]:
    """A test that a timestamp was taken between this call and the test's."""
    start = datetime.now(UTC)

    def within(value: datetime | None) -> bool:
        return value is not None and start <= value <= datetime.now(UTC)

    return within


# --- use kinds ---------------------------------------------------------------------------------


async def test_upsert_use_kind_creates_then_relabels(db: Database) -> None:
    created = await _run(db, lambda s: commands.upsert_use_kind(s, kind="hypersync", label="Syncs"))
    relabeled = await _run(
        db, lambda s: commands.upsert_use_kind(s, kind=" hypersync ", label="Hypersyncs")
    )

    assert created == domain.UseKind(kind="hypersync", label="Syncs")
    assert relabeled == domain.UseKind(kind="hypersync", label="Hypersyncs")
    async with db.sessions() as session:
        assert await queries.use_kinds(session) == (relabeled,)


@pytest.mark.parametrize(
    ("kind", "label", "message"),
    [
        ("", "Hypersyncs", "kind: must not be empty"),
        ("k" * 65, "Hypersyncs", "kind: is 65 characters long; use at most 64"),
        ("hypersync", "  ", "label: must not be empty"),
    ],
)
async def test_upsert_use_kind_refuses_bad_input(
    db: Database, kind: str, label: str, message: str
) -> None:
    error = await _refused(db, lambda s: commands.upsert_use_kind(s, kind=kind, label=label))
    assert str(error) == message


# --- consumers ---------------------------------------------------------------------------------


async def test_create_consumer(db: Database) -> None:
    within = _since_now()
    consumer = await _run(
        db,
        lambda s: commands.create_consumer(
            s, external_id=" initech ", name="Initech", email="ops@initech.example"
        ),
    )

    assert consumer == domain.Consumer(
        id=consumer.id,
        external_id="initech",
        name="Initech",
        email="ops@initech.example",
        created_at=consumer.created_at,
    )
    assert within(consumer.created_at)
    assert await _load(db, queries.consumers_by_id, consumer.id) == consumer


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"external_id": " "}, "external_id: must not be empty"),
        ({"name": "x" * 201}, "name: is 201 characters long; use at most 200"),
        ({"email": "nope"}, "email: 'nope' is not an email address"),
        ({"email": ""}, "email: must not be empty"),
        ({"external_id": "acme"}, "external_id: 'acme' is already used by another consumer"),
    ],
)
async def test_create_consumer_refuses(
    db: Database, ids: dict[str, int], fields: dict[str, Any], message: str
) -> None:
    arguments = {"external_id": "initech", "name": "Initech", **fields}
    error = await _refused(db, lambda s: commands.create_consumer(s, **arguments))
    assert str(error) == message


async def test_validation_error_names_field_and_value(db: Database) -> None:
    error = await _refused(
        db, lambda s: commands.create_consumer(s, external_id="initech", name="x", email="nope")
    )
    assert isinstance(error, ValidationError)
    assert (error.field, error.value, error.problem) == (
        "email",
        "nope",
        "'nope' is not an email address",
    )


async def test_update_consumer_changes_only_given_fields(db: Database, ids: dict[str, int]) -> None:
    before = await _load(db, queries.consumers_by_id, ids["acme"])
    assert before is not None

    renamed = await _run(
        db, lambda s: commands.update_consumer(s, ids["acme"], name="Acme Inc", email="a@acme.io")
    )
    assert renamed == dataclasses.replace(before, name="Acme Inc", email="a@acme.io")

    cleared = await _run(
        db,
        lambda s: commands.update_consumer(s, ids["acme"], external_id="acme", email=None),
    )
    assert cleared == dataclasses.replace(renamed, email=None)
    assert await _load(db, queries.consumers_by_id, ids["acme"]) == cleared


async def test_update_consumer_refuses(db: Database, ids: dict[str, int]) -> None:
    duplicate = await _refused(
        db, lambda s: commands.update_consumer(s, ids["acme"], external_id="globex")
    )
    assert str(duplicate) == "external_id: 'globex' is already used by another consumer"
    missing = await _refused(
        db, lambda s: commands.update_consumer(s, 999, name="x"), NotFoundError
    )
    assert str(missing) == "consumer 999 does not exist"
    assert str(await _refused(db, lambda s: commands.delete_consumer(s, 999), NotFoundError)) == (
        "consumer 999 does not exist"
    )


async def test_delete_consumer_cascades_to_everything_it_owns(
    db: Database, ids: dict[str, int]
) -> None:
    async with db.sessions.begin() as session:
        session.add(ApiTokenRow(token_hash="h", scope=TokenScope.READ, consumer_id=ids["acme"]))
        session.add(CheckRow(connection_id=ids["acme_qb"], checked_at=AT, success=True))
        await commands.create_sync_activation(session, sync_id=ids["sync"], consumer_id=ids["acme"])
        globex_activation = await commands.create_sync_activation(
            session, sync_id=ids["sync"], consumer_id=ids["globex"]
        )
        globex = await commands.create_connection(
            session,
            outbound=OUTBOUND,
            consumer_id=ids["globex"],
            connector_id=ids["xero"],
            name="Globex Xero",
        )
    before = await _snapshot(db)

    deleted = await _run(db, lambda s: commands.delete_consumer(s, ids["acme"]))

    assert deleted.external_id == "acme"
    after = await _snapshot(db)
    assert [row[0] for row in after["consumers"]] == [ids["globex"]]
    assert [row[0] for row in after["connections"]] == [globex.id]
    assert [row[0] for row in after["sync_activations"]] == [globex_activation.id]
    assert after["uses"] == after["checks"] == after["api_tokens"] == []
    assert len(after["sync_activation_steps"]) == 3
    assert after["connectors"] == before["connectors"]
    assert after["syncs"] == before["syncs"]


# --- connectors --------------------------------------------------------------------------------


async def test_create_connector(db: Database) -> None:
    template = {
        "kind": "http",
        "url": "https://api.example.com/{external_id}",
        "timeout_seconds": 5,
    }
    connector = await _run(
        db,
        lambda s: commands.create_connector(
            s,
            outbound=OUTBOUND,
            slug="netsuite",
            name="NetSuite",
            category="accounting",
            heartbeat=template,
        ),
    )

    assert connector == domain.Connector(
        id=connector.id, slug="netsuite", name="NetSuite", category="accounting", heartbeat=template
    )
    assert await _load(db, queries.connectors_by_id, connector.id) == connector


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"slug": "quickbooks"}, "slug: 'quickbooks' is already used by another connector"),
        ({"slug": "s" * 65}, "slug: is 65 characters long; use at most 64"),
        ({"category": ""}, "category: must not be empty"),
        (
            {"heartbeat": {"url": "ftp://x"}},
            "heartbeat.url: 'ftp://x' is not a valid URL; the scheme must be http or https",
        ),
        (
            {"heartbeat": {"verb": "GET"}},
            "heartbeat.verb: unknown key; expected one of kind, method, url, expected_status, "
            "timeout_seconds, body_regex, json_path, json_equals, headers, body, failure_when",
        ),
        ({"heartbeat": []}, "heartbeat: expected a mapping, got list"),
    ],
)
async def test_create_connector_refuses(
    db: Database, ids: dict[str, int], fields: dict[str, Any], message: str
) -> None:
    arguments = {"slug": "netsuite", "name": "NetSuite", "category": "erp", "heartbeat": {}}
    arguments.update(fields)
    error = await _refused(
        db, lambda s: commands.create_connector(s, outbound=OUTBOUND, **arguments)
    )
    assert str(error) == message


async def test_update_connector_template_makes_outbound_connections_due(
    db: Database, ids: dict[str, int]
) -> None:
    template = {"url": "https://qb.example/v2/health", "expected_status": [200, 204]}
    within = _since_now()

    connector = await _run(
        db,
        lambda s: commands.update_connector(
            s, ids["quickbooks"], outbound=OUTBOUND, name="QBO", heartbeat=template
        ),
    )

    assert connector == domain.Connector(
        id=ids["quickbooks"],
        slug="quickbooks",
        name="QBO",
        category="accounting",
        heartbeat=template,
    )
    connection = await _load(db, queries.connections_by_id, ids["acme_qb"])
    assert connection is not None
    assert within(connection.next_check_at)


async def test_update_connector_refuses(db: Database, ids: dict[str, int]) -> None:
    no_url = await _refused(
        db,
        lambda s: commands.update_connector(
            s, ids["quickbooks"], outbound=OUTBOUND, heartbeat={"kind": "http"}
        ),
    )
    assert str(no_url) == (
        "heartbeat.url: is required for an outbound connection "
        f"(connection {ids['acme_qb']} 'Acme QuickBooks' relies on this template)"
    )
    duplicate = await _refused(
        db,
        lambda s: commands.update_connector(s, ids["quickbooks"], outbound=OUTBOUND, slug="xero"),
    )
    assert str(duplicate) == "slug: 'xero' is already used by another connector"
    missing = await _refused(
        db, lambda s: commands.update_connector(s, 999, outbound=OUTBOUND, name="x"), NotFoundError
    )
    assert str(missing) == "connector 999 does not exist"


async def test_update_connector_template_without_url_is_fine_for_inbound_connections(
    db: Database, ids: dict[str, int]
) -> None:
    # xero is used only by the inbound "Acme push", which is never probed.
    connector = await _run(
        db,
        lambda s: commands.update_connector(
            s, ids["xero"], outbound=OUTBOUND, heartbeat={"timeout_seconds": 3}
        ),
    )
    assert connector.heartbeat == {"timeout_seconds": 3}


async def test_delete_connector_refuses_while_used(db: Database, ids: dict[str, int]) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        globex = await session.get(ConsumerRow, ids["globex"])
        quickbooks = await session.get(ConnectorRow, ids["quickbooks"])
        assert globex is not None and quickbooks is not None
        await graph.connection(globex, quickbooks, name="Globex QB")
        await graph.connection(globex, quickbooks, name="Globex QB 2")

    used = await _refused(
        db, lambda s: commands.delete_connector(s, ids["quickbooks"]), ConflictError
    )
    assert str(used) == (
        "connector 'quickbooks' is used by 3 connections; delete or move them first"
    )
    assert isinstance(used, ValidationError)
    assert (used.field, used.value) == ("connector_id", ids["quickbooks"])

    await _run(db, lambda s: commands.delete_connection(s, ids["acme_push"]))
    required = await _run(
        db, lambda s: commands.create_sync(s, name="X", required_connector_ids=[])
    )
    await _run(
        db, lambda s: commands.update_sync(s, required.id, required_connector_ids=[ids["xero"]])
    )
    by_sync = await _refused(db, lambda s: commands.delete_connector(s, ids["xero"]), ConflictError)
    assert str(by_sync) == (
        "connector 'xero' is required by 1 sync; remove it from their required connectors first"
    )


async def test_delete_unused_connector(db: Database, ids: dict[str, int]) -> None:
    await _run(db, lambda s: commands.delete_connection(s, ids["acme_push"]))

    deleted = await _run(db, lambda s: commands.delete_connector(s, ids["xero"]))

    assert deleted.slug == "xero"
    assert await _load(db, queries.connectors_by_id, ids["xero"]) is None
    missing = await _refused(db, lambda s: commands.delete_connector(s, 999), NotFoundError)
    assert str(missing) == "connector 999 does not exist"


# --- connections -------------------------------------------------------------------------------


async def test_create_outbound_connection_is_due_at_once(db: Database, ids: dict[str, int]) -> None:
    within = _since_now()
    connection = await _run(
        db,
        lambda s: commands.create_connection(
            s,
            outbound=OUTBOUND,
            consumer_id=ids["globex"],
            connector_id=ids["quickbooks"],
            name=" Globex QuickBooks ",
            check_interval_seconds=60,
            failure_threshold=3,
            heartbeat={"url": "https://globex.example/health", "expected_status": [204]},
        ),
    )

    assert connection == domain.Connection(
        id=connection.id,
        consumer_id=ids["globex"],
        connector_id=ids["quickbooks"],
        name="Globex QuickBooks",
        direction=Direction.OUTBOUND,
        state=ConnectionState.ACTIVE,
        status=ConnectionStatus.UNKNOWN,
        last_checked_at=None,
        last_success_at=None,
        failure_reason=None,
        last_error=None,
        latency_ms=None,
        consecutive_failures=0,
        check_interval_seconds=60,
        failure_threshold=3,
        next_check_at=connection.created_at,
        state_changed_at=connection.created_at,
        heartbeat={"url": "https://globex.example/health", "expected_status": [204]},
        has_credentials=False,
        created_at=connection.created_at,
    )
    assert within(connection.created_at)
    assert await _load(db, queries.connections_by_id, connection.id) == connection


async def test_create_inbound_connection_gets_one_interval_to_call_in(
    db: Database, ids: dict[str, int]
) -> None:
    connection = await _run(
        db,
        lambda s: commands.create_connection(
            s,
            outbound=OUTBOUND,
            consumer_id=ids["globex"],
            connector_id=ids["xero"],
            name="Globex push",
            direction=Direction.INBOUND,
            state=ConnectionState.PENDING,
            check_interval_seconds=300,
        ),
    )

    assert (connection.direction, connection.state, connection.heartbeat) == (
        Direction.INBOUND,
        ConnectionState.PENDING,
        {},
    )
    assert connection.next_check_at == connection.created_at + timedelta(seconds=300)
    assert connection.check_interval_seconds == 300
    assert connection.failure_threshold == 1


async def test_same_connection_name_is_fine_for_another_consumer(
    db: Database, ids: dict[str, int]
) -> None:
    connection = await _run(
        db,
        lambda s: commands.create_connection(
            s,
            outbound=OUTBOUND,
            consumer_id=ids["globex"],
            connector_id=ids["quickbooks"],
            name="Acme QuickBooks",
        ),
    )
    assert connection.check_interval_seconds == commands.DEFAULT_CHECK_INTERVAL_SECONDS


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "name: must not be empty"),
        ({"name": "n" * 201}, "name: is 201 characters long; use at most 200"),
        (
            {"name": "Acme QuickBooks"},
            "name: 'Acme QuickBooks' is already used by another connection of this consumer",
        ),
        (
            {"check_interval_seconds": 0},
            "check_interval_seconds: 0 is out of range; use 1..86400",
        ),
        (
            {"check_interval_seconds": 86401},
            "check_interval_seconds: 86401 is out of range; use 1..86400",
        ),
        (
            {"check_interval_seconds": True},
            "check_interval_seconds: expected an integer, got bool",
        ),
        ({"failure_threshold": 0}, "failure_threshold: 0 is out of range; use 1..100"),
        ({"failure_threshold": 101}, "failure_threshold: 101 is out of range; use 1..100"),
        (
            {"heartbeat": {"url": "ftp://x"}},
            "heartbeat.url: 'ftp://x' is not a valid URL; the scheme must be http or https",
        ),
        (
            {"heartbeat": {"timeout_seconds": 0}},
            "heartbeat.timeout_seconds: 0 is out of range; use a number in (0, 60]",
        ),
        (
            {"direction": Direction.INBOUND, "heartbeat": {"url": "https://acme.example"}},
            "heartbeat: inbound connections are not probed; remove it",
        ),
    ],
)
async def test_create_connection_refuses(
    db: Database, ids: dict[str, int], fields: dict[str, Any], message: str
) -> None:
    arguments = {
        "consumer_id": ids["acme"],
        "connector_id": ids["quickbooks"],
        "name": "Acme QB 2",
        **fields,
    }
    error = await _refused(
        db, lambda s: commands.create_connection(s, outbound=OUTBOUND, **arguments)
    )
    assert str(error) == message


async def test_outbound_connection_needs_a_url_that_suits_the_template(
    db: Database, ids: dict[str, int]
) -> None:
    bare = await _run(
        db,
        lambda s: commands.create_connector(
            s, outbound=OUTBOUND, slug="bare", name="Bare", category="misc", heartbeat={}
        ),
    )
    tcp = await _run(
        db,
        lambda s: commands.create_connector(
            s,
            outbound=OUTBOUND,
            slug="smtp",
            name="SMTP",
            category="mail",
            heartbeat={"kind": "tcp"},
        ),
    )

    def create(connector_id: int, heartbeat: dict[str, Any]) -> Command:
        return lambda s: commands.create_connection(
            s,
            outbound=OUTBOUND,
            consumer_id=ids["acme"],
            connector_id=connector_id,
            name="Acme new",
            heartbeat=heartbeat,
        )

    no_url = await _refused(db, create(bare.id, {}))
    assert str(no_url) == (
        "heartbeat.url: is required for an outbound connection (connector 'bare' has no URL "
        "template)"
    )
    wrong_scheme = await _refused(db, create(tcp.id, {"url": "https://mail.example"}))
    assert str(wrong_scheme) == (
        "heartbeat.url: 'https://mail.example' is not a valid URL; the scheme must be tcp"
    )
    connection = await _run(db, create(tcp.id, {"url": "tcp://mail.example:25"}))
    assert connection.heartbeat == {"url": "tcp://mail.example:25"}


async def test_create_connection_with_unknown_ids(db: Database, ids: dict[str, int]) -> None:
    no_consumer = await _refused(
        db,
        lambda s: commands.create_connection(
            s, outbound=OUTBOUND, consumer_id=999, connector_id=ids["quickbooks"], name="x"
        ),
        NotFoundError,
    )
    no_connector = await _refused(
        db,
        lambda s: commands.create_connection(
            s, outbound=OUTBOUND, consumer_id=ids["acme"], connector_id=998, name="x"
        ),
        NotFoundError,
    )
    assert str(no_consumer) == "consumer 999 does not exist"
    assert str(no_connector) == "connector 998 does not exist"
    assert isinstance(no_connector, NotFoundError)
    assert (no_connector.kind, no_connector.identifier) == ("connector", 998)


async def test_update_connection_state_stamps_state_changed_at_only(
    db: Database, ids: dict[str, int]
) -> None:
    before = await _load(db, queries.connections_by_id, ids["acme_qb"])
    assert before is not None
    within = _since_now()

    updated = await _run(
        db,
        lambda s: commands.update_connection(
            s,
            ids["acme_qb"],
            outbound=OUTBOUND,
            state=ConnectionState.DISABLED,
            name="Acme QBO",
            failure_threshold=5,
        ),
    )

    assert updated == dataclasses.replace(
        before,
        state=ConnectionState.DISABLED,
        name="Acme QBO",
        failure_threshold=5,
        state_changed_at=updated.state_changed_at,
    )
    assert within(updated.state_changed_at)
    assert await _load(db, queries.connections_by_id, ids["acme_qb"]) == updated


async def test_update_connection_probe_settings_make_it_due_now(
    db: Database, ids: dict[str, int]
) -> None:
    before = await _load(db, queries.connections_by_id, ids["acme_qb"])
    assert before is not None
    within = _since_now()

    updated = await _run(
        db,
        lambda s: commands.update_connection(
            s,
            ids["acme_qb"],
            outbound=OUTBOUND,
            check_interval_seconds=120,
            heartbeat={"url": "https://acme.example/ping"},
            state=ConnectionState.ACTIVE,  # unchanged: no new state_changed_at
        ),
    )

    assert updated == dataclasses.replace(
        before,
        check_interval_seconds=120,
        heartbeat={"url": "https://acme.example/ping"},
        next_check_at=updated.next_check_at,
    )
    assert within(updated.next_check_at)


async def test_update_connection_to_inbound(db: Database, ids: dict[str, int]) -> None:
    async with db.sessions.begin() as session:
        await commands.update_connection(
            session,
            ids["acme_qb"],
            outbound=OUTBOUND,
            heartbeat={"url": "https://acme.example/ping"},
        )
    keeps_override = await _refused(
        db,
        lambda s: commands.update_connection(
            s, ids["acme_qb"], outbound=OUTBOUND, direction=Direction.INBOUND
        ),
    )
    assert str(keeps_override) == "heartbeat: inbound connections are not probed; remove it"

    start = datetime.now(UTC)
    updated = await _run(
        db,
        lambda s: commands.update_connection(
            s, ids["acme_qb"], outbound=OUTBOUND, direction=Direction.INBOUND, heartbeat={}
        ),
    )
    assert (updated.direction, updated.heartbeat) == (Direction.INBOUND, {})
    assert updated.next_check_at is not None
    assert updated.next_check_at >= start + timedelta(seconds=updated.check_interval_seconds)


async def test_update_connection_refuses(db: Database, ids: dict[str, int]) -> None:
    bare = await _run(
        db,
        lambda s: commands.create_connector(
            s, outbound=OUTBOUND, slug="bare", name="Bare", category="misc", heartbeat={}
        ),
    )
    cases: list[tuple[Command, type[StoreError], str]] = [
        (
            lambda s: commands.update_connection(
                s, ids["acme_qb"], outbound=OUTBOUND, name="Acme push"
            ),
            ValidationError,
            "name: 'Acme push' is already used by another connection of this consumer",
        ),
        (
            lambda s: commands.update_connection(
                s, ids["acme_qb"], outbound=OUTBOUND, connector_id=bare.id
            ),
            ValidationError,
            "heartbeat.url: is required for an outbound connection (connector 'bare' has no "
            "URL template)",
        ),
        (
            lambda s: commands.update_connection(
                s, ids["acme_qb"], outbound=OUTBOUND, check_interval_seconds=-5
            ),
            ValidationError,
            "check_interval_seconds: -5 is out of range; use 1..86400",
        ),
        (
            lambda s: commands.update_connection(
                s, ids["acme_qb"], outbound=OUTBOUND, connector_id=997
            ),
            NotFoundError,
            "connector 997 does not exist",
        ),
        (
            lambda s: commands.update_connection(s, 999, outbound=OUTBOUND, name="x"),
            NotFoundError,
            "connection 999 does not exist",
        ),
        (
            lambda s: commands.delete_connection(s, 999),
            NotFoundError,
            "connection 999 does not exist",
        ),
    ]
    for command, error_type, message in cases:
        assert str(await _refused(db, command, error_type)) == message


async def test_delete_connection_cascades_to_uses_and_checks(
    db: Database, ids: dict[str, int]
) -> None:
    async with db.sessions.begin() as session:
        session.add(CheckRow(connection_id=ids["acme_qb"], checked_at=AT, success=True))
    before = await _load(db, queries.connections_by_id, ids["acme_qb"])

    deleted = await _run(db, lambda s: commands.delete_connection(s, ids["acme_qb"]))

    assert deleted == before
    after = await _snapshot(db)
    assert after["uses"] == after["checks"] == []
    assert [row[0] for row in after["connections"]] == [ids["acme_push"]]


# --- credentials -------------------------------------------------------------------------------


async def test_set_credentials_encrypts_and_drops_the_catalog_reference(
    db: Database, ids: dict[str, int]
) -> None:
    ring = KeyRing([generate_key()])
    async with db.sessions.begin() as session:
        row = await session.get(ConnectionRow, ids["acme_qb"])
        assert row is not None
        row.credentials_ref = {"kind": "bearer", "token_env": "ACME_QB_TOKEN"}
    before = await _load(db, queries.connections_by_id, ids["acme_qb"])
    assert before is not None
    secret = {"kind": "bearer", "token": CANARY}

    updated = await _run(
        db,
        lambda s: commands.set_connection_credentials(
            s, ids["acme_qb"], secret=secret, key_ring=ring
        ),
    )

    assert updated == dataclasses.replace(
        before, has_credentials=True, next_check_at=updated.next_check_at
    )
    async with db.sessions() as session:
        row = await session.get(ConnectionRow, ids["acme_qb"])
        assert row is not None and row.credentials_ciphertext is not None
        assert row.credentials_ref is None
        assert CANARY.encode() not in row.credentials_ciphertext
        assert ring.decrypt(row.credentials_ciphertext) == secret

    cleared = await _run(
        db,
        lambda s: commands.set_connection_credentials(
            s, ids["acme_qb"], secret=None, key_ring=ring
        ),
    )
    assert cleared.has_credentials is False
    async with db.sessions() as session:
        row = await session.get(ConnectionRow, ids["acme_qb"])
        assert row is not None
        assert (row.credentials_ref, row.credentials_ciphertext) == (None, None)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ([CANARY], "credentials: expected a mapping, got list"),
        (
            {"kind": CANARY, "token": CANARY},
            "credentials.kind: must be one of bearer, basic, header, query, oauth2",
        ),
        (
            {"token": CANARY},
            "credentials.kind: must be one of bearer, basic, header, query, oauth2",
        ),
        ({"kind": "bearer"}, "credentials.token: bearer credentials need a non-empty string"),
        (
            {"kind": "bearer", "token": ""},
            "credentials.token: bearer credentials need a non-empty string",
        ),
        (
            {"kind": "bearer", "token": CANARY, "password": CANARY},
            "credentials.password: is not a field of bearer credentials; expected token",
        ),
        (
            {"kind": "bearer", "token": CANARY + "\n"},
            "credentials.token: must not contain control characters or newlines",
        ),
        (
            {"kind": "basic", "username": "me", "password": 7},
            "credentials.password: basic credentials need a non-empty string",
        ),
        (
            {"kind": "basic", "username": CANARY + ":x", "password": CANARY},
            "credentials.username: must not contain ':' (basic auth joins user:password)",
        ),
        (
            {"kind": "header", "name": CANARY + " x", "value": CANARY},
            "credentials.name: is not a valid HTTP header name",
        ),
        (
            {"kind": "query", "name": "api_key"},
            "credentials.value: query credentials need a non-empty string",
        ),
    ],
)
async def test_set_credentials_refuses_bad_shapes_without_echoing_them(
    db: Database, ids: dict[str, int], secret: Any, message: str
) -> None:
    ring = KeyRing([generate_key()])
    error = await _refused(
        db,
        lambda s: commands.set_connection_credentials(
            s, ids["acme_qb"], secret=secret, key_ring=ring
        ),
    )
    assert str(error) == message
    assert isinstance(error, ValidationError)
    assert error.value == commands.REDACTED
    assert CANARY not in f"{error} {error!r} {error.args} {error.field} {error.problem}"


async def test_set_credentials_on_unknown_connection(db: Database) -> None:
    ring = KeyRing([generate_key()])
    error = await _refused(
        db,
        lambda s: commands.set_connection_credentials(
            s, 999, secret={"kind": "bearer", "token": CANARY}, key_ring=ring
        ),
        NotFoundError,
    )
    assert str(error) == "connection 999 does not exist"


# --- inbound heartbeats ------------------------------------------------------------------------


async def test_record_inbound_heartbeat(db: Database, ids: dict[str, int]) -> None:
    before = await _load(db, queries.connections_by_id, ids["acme_push"])
    assert before is not None
    assert before.status is ConnectionStatus.CONNECTION_FAILURE

    at = datetime(2026, 11, 2, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    updated = await _run(
        db, lambda s: commands.record_inbound_heartbeat(s, ids["acme_push"], at=at)
    )

    assert updated == dataclasses.replace(
        before,
        status=ConnectionStatus.CONNECTED,
        last_checked_at=at,
        last_success_at=at,
        failure_reason=None,
        last_error=None,
        consecutive_failures=0,
        next_check_at=at + timedelta(seconds=3600),
    )
    assert await _load(db, queries.connections_by_id, ids["acme_push"]) == updated
    async with db.sessions() as session:
        checks = await queries.list_checks(session, ids["acme_push"], PageRequest())
    assert [(c.checked_at, c.success, c.failure_reason) for c in checks.items] == [(at, True, None)]


async def test_record_inbound_heartbeat_refused_for_outbound(
    db: Database, ids: dict[str, int]
) -> None:
    error = await _refused(
        db,
        lambda s: commands.record_inbound_heartbeat(s, ids["acme_qb"], at=AT),
        ConflictError,
    )
    assert str(error) == f"connection {ids['acme_qb']} is outbound; it is probed, not pushed to"
    naive = await _refused(
        db,
        lambda s: commands.record_inbound_heartbeat(
            s, ids["acme_push"], at=datetime(2026, 11, 2, 8, 30)
        ),
    )
    assert str(naive) == "at: 2026-11-02T08:30:00 has no time zone; pass an aware datetime"
    missing = await _refused(
        db, lambda s: commands.record_inbound_heartbeat(s, 999, at=AT), NotFoundError
    )
    assert str(missing) == "connection 999 does not exist"


# --- uses --------------------------------------------------------------------------------------


async def test_create_update_delete_use(db: Database, ids: dict[str, int]) -> None:
    use = await _run(
        db,
        lambda s: commands.create_use(
            s, connection_id=ids["acme_qb"], kind="livesync", name="Docs"
        ),
    )
    assert use == domain.Use(
        id=use.id,
        connection_id=ids["acme_qb"],
        kind="livesync",
        kind_label="Cloud files",
        name="Docs",
        status=UseStatus.UNKNOWN,
        last_run_at=None,
        last_error=None,
    )
    assert await _load(db, queries.uses_by_id, use.id) == use

    # Same name under another kind is another use.
    renamed = await _run(
        db, lambda s: commands.update_use(s, use.id, kind="hypersync", name="Bills")
    )
    assert renamed == dataclasses.replace(
        use, kind="hypersync", kind_label="Hypersyncs", name="Bills"
    )
    assert await _load(db, queries.uses_by_id, use.id) == renamed

    deleted = await _run(db, lambda s: commands.delete_use(s, use.id))
    assert deleted == renamed
    assert await _load(db, queries.uses_by_id, use.id) is None


async def test_use_commands_refuse(db: Database, ids: dict[str, int]) -> None:
    other = await _run(
        db,
        lambda s: commands.create_use(s, connection_id=ids["acme_qb"], kind="livesync", name="Inv"),
    )
    cases: list[tuple[Command, type[StoreError], str]] = [
        (
            lambda s: commands.create_use(
                s, connection_id=ids["acme_qb"], kind="hypersinc", name="x"
            ),
            ValidationError,
            "kind: 'hypersinc' is not a use kind; known kinds: hypersync, livesync, "
            "task_integration",
        ),
        (
            lambda s: commands.create_use(
                s, connection_id=ids["acme_qb"], kind="hypersync", name="Invoices"
            ),
            ValidationError,
            "name: 'Invoices' is already used by another hypersync use of this connection",
        ),
        (
            lambda s: commands.create_use(s, connection_id=999, kind="hypersync", name="x"),
            NotFoundError,
            "connection 999 does not exist",
        ),
        (
            lambda s: commands.update_use(s, other.id, kind="hypersync", name="Invoices"),
            ValidationError,
            "name: 'Invoices' is already used by another hypersync use of this connection",
        ),
        (
            lambda s: commands.update_use(s, other.id, kind="nope"),
            ValidationError,
            "kind: 'nope' is not a use kind; known kinds: hypersync, livesync, task_integration",
        ),
        (
            lambda s: commands.update_use(s, other.id, name=""),
            ValidationError,
            "name: must not be empty",
        ),
        (lambda s: commands.update_use(s, 999, name="x"), NotFoundError, "use 999 does not exist"),
        (lambda s: commands.delete_use(s, 999), NotFoundError, "use 999 does not exist"),
        (
            lambda s: commands.report_use_run(s, 999, success=True, error=None, at=AT),
            NotFoundError,
            "use 999 does not exist",
        ),
    ]
    for command, error_type, message in cases:
        assert str(await _refused(db, command, error_type)) == message


async def test_report_use_run_failure_then_success(db: Database, ids: dict[str, int]) -> None:
    before = await _load(db, queries.uses_by_id, ids["invoices"])
    assert before is not None

    failed = await _run(
        db,
        lambda s: commands.report_use_run(
            s, ids["invoices"], success=False, error="E" * 1500, at=AT
        ),
    )
    assert failed == dataclasses.replace(
        before, status=UseStatus.FAILED, last_run_at=AT, last_error="E" * 1000
    )
    assert await _load(db, queries.uses_by_id, ids["invoices"]) == failed

    later = AT + timedelta(hours=1)
    healthy = await _run(
        db,
        lambda s: commands.report_use_run(
            s, ids["invoices"], success=True, error="ignored", at=later
        ),
    )
    assert healthy == dataclasses.replace(
        before, status=UseStatus.HEALTHY, last_run_at=later, last_error=None
    )
    assert await _load(db, queries.uses_by_id, ids["invoices"]) == healthy


# --- syncs -------------------------------------------------------------------------------------


async def test_create_update_delete_sync(db: Database, ids: dict[str, int]) -> None:
    sync = await _run(
        db,
        lambda s: commands.create_sync(
            s, name="Ledger", required_connector_ids=[ids["xero"], ids["quickbooks"]]
        ),
    )
    assert sync == domain.Sync(id=sync.id, name="Ledger")

    async def required() -> tuple[int, ...]:
        async with db.sessions() as session:
            return (await queries.required_connector_ids(session, [sync.id])).get(sync.id, ())

    assert await required() == (ids["xero"], ids["quickbooks"])

    updated = await _run(
        db,
        lambda s: commands.update_sync(
            s, sync.id, name="General ledger", required_connector_ids=[ids["quickbooks"]]
        ),
    )
    assert updated == domain.Sync(id=sync.id, name="General ledger")
    assert await required() == (ids["quickbooks"],)
    reordered = await _run(
        db,
        lambda s: commands.update_sync(
            s, sync.id, required_connector_ids=[ids["xero"], ids["quickbooks"]]
        ),
    )
    assert reordered == updated
    assert await required() == (ids["xero"], ids["quickbooks"])

    await _run(
        db, lambda s: commands.create_sync_activation(s, sync_id=sync.id, consumer_id=ids["acme"])
    )
    assert await _run(db, lambda s: commands.delete_sync(s, sync.id)) == updated
    after = await _snapshot(db)
    assert [row[0] for row in after["syncs"]] == [ids["sync"]]
    assert after["sync_activations"] == after["sync_activation_steps"] == []
    assert [row[:2] for row in after["sync_requirements"]] == [(ids["sync"], ids["quickbooks"])]


async def test_sync_commands_refuse(db: Database, ids: dict[str, int]) -> None:
    qb = ids["quickbooks"]
    cases: list[tuple[Command, type[StoreError], str]] = [
        (
            lambda s: commands.create_sync(s, name="X", required_connector_ids=[qb, qb]),
            ValidationError,
            f"required_connector_ids: connector {qb} is listed twice",
        ),
        (
            lambda s: commands.create_sync(s, name="X", required_connector_ids=[qb, 996]),
            NotFoundError,
            "connector 996 does not exist",
        ),
        (
            lambda s: commands.create_sync(
                s, name="Invoices to accounting", required_connector_ids=[]
            ),
            ValidationError,
            "name: 'Invoices to accounting' is already used by another sync",
        ),
        (
            lambda s: commands.update_sync(s, ids["sync"], required_connector_ids=[995]),
            NotFoundError,
            "connector 995 does not exist",
        ),
        (
            lambda s: commands.update_sync(s, ids["sync"], name=" "),
            ValidationError,
            "name: must not be empty",
        ),
        (
            lambda s: commands.update_sync(s, 999, name="x"),
            NotFoundError,
            "sync 999 does not exist",
        ),
        (lambda s: commands.delete_sync(s, 999), NotFoundError, "sync 999 does not exist"),
    ]
    for command, error_type, message in cases:
        assert str(await _refused(db, command, error_type)) == message


# --- sync activations --------------------------------------------------------------------------


async def test_sync_activation_steps_drive_the_issue(db: Database, ids: dict[str, int]) -> None:
    within = _since_now()
    activation = await _run(
        db,
        lambda s: commands.create_sync_activation(s, sync_id=ids["sync"], consumer_id=ids["acme"]),
    )
    assert activation == domain.SyncActivation(
        id=activation.id,
        sync_id=ids["sync"],
        consumer_id=ids["acme"],
        steps=(
            StepState(SyncStep.CONNECTION, False),
            StepState(SyncStep.MAPPING, False),
            StepState(SyncStep.CONFIGURATION, False),
        ),
        updated_at=activation.updated_at,
    )
    assert within(activation.updated_at)
    assert await _load(db, queries.sync_activations_by_id, activation.id) == activation

    async def state() -> tuple[bool, Issue | None]:
        async with db.sessions() as session:
            return (await queries.sync_activations_state(session, [activation.id]))[activation.id]

    assert await state() == (False, Issue(IssueCode.NO_CONNECTION))
    assert await completed_steps(db) == {activation.id: 0}

    async def update(steps: dict[SyncStep, tuple[bool, str | None]]) -> domain.SyncActivation:
        return await _run(
            db, lambda s: commands.update_sync_activation(s, activation.id, steps=steps)
        )

    connected = await update({SyncStep.CONNECTION: (True, None)})
    assert await state() == (False, Issue(IssueCode.MAPPING_INCOMPLETE))
    assert await completed_steps(db) == {activation.id: 0b001}
    mapped = await update(
        {SyncStep.MAPPING: (True, " 12 fields mapped "), SyncStep.CONFIGURATION: (False, "todo")}
    )
    assert mapped == dataclasses.replace(
        activation,
        steps=(
            StepState(SyncStep.CONNECTION, True),
            StepState(SyncStep.MAPPING, True, "12 fields mapped"),
            StepState(SyncStep.CONFIGURATION, False, "todo"),
        ),
        updated_at=mapped.updated_at,
    )
    assert connected.updated_at <= mapped.updated_at
    assert await _load(db, queries.sync_activations_by_id, activation.id) == mapped
    assert await state() == (False, Issue(IssueCode.CONFIGURATION_INCOMPLETE))
    assert await completed_steps(db) == {activation.id: 0b011}
    await update({SyncStep.CONFIGURATION: (True, None)})
    assert await state() == (True, None)
    assert await completed_steps(db) == {activation.id: 0b111}
    await update({SyncStep.CONNECTION: (False, "re-authorise")})
    assert await state() == (False, Issue(IssueCode.NO_CONNECTION))
    assert await completed_steps(db) == {activation.id: 0b110}

    deleted = await _run(db, lambda s: commands.delete_sync_activation(s, activation.id))
    assert deleted.id == activation.id
    after = await _snapshot(db)
    assert after["sync_activations"] == after["sync_activation_steps"] == []


async def test_update_sync_activation_adds_missing_step_rows(
    db: Database, ids: dict[str, int]
) -> None:
    activation = await _run(
        db,
        lambda s: commands.create_sync_activation(s, sync_id=ids["sync"], consumer_id=ids["acme"]),
    )
    async with db.sessions.begin() as session:
        row = await session.get(SyncActivationStepRow, (activation.id, SyncStep.MAPPING))
        await session.delete(row)

    updated = await _run(
        db,
        lambda s: commands.update_sync_activation(
            s, activation.id, steps={SyncStep.MAPPING: (True, None)}
        ),
    )
    assert updated.steps[1] == StepState(SyncStep.MAPPING, True)
    assert await completed_steps(db) == {activation.id: 0b010}


async def test_sync_activation_commands_refuse(db: Database, ids: dict[str, int]) -> None:
    existing = await _run(
        db,
        lambda s: commands.create_sync_activation(s, sync_id=ids["sync"], consumer_id=ids["acme"]),
    )
    cases: list[tuple[Command, type[StoreError], str]] = [
        (
            lambda s: commands.create_sync_activation(
                s, sync_id=ids["sync"], consumer_id=ids["acme"]
            ),
            ValidationError,
            "consumer_id: consumer 'acme' already has an activation of sync "
            f"'Invoices to accounting' (activation {existing.id})",
        ),
        (
            lambda s: commands.create_sync_activation(s, sync_id=999, consumer_id=ids["acme"]),
            NotFoundError,
            "sync 999 does not exist",
        ),
        (
            lambda s: commands.create_sync_activation(s, sync_id=ids["sync"], consumer_id=998),
            NotFoundError,
            "consumer 998 does not exist",
        ),
        (
            lambda s: commands.update_sync_activation(
                s, existing.id, steps={SyncStep.MAPPING: (True, "d" * 1001)}
            ),
            ValidationError,
            "steps.MAPPING.detail: is 1001 characters long; use at most 1000",
        ),
        (
            lambda s: commands.update_sync_activation(s, 999, steps={}),
            NotFoundError,
            "sync activation 999 does not exist",
        ),
        (
            lambda s: commands.delete_sync_activation(s, 999),
            NotFoundError,
            "sync activation 999 does not exist",
        ),
    ]
    for command, error_type, message in cases:
        assert str(await _refused(db, command, error_type)) == message


# --- races and the caller's transaction ------------------------------------------------------


async def test_refused_command_leaves_the_callers_earlier_work_intact(
    db: Database, ids: dict[str, int]
) -> None:
    async with db.sessions.begin() as session:
        initech = await commands.create_consumer(session, external_id="initech", name="Initech")
        with pytest.raises(ValidationError):
            await commands.create_consumer(session, external_id="acme", name="Acme again")
        hooli = await commands.create_consumer(session, external_id="hooli", name="Hooli")

    async with db.sessions() as session:
        stored = await queries.consumers_by_id(session, [initech.id, hooli.id])
    assert stored == {initech.id: initech, hooli.id: hooli}


async def test_unique_race_lost_at_flush_gives_the_checks_message(
    db: Database, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another transaction took the key between the check and the flush: the database refuses,
    the SAVEPOINT rolls back, and the check run again names the problem."""
    real_check = commands.base.ensure_free
    calls: list[str] = []

    async def misses_once(*args: Any, **kwargs: Any) -> None:
        calls.append(kwargs["field"])
        if len(calls) > 1:
            await real_check(*args, **kwargs)

    # Where each command looks it up: the module that defines the command.
    monkeypatch.setattr(commands.consumers, "ensure_free", misses_once)
    monkeypatch.setattr(commands.connections, "ensure_free", misses_once)
    insert = await _refused(
        db, lambda s: commands.create_consumer(s, external_id="acme", name="Acme again")
    )
    assert str(insert) == "external_id: 'acme' is already used by another consumer"

    calls.clear()
    async with db.sessions.begin() as session:
        with pytest.raises(ValidationError) as info:
            await commands.update_connection(
                session, ids["acme_qb"], outbound=OUTBOUND, name="Acme push"
            )
        # The row the failed UPDATE touched is usable again, with its stored values.
        unchanged = await commands.update_connection(
            session, ids["acme_qb"], outbound=OUTBOUND, failure_threshold=2
        )
    assert str(info.value) == (
        "name: 'Acme push' is already used by another connection of this consumer"
    )
    assert unchanged.name == "Acme QuickBooks"
    assert calls == ["name", "name"]


# --- params and OAuth2 -------------------------------------------------------------------------


async def test_connection_params_fill_the_template_and_are_checked_as_it_will_be_probed(
    db: Database, ids: dict[str, int]
) -> None:
    template = {"kind": "http", "url": "https://{params.subdomain}.tickets.example/api/me"}
    tickets = await _run(
        db,
        lambda s: commands.create_connector(
            s,
            slug="tickets",
            name="Tickets",
            category="ticketing",
            heartbeat=template,
            outbound=OUTBOUND,
        ),
    )
    missing = await _refused(
        db,
        lambda s: commands.create_connection(
            s,
            consumer_id=ids["acme"],
            connector_id=tickets.id,
            name="Acme tickets",
            outbound=OUTBOUND,
        ),
    )
    assert str(missing) == ("params.subdomain: is required: the heartbeat uses {params.subdomain}")
    blocked = await _refused(
        db,
        lambda s: commands.create_connection(
            s,
            consumer_id=ids["acme"],
            connector_id=tickets.id,
            name="Acme tickets",
            params={"subdomain": "127.0.0.1"},
            heartbeat={"url": "http://{params.subdomain}:9/"},
            outbound=OUTBOUND,
        ),
    )
    # The URL the params make is judged, not the template's.
    assert str(blocked) == (
        "heartbeat.url: refused 127.0.0.1 (a loopback address); if it is a trusted internal "
        "target, add it to HEALTHGRAPH_ALLOW_TARGETS"
    )
    made = await _run(
        db,
        lambda s: commands.create_connection(
            s,
            consumer_id=ids["acme"],
            connector_id=tickets.id,
            name="Acme tickets",
            params={"subdomain": "acme"},
            outbound=OUTBOUND,
        ),
    )
    assert made.params == {"subdomain": "acme"}
    # New params are new probe settings: checked at once.
    async with db.sessions.begin() as session:
        row = await session.get(ConnectionRow, made.id)
        assert row is not None
        row.next_check_at = datetime.now(UTC) + timedelta(days=1)
    changed = await _run(
        db,
        lambda s: commands.update_connection(
            s, made.id, params={"subdomain": "acme-eu"}, outbound=OUTBOUND
        ),
    )
    assert changed.params == {"subdomain": "acme-eu"}
    assert changed.next_check_at is not None and changed.next_check_at <= datetime.now(UTC)


async def test_oauth2_apps_and_credentials_are_refused_when_they_cannot_work(
    db: Database, ids: dict[str, int]
) -> None:
    ring = KeyRing([generate_key()])
    no_app = await _refused(
        db,
        lambda s: commands.set_connection_credentials(
            s, ids["acme_qb"], secret={"kind": "oauth2", "refresh_token": CANARY}, key_ring=ring
        ),
    )
    assert str(no_app) == (
        "credentials.kind: connector 'quickbooks' has no OAuth2 app; give it one first "
        "(oauth2: token_url, client_id, client secret)"
    )
    app = {"token_url": "https://oauth.example/token", "client_id": "app"}
    for bad, message in (
        (
            {**app, "auth_method": "digest"},
            "oauth2.auth_method: must be one of client_secret_basic, client_secret_post",
        ),
        ({"client_id": "app"}, "oauth2.token_url: is required: the token endpoint"),
        (
            {**app, "token_url": "http://169.254.169.254/token"},
            "oauth2.token_url: refused 169.254.169.254 (the cloud metadata address (link-local)); if it is a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS",
        ),
        (
            {**app, "scopes": "read write"},
            "oauth2.scopes: must be a list of at most 50 scope names",
        ),
    ):
        error = await _refused(
            db,
            lambda s, bad=bad: commands.set_connector_oauth2(
                s,
                ids["quickbooks"],
                app=bad,
                client_secret=CANARY,
                key_ring=ring,
                outbound=OUTBOUND,
            ),
        )
        assert str(error) == message
        assert CANARY not in str(error)
    no_ring = await _refused(
        db,
        lambda s: commands.set_connector_oauth2(
            s, ids["quickbooks"], app=app, client_secret=CANARY, key_ring=None, outbound=OUTBOUND
        ),
    )
    assert str(no_ring) == (
        "oauth2.client_secret: cannot be stored: no credential key is configured "
        "(HEALTHGRAPH_SECRET_KEYS)"
    )
    assert await _run(
        db,
        lambda s: commands.set_connector_oauth2(
            s, ids["quickbooks"], app=app, client_secret=CANARY, key_ring=ring, outbound=OUTBOUND
        ),
    )
    await _run(
        db,
        lambda s: commands.set_connection_credentials(
            s, ids["acme_qb"], secret={"kind": "oauth2", "refresh_token": CANARY}, key_ring=ring
        ),
    )
    in_use = await _refused(
        db,
        lambda s: commands.set_connector_oauth2(
            s, ids["quickbooks"], app=None, key_ring=ring, outbound=OUTBOUND
        ),
        ConflictError,
    )
    assert str(in_use) == (
        "connector 'quickbooks' has 1 connection with OAuth2 credentials; set them other "
        "credentials first"
    )
    # Nothing secret is readable back: the record says only that there is a secret.
    connector = (await _run(db, lambda s: queries.connectors_by_id(s, [ids["quickbooks"]])))[
        ids["quickbooks"]
    ]
    assert (connector.oauth2, connector.has_client_secret) == (
        {**app, "scopes": [], "auth_method": "client_secret_basic"},
        True,
    )
    assert CANARY not in repr(connector)
