"""The webhook worker against real local receivers, on both backends: signatures verified by
the `standardwebhooks` library, retries with backoff after a 503, a hang and a closed socket,
giving up after a day, disabling an endpoint that failed for three days, secret rotation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from graphql_schema.links import LinkSigner
from healthgraph.database import Database
from healthgraph.webhook_payload import payload_renderer
from probes.target import ProbeContext
from probes.webhook_worker import WebhookConfig, WebhookWorker
from store import commands
from store.commands.webhooks import create_webhook_endpoint, rotate_webhook_secret
from store.crypto import KeyRing, generate_key
from store.deliveries import DeliveryPolicy
from store.domain import DeliveryState
from store.models import WebhookDeliveryRow, WebhookEndpointRow
from store.outages import OutageRules
from tests.factories import GraphFactory
from tests.outbound import LOOPBACK_OUTBOUND
from tests.waiting import wait_until
from tests.webhook_receiver import Receiver

FAST = DeliveryPolicy(first_retry_seconds=0.2, retry_factor=2, max_retry_seconds=1)


@dataclass
class Setup:
    db: Database
    ring: KeyRing
    use_ids: list[int]
    context: ProbeContext

    async def endpoint(self, url: str, consumer_id: int | None = None) -> tuple[int, str]:
        async with self.db.sessions.begin() as session:
            endpoint, secret = await create_webhook_endpoint(
                session,
                url=url,
                events=None,
                description="tests",
                consumer_id=consumer_id,
                outbound=LOOPBACK_OUTBOUND,
                key_ring=self.ring,
            )
        return endpoint.id, secret

    async def fail_use(self, index: int = 0, error: str = "mapping broke") -> None:
        async with self.db.sessions.begin() as session:
            await commands.report_use_run(
                session, self.use_ids[index], success=False, error=error, at=datetime.now(UTC)
            )

    def worker(
        self,
        *,
        policy: DeliveryPolicy = FAST,
        config: WebhookConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        name: str = "w1",
    ) -> WebhookWorker:
        return WebhookWorker(
            self.db.sessions,
            self.context,
            self.ring,
            worker_id=name,
            render=payload_renderer(
                LinkSigner(self.ring.derive("consumer-links")), "https://hg.example"
            ),
            rules=OutageRules(hold_seconds=0),
            policy=policy,
            config=config or WebhookConfig(poll_seconds=0.05, timeout_seconds=1.0),
            clock=clock,
        )

    async def deliveries(self) -> list[WebhookDeliveryRow]:
        async with self.db.sessions() as session:
            return list(
                await session.scalars(select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id))
            )


@pytest.fixture
async def setup(db: Database, loopback_context: ProbeContext) -> Setup:
    async with db.sessions.begin() as session:
        factory = GraphFactory(session)
        books = await factory.connector("books")
        consumer = await factory.consumer("acme", "Acme Corp")
        consumer.email = "ops@acme.example"
        connection = await factory.connection(consumer, books, name="Acme Books")
        uses = [await factory.use(connection, "hypersync", f"Invoices {n}") for n in range(3)]
        await session.flush()
        return Setup(db, KeyRing([generate_key()]), [use.id for use in uses], loopback_context)


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., object]]:
    started: list[Receiver] = []

    async def start(secret: str, **kwargs: object) -> Receiver:
        receiver = await Receiver(secret, **kwargs).start()  # type: ignore[arg-type]
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.close()


async def _running(worker: WebhookWorker) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(worker.run(stop))


async def _stop(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, 15)


async def test_a_signed_event_arrives_verified_with_what_the_product_needs(
    setup: Setup, receivers: Callable[..., object]
) -> None:
    receiver = await receivers("")  # type: ignore[misc]
    _, receiver.secret = await setup.endpoint(receiver.url)
    await setup.fail_use()
    stop, task = await _running(setup.worker())
    try:
        await wait_until(lambda: _got(receiver, 1), 10, "the delivery")
    finally:
        await _stop(stop, task)
    (item,) = receiver.received
    assert receiver.refused == []
    assert item.type == "use.failed"
    assert set(item.body) == {"type", "timestamp", "data"}
    data = item.body["data"]
    assert set(data) == {"connection", "connector", "consumer", "use"}
    assert data["use"]["name"] == "Invoices 0" and data["use"]["last_error"] == "mapping broke"
    assert data["connector"] == {"id": data["connector"]["id"], "slug": "books", "name": "Books"}
    consumer = data["consumer"]
    assert (consumer["external_id"], consumer["name"], consumer["email"]) == (
        "acme",
        "Acme Corp",
        "ops@acme.example",
    )
    assert consumer["link"].startswith("https://hg.example/consumers/acme?expires=")
    assert item.message_id.startswith("evt_")
    assert item.headers["Content-Type"] == "application/json"
    (delivery,) = await setup.deliveries()
    assert (delivery.state, delivery.attempts, delivery.last_response_status) == (
        DeliveryState.DELIVERED,
        1,
        204,
    )


async def _got(receiver: Receiver, count: int) -> bool:
    return len(receiver.received) >= count


@pytest.mark.parametrize("failure", ["503", "hang", "close"])
async def test_a_failing_receiver_is_retried_until_it_answers(
    setup: Setup, receivers: Callable[..., object], failure: str
) -> None:
    receiver = await receivers("", failures=2, failure=failure)  # type: ignore[misc]
    _, receiver.secret = await setup.endpoint(receiver.url)
    await setup.fail_use()
    stop, task = await _running(setup.worker())
    try:
        await wait_until(lambda: _got(receiver, 1), 20, "the delivery after two failures")
    finally:
        await _stop(stop, task)
    assert receiver.requests == 3
    assert [r.message_id for r in receiver.received] == [receiver.received[0].message_id]
    (delivery,) = await setup.deliveries()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 3)


async def test_each_failed_try_says_why_and_backs_off(
    setup: Setup, receivers: Callable[..., object]
) -> None:
    receiver = await receivers("", failures=1000)  # type: ignore[misc]
    _, receiver.secret = await setup.endpoint(receiver.url)
    await setup.fail_use()
    policy = DeliveryPolicy(first_retry_seconds=30)
    stop, task = await _running(setup.worker(policy=policy))
    try:
        await wait_until(lambda: _attempted(setup, 1), 10, "the first try")
        await asyncio.sleep(0.5)
    finally:
        await _stop(stop, task)
    (delivery,) = await setup.deliveries()
    assert (delivery.state, delivery.attempts, delivery.last_response_status) == (
        DeliveryState.PENDING,
        1,
        503,
    )
    assert delivery.last_error == "HTTP 503 Service Unavailable: down for maintenance"
    assert delivery.next_attempt_at is not None and delivery.last_attempt_at is not None
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 24 <= wait <= 36  # 30 s ± 20 %
    assert receiver.requests == 1


async def _attempted(setup: Setup, count: int) -> bool:
    deliveries = await setup.deliveries()
    return bool(deliveries) and deliveries[0].attempts >= count


async def test_a_delivery_is_given_up_after_a_day_and_an_endpoint_disabled_after_three(
    setup: Setup, receivers: Callable[..., object]
) -> None:
    receiver = await receivers("", failures=10_000)  # type: ignore[misc]
    endpoint_id, secret = await setup.endpoint(receiver.url)
    await setup.fail_use(0)
    start = datetime.now(UTC)
    shift = timedelta()

    def clock() -> datetime:
        return datetime.now(UTC) + shift

    stop, task = await _running(setup.worker(clock=clock))
    try:
        await wait_until(lambda: _attempted(setup, 1), 10, "the first try")
        shift = timedelta(days=1, minutes=1)  # a day later: the next failure gives up
        await wait_until(lambda: _state(setup, 0, DeliveryState.FAILED), 10, "giving up")
        await setup.fail_use(1)
        await setup.fail_use(2)
        # Both told before the clock jumps: a disabled endpoint is told nothing new.
        await wait_until(lambda: _attempted_each(setup, 3), 10, "the two later failures tried")
        shift = timedelta(days=3, minutes=2)
        await wait_until(lambda: _disabled(setup, endpoint_id), 10, "the endpoint disabled")
    finally:
        await _stop(stop, task)
    async with setup.db.sessions() as session:
        endpoint = await session.get(WebhookEndpointRow, endpoint_id)
        assert endpoint is not None and endpoint.failing_since is not None
        since = endpoint.failing_since
        assert start - timedelta(seconds=5) <= since <= start + timedelta(seconds=10)
        assert endpoint.disabled_reason == (
            f"every delivery has failed since {since:%Y-%m-%d %H:%M} UTC (over 3 days); "
            "last: HTTP 503 Service Unavailable: down for maintenance"
        )
    states = [d.state for d in await setup.deliveries()]
    assert states == [DeliveryState.FAILED] * 3
    assert secret.startswith("whsec_")


async def _attempted_each(setup: Setup, count: int) -> bool:
    deliveries = await setup.deliveries()
    return len(deliveries) == count and all(d.attempts >= 1 for d in deliveries)


async def _state(setup: Setup, index: int, state: DeliveryState) -> bool:
    deliveries = await setup.deliveries()
    return len(deliveries) > index and deliveries[index].state == state


async def _disabled(setup: Setup, endpoint_id: int) -> bool:
    async with setup.db.sessions() as session:
        endpoint = await session.get(WebhookEndpointRow, endpoint_id)
        return endpoint is not None and not endpoint.enabled


async def test_after_a_rotation_both_secrets_sign_until_the_old_one_expires(
    setup: Setup, receivers: Callable[..., object]
) -> None:
    old_receiver = await receivers("")  # type: ignore[misc]
    endpoint_id, old = await setup.endpoint(old_receiver.url)
    old_receiver.secret = old
    async with setup.db.sessions.begin() as session:
        _, new = await rotate_webhook_secret(session, endpoint_id, key_ring=setup.ring)
    assert new != old and new.startswith("whsec_")
    new_receiver = await receivers(new)  # type: ignore[misc]
    await setup.fail_use(0)
    stop, task = await _running(setup.worker())
    try:
        await wait_until(lambda: _got(old_receiver, 1), 10, "verified with the old secret")
    finally:
        await _stop(stop, task)
    (item,) = old_receiver.received
    assert len(item.headers["webhook-signature"].split(" ")) == 2
    # The same request verifies with the new secret too.
    body = json.dumps(item.body, separators=(",", ":"), ensure_ascii=False)
    assert Webhook(new).verify(body, item.headers) == item.body
    assert new_receiver.received == []


async def test_a_bad_signature_is_refused_by_the_receiver(
    setup: Setup, receivers: Callable[..., object]
) -> None:
    """The receiver's check is real: a delivery signed with another secret fails it."""
    receiver = await receivers("whsec_" + "QUJD" * 8)  # type: ignore[misc]
    await setup.endpoint(receiver.url)
    await setup.fail_use()
    stop, task = await _running(setup.worker())
    try:
        await wait_until(lambda: _attempted(setup, 1), 10, "the try")
    finally:
        await _stop(stop, task)
    assert receiver.received == [] and receiver.refused == ["No matching signature found"]
    (delivery,) = await setup.deliveries()
    assert (delivery.state, delivery.last_response_status) == (DeliveryState.PENDING, 401)
