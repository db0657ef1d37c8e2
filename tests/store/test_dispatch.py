"""The outbox and the dispatcher, on both backends: one event per transition, written with
the change; whom each is told to; outages told once instead of once per customer; mutes that
silence and, when they end, tell what changed meanwhile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from healthgraph.database import Database
from store import commands
from store.commands.mutes import Window, mute, set_maintenance_windows, unmute
from store.commands.webhooks import create_webhook_endpoint
from store.crypto import KeyRing, generate_key
from store.deliveries import prune_history
from store.dispatch import dispatch_events
from store.domain import (
    CheckOutcome,
    ConnectionState,
    ConnectionStatus,
    DeliveryState,
    FailureReason,
    MuteScope,
    UseStatus,
)
from store.models import ConnectionRow, ConnectorOutageRow, WebhookDeliveryRow, WebhookEventRow
from store.outages import OutageRules
from store.scheduling import record_unclaimed_outcomes
from tests.factories import GraphFactory
from tests.outbound import LOOPBACK_OUTBOUND

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RULES = OutageRules(min_connections=5, ratio=0.5, hold_seconds=30)


def no_jitter(_interval: int) -> float:
    return 0.0


def ok(at: datetime) -> CheckOutcome:
    return CheckOutcome(success=True, checked_at=at, latency_ms=5.0)


def failed(at: datetime, reason: FailureReason = FailureReason.TIMEOUT) -> CheckOutcome:
    return CheckOutcome(success=False, checked_at=at, failure_reason=reason, error="no answer")


@dataclass
class World:
    db: Database
    ring: KeyRing
    connector_ids: dict[str, int]
    consumer_ids: dict[str, int]
    connection_ids: dict[str, int]

    async def check(self, outcomes: Sequence[tuple[str, CheckOutcome]]) -> None:
        async with self.db.sessions.begin() as session:
            await record_unclaimed_outcomes(
                session,
                outcomes=[(self.connection_ids[name], outcome) for name, outcome in outcomes],
                jitter=no_jitter,
            )

    async def dispatch(self, now: datetime, rules: OutageRules = RULES) -> Any:
        async with self.db.sessions.begin() as session:
            return await dispatch_events(session, now=now, rules=rules)

    async def endpoint(self, consumer: str | None = None, events: list[str] | None = None) -> int:
        async with self.db.sessions.begin() as session:
            endpoint, secret = await create_webhook_endpoint(
                session,
                url="http://127.0.0.1:9/hooks",
                events=events,
                description=None,
                consumer_id=None if consumer is None else self.consumer_ids[consumer],
                outbound=LOOPBACK_OUTBOUND,
                key_ring=self.ring,
            )
        assert secret.startswith("whsec_")
        return endpoint.id

    async def told(self) -> list[tuple[int, str, str | None]]:
        """(endpoint, event type, connection name) of every delivery, in order."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(WebhookDeliveryRow.endpoint_id, WebhookEventRow.type, WebhookEventRow.data)
                .join(WebhookEventRow, WebhookEventRow.id == WebhookDeliveryRow.event_id)
                .order_by(WebhookDeliveryRow.id)
            )
            return [
                (endpoint, kind, data.get("connection", {}).get("name"))
                for endpoint, kind, data in rows
            ]

    async def events(self) -> list[tuple[str, str | None, str | None]]:
        """(type, connection name, why it was not told) of every event, in order."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(
                    WebhookEventRow.type, WebhookEventRow.data, WebhookEventRow.suppressed_reason
                ).order_by(WebhookEventRow.id)
            )
            return [
                (kind, data.get("connection", {}).get("name"), reason)
                for kind, data, reason in rows
            ]


@pytest.fixture
async def world(db: Database) -> World:
    """Connector `books` with six connections (b0..b5, consumers c0..c5), connector `drive`
    with one (d0, consumer c0), every one ACTIVE, CONNECTED, checked every 60 s."""
    async with db.sessions.begin() as session:
        factory = GraphFactory(session)
        books = await factory.connector("books")
        drive = await factory.connector("drive", category="storage")
        consumers = [await factory.consumer(f"c{n}") for n in range(6)]
        connections = {}
        for n, consumer in enumerate(consumers):
            row = await factory.connection(consumer, books, name=f"b{n}")
            row.check_interval_seconds = 60
            connections[f"b{n}"] = row
        connections["d0"] = await factory.connection(consumers[0], drive, name="d0")
        connections["d0"].check_interval_seconds = 60
        await session.flush()
        ids = {name: row.id for name, row in connections.items()}
        return World(
            db,
            KeyRing([generate_key()]),
            {"books": books.id, "drive": drive.id},
            {consumer.external_id: consumer.id for consumer in consumers},
            ids,
        )


async def test_a_failure_is_held_then_told_once_to_every_endpoint_that_takes_it(
    world: World,
) -> None:
    everything = await world.endpoint()
    only_recoveries = await world.endpoint(events=["connection.recovered"])
    c1_only = await world.endpoint(consumer="c1")
    c0_only = await world.endpoint(consumer="c0")
    await world.check([("b0", failed(T0))])
    assert await world.events() == [("connection.failed", "b0", None)]

    # Held for up to the hold (30 s here): an outage showing meanwhile would silence it.
    report = await world.dispatch(T0 + timedelta(seconds=29))
    assert (report.waiting, await world.told()) == (1, [])
    await world.dispatch(T0 + timedelta(seconds=30))
    assert await world.told() == [
        (everything, "connection.failed", "b0"),
        (c0_only, "connection.failed", "b0"),
    ]
    # Still down on the next checks: nothing more.
    await world.check([("b0", failed(T0 + timedelta(seconds=60)))])
    await world.dispatch(T0 + timedelta(seconds=200))
    assert len(await world.told()) == 2

    await world.check([("b0", ok(T0 + timedelta(seconds=120)))])
    await world.dispatch(T0 + timedelta(seconds=300))
    assert (await world.told())[2:] == [
        (everything, "connection.recovered", "b0"),
        (only_recoveries, "connection.recovered", "b0"),
        (c0_only, "connection.recovered", "b0"),
    ]
    assert c1_only not in {endpoint for endpoint, _, _ in await world.told()}


async def test_flapping_inside_the_failure_threshold_tells_nothing(world: World) -> None:
    await world.endpoint()
    async with world.db.sessions.begin() as session:
        await commands.update_connection(
            session, world.connection_ids["b0"], failure_threshold=3, outbound=LOOPBACK_OUTBOUND
        )
    for n, outcome in enumerate([failed, failed, ok, failed, failed, ok]):
        await world.check([("b0", outcome(T0 + timedelta(seconds=n)))])
    await world.dispatch(T0 + timedelta(hours=1))
    assert (await world.events(), await world.told()) == ([], [])


async def test_an_auth_failure_is_told_at_once_and_stands_for_the_failure(world: World) -> None:
    endpoint = await world.endpoint()
    await world.check([("b0", failed(T0, FailureReason.AUTH))])
    await world.dispatch(T0 + timedelta(seconds=1))
    assert await world.told() == [(endpoint, "connection.auth_failed", "b0")]
    async with world.db.sessions() as session:
        event = await session.scalar(select(WebhookEventRow))
        assert event is not None
        assert event.data["connection"] == {
            "id": world.connection_ids["b0"],
            "name": "b0",
            "direction": "OUTBOUND",
            "state": "FAILED",
            "status": "CONNECTION_FAILURE",
            "failure_reason": "AUTH",
            "last_error": "no answer",
            "last_checked_at": "2026-12-01T09:00:00Z",
            "check_interval_seconds": 60,
        }
        assert event.data["connector"] == {
            "id": world.connector_ids["books"],
            "slug": "books",
            "name": "Books",
        }
        assert event.data["consumer"] == {
            "id": world.consumer_ids["c0"],
            "external_id": "c0",
            "name": "C0",
            "email": None,
        }


async def test_an_outage_is_told_once_and_silences_its_connections(world: World) -> None:
    endpoint = await world.endpoint()
    # Five of six books connections time out at once; one of drive, and one of books fails
    # its own credentials: those two are not the provider's outage.
    await world.check(
        [(f"b{n}", failed(T0 + timedelta(seconds=n), FailureReason.TIMEOUT)) for n in range(5)]
        + [("d0", failed(T0, FailureReason.HTTP_STATUS))]
    )
    report = await world.dispatch(T0 + timedelta(seconds=6))
    assert report.outages_started == [world.connector_ids["books"]]
    await world.check([("b5", failed(T0 + timedelta(seconds=7), FailureReason.AUTH))])
    await world.dispatch(T0 + timedelta(seconds=90))
    assert await world.told() == [
        (endpoint, "connector.outage_started", None),
        (endpoint, "connection.failed", "d0"),  # in the order they happened
        (endpoint, "connection.auth_failed", "b5"),
    ]
    assert [reason for _, name, reason in await world.events() if name and name < "b5"] == [
        "outage"
    ] * 5
    async with world.db.sessions() as session:
        outage = await session.scalar(select(ConnectorOutageRow))
        assert outage is not None
        assert (outage.failing_connections, outage.total_connections, outage.reasons) == (
            5,
            5,  # b5 is FAILED now: no longer among the ACTIVE ones
            {"TIMEOUT": 5},
        )

    # Three recover: 2 of 5 failing is under half; the two still down are told now.
    await world.check([(f"b{n}", ok(T0 + timedelta(seconds=100))) for n in range(3)])
    report = await world.dispatch(T0 + timedelta(seconds=101))
    assert report.outages_ended == [world.connector_ids["books"]]
    assert (await world.told())[3:] == [
        (endpoint, "connector.outage_ended", None),
        (endpoint, "connection.failed", "b3"),
        (endpoint, "connection.failed", "b4"),
    ]
    # The recoveries that came with the end were never failures anyone was told of.
    await world.dispatch(T0 + timedelta(seconds=400))
    assert len(await world.told()) == 6


async def test_a_failure_told_before_the_outage_showed_is_recovered_after_it(
    world: World,
) -> None:
    endpoint = await world.endpoint()
    await world.check([("b0", failed(T0))])
    await world.dispatch(T0 + timedelta(seconds=31))  # told: no outage yet
    await world.check([(f"b{n}", failed(T0 + timedelta(seconds=40))) for n in range(1, 6)])
    await world.dispatch(T0 + timedelta(seconds=41))
    await world.check([(f"b{n}", ok(T0 + timedelta(seconds=100))) for n in range(6)])
    await world.dispatch(T0 + timedelta(seconds=101))
    await world.dispatch(T0 + timedelta(seconds=300))
    assert await world.told() == [
        (endpoint, "connection.failed", "b0"),
        (endpoint, "connector.outage_started", None),
        (endpoint, "connector.outage_ended", None),
        (endpoint, "connection.recovered", "b0"),
    ]


async def test_fewer_than_the_minimum_is_no_outage(world: World) -> None:
    endpoint = await world.endpoint()
    rules = OutageRules(min_connections=7, ratio=0.5, hold_seconds=0)
    await world.check([(f"b{n}", failed(T0)) for n in range(6)])
    report = await world.dispatch(T0 + timedelta(seconds=1), rules)
    assert report.outages_started == []
    assert [kind for _, kind, _ in await world.told()] == ["connection.failed"] * 6
    assert {e for e, _, _ in await world.told()} == {endpoint}


async def test_a_mute_silences_and_its_end_tells_what_changed_meanwhile(world: World) -> None:
    endpoint = await world.endpoint()
    async with world.db.sessions.begin() as session:
        await mute(
            session,
            MuteScope.CONSUMER,
            world.consumer_ids["c0"],
            until=T0 + timedelta(minutes=10),
            reason="migrating their books",
            now=T0 - timedelta(seconds=1),
        )
    await world.check([("b0", failed(T0)), ("d0", failed(T0)), ("b1", failed(T0))])
    await world.dispatch(T0 + timedelta(seconds=60))
    assert await world.told() == [(endpoint, "connection.failed", "b1")]
    assert [reason for _, _, reason in await world.events()] == ["muted", None, "muted"]

    await world.check([("d0", ok(T0 + timedelta(minutes=5)))])  # recovered while muted
    await world.dispatch(T0 + timedelta(minutes=10))  # the mute ends: b0 still fails
    assert (await world.told())[1:] == [(endpoint, "connection.failed", "b0")]


async def test_unmute_ends_the_mute_at_once(world: World) -> None:
    endpoint = await world.endpoint()
    connection_id = world.connection_ids["b0"]
    async with world.db.sessions.begin() as session:
        await mute(
            session,
            MuteScope.CONNECTION,
            connection_id,
            until=T0 + timedelta(days=1),
            reason="x",
            now=T0,
        )
    await world.check([("b0", failed(T0 + timedelta(seconds=1)))])
    await world.dispatch(T0 + timedelta(seconds=60))
    assert await world.told() == []
    async with world.db.sessions.begin() as session:
        assert (
            await unmute(
                session, MuteScope.CONNECTION, connection_id, now=T0 + timedelta(minutes=2)
            )
            == 1
        )
    await world.dispatch(T0 + timedelta(minutes=2))
    assert await world.told() == [(endpoint, "connection.failed", "b0")]


async def test_a_maintenance_window_holds_only_while_it_lasts(world: World) -> None:
    endpoint = await world.endpoint()
    window = Window(
        MuteScope.CONNECTOR,
        world.connector_ids["books"],
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=2),
        "provider maintenance",
    )
    async with world.db.sessions.begin() as session:
        assert await set_maintenance_windows(session, [window], now=T0) == (1, 0)
        assert await set_maintenance_windows(session, [window], now=T0) == (0, 0)
    await world.check([("b0", failed(T0))])
    await world.dispatch(T0 + timedelta(seconds=31))  # before the window: told
    await world.check([("b1", failed(T0 + timedelta(seconds=70)))])  # inside: silenced
    await world.dispatch(T0 + timedelta(seconds=110))
    assert await world.told() == [(endpoint, "connection.failed", "b0")]
    await world.dispatch(T0 + timedelta(minutes=2))  # the window ended: b1 is told
    assert (await world.told())[1:] == [(endpoint, "connection.failed", "b1")]


async def test_use_events_are_told_at_once_and_muted_with_their_connection(
    world: World,
) -> None:
    endpoint = await world.endpoint()
    async with world.db.sessions.begin() as session:
        factory = GraphFactory(session)
        connection = await session.get(ConnectionRow, world.connection_ids["b1"])
        use = await factory.use(connection, "hypersync", "Invoices")
    for success, error in ((False, "mapping broke"), (False, "still"), (True, None)):
        async with world.db.sessions.begin() as session:
            await commands.report_use_run(session, use.id, success=success, error=error, at=T0)
    await world.dispatch(T0)
    assert await world.told() == [
        (endpoint, "use.failed", "b1"),
        (endpoint, "use.recovered", "b1"),
    ]
    async with world.db.sessions() as session:
        first = await session.scalar(select(WebhookEventRow).order_by(WebhookEventRow.id))
        assert first is not None and first.data["use"] == {
            "id": use.id,
            "kind": "hypersync",
            "name": "Invoices",
            "status": str(UseStatus.FAILED),
            "last_error": "mapping broke",
            "last_run_at": "2026-12-01T09:00:00Z",
        }


async def test_a_change_that_rolls_back_leaves_no_event(world: World) -> None:
    await world.endpoint()

    async def fail_after_the_write() -> None:
        async with world.db.sessions.begin() as session:
            await record_unclaimed_outcomes(
                session,
                outcomes=[(world.connection_ids["b0"], failed(T0, FailureReason.AUTH))],
                jitter=no_jitter,
            )
            raise RuntimeError("the transaction fails after the write")

    with pytest.raises(RuntimeError):
        await fail_after_the_write()
    assert await world.events() == []
    async with world.db.sessions() as session:
        row = await session.get(ConnectionRow, world.connection_ids["b0"])
        assert row is not None
        assert (row.state, row.status) == (ConnectionState.ACTIVE, ConnectionStatus.CONNECTED)


async def test_history_is_pruned_but_never_an_event_still_on_its_way(world: World) -> None:
    await world.endpoint()
    async with world.db.sessions.begin() as session:
        await mute(
            session,
            MuteScope.CONNECTION,
            world.connection_ids["b1"],
            until=T0 + timedelta(minutes=1),
            reason="x",
            now=T0 - timedelta(seconds=1),
        )
    await world.check([("b0", failed(T0, FailureReason.AUTH)), ("b1", failed(T0))])
    await world.dispatch(T0 + timedelta(minutes=2))  # b1 silenced; the mute ends, b1 told
    later = T0 + timedelta(days=30)
    async with world.db.sessions.begin() as session:
        assert await prune_history(session, older_than=later) == 2  # one silenced event, the mute
    assert [(kind, name) for kind, name, _ in await world.events()] == [
        ("connection.auth_failed", "b0"),
        ("connection.failed", "b1"),
    ]
    async with world.db.sessions.begin() as session:
        for row in await session.scalars(select(WebhookDeliveryRow)):
            row.state = DeliveryState.DELIVERED
    async with world.db.sessions.begin() as session:
        assert await prune_history(session, older_than=later) == 2
    assert (await world.events(), await world.told()) == ([], [])
