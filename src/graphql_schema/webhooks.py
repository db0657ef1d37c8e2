"""Webhook endpoints over GraphQL (write scope): subscribe a URL to events, see how each
delivery went, rotate the signing secret, send an event again.

The signing secret (`whsec_…`) is shown twice in an endpoint's life at most: in
`createWebhookEndpoint`'s and `rotateWebhookSecret`'s payloads. A token limited to one
consumer sees and manages only the endpoints made with that consumer's tokens, and those
endpoints hear only that consumer's events.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_schema import enums, relay  # noqa: F401 - enums registers the enums
from graphql_schema.batching import First
from graphql_schema.context import Info
from graphql_schema.errors import ClientError
from graphql_schema.ids import decode_id, to_global_id
from graphql_schema.writes import write
from store import domain
from store.commands import webhooks as endpoint_commands
from store.commands.base import UNSET
from store.errors import NotFoundError
from store.queries import webhooks as endpoint_queries

ENDPOINT = "WebhookEndpoint"
DELIVERY = "WebhookDelivery"


@strawberry.type(description="One event on its way to one endpoint.")
class WebhookDelivery:
    _record: strawberry.Private[domain.WebhookDelivery]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id(DELIVERY, self._record.id))

    @strawberry.field(description="The event's id, sent as the `webhook-id` header.")
    def event_id(self) -> str:
        return f"evt_{self._record.event_id}"

    @strawberry.field
    def event_type(self) -> domain.WebhookEventType:
        return self._record.event_type

    @strawberry.field
    def state(self) -> domain.DeliveryState:
        return self._record.state

    @strawberry.field(description="Tries so far.")
    def attempts(self) -> int:
        return self._record.attempts

    @strawberry.field(description="The status the endpoint last answered; null: no answer.")
    def last_response_status(self) -> int | None:
        return self._record.last_response_status

    @strawberry.field(description="Why the last try failed.")
    def last_error(self) -> str | None:
        return self._record.last_error

    @strawberry.field(description="When it is tried next; null once delivered or given up.")
    def next_attempt_at(self) -> datetime | None:
        return self._record.next_attempt_at

    @strawberry.field
    def last_attempt_at(self) -> datetime | None:
        return self._record.last_attempt_at

    @strawberry.field
    def delivered_at(self) -> datetime | None:
        return self._record.delivered_at

    @strawberry.field
    def created_at(self) -> datetime:
        return self._record.created_at


@strawberry.type(description="Where events are sent, and which ones. Never its secret.")
class WebhookEndpoint:
    _record: strawberry.Private[domain.WebhookEndpoint]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id(ENDPOINT, self._record.id))

    @strawberry.field
    def url(self) -> str:
        return self._record.url

    @strawberry.field(
        description="The events sent; every event, present and future, when none were chosen."
    )
    def events(self) -> list[domain.WebhookEventType]:
        return list(self._record.events or domain.WebhookEventType)

    @strawberry.field(description="Whether it was made to hear every event type.")
    def all_events(self) -> bool:
        return self._record.events is None

    @strawberry.field
    def description(self) -> str | None:
        return self._record.description

    @strawberry.field
    def enabled(self) -> bool:
        return self._record.enabled

    @strawberry.field(description="Why it was disabled, when healthgraph disabled it.")
    def disabled_reason(self) -> str | None:
        return self._record.disabled_reason

    @strawberry.field(description="Since when every delivery has failed; null when well.")
    def failing_since(self) -> datetime | None:
        return self._record.failing_since

    @strawberry.field
    def last_delivered_at(self) -> datetime | None:
        return self._record.last_delivered_at

    @strawberry.field
    def created_at(self) -> datetime:
        return self._record.created_at

    @strawberry.field(description="Its deliveries, newest first.")
    async def deliveries(
        self, info: Info, first: First = None, after: str | None = None
    ) -> relay.Connection[WebhookDelivery]:
        page = relay.page_request(first, after)
        endpoint_id = self._record.id
        listed = await info.context.read(
            lambda s: endpoint_queries.list_deliveries(s, endpoint_id, page)
        )
        return relay.to_connection(
            listed,
            lambda record: WebhookDelivery(_record=record),
            lambda: info.context.read(lambda s: endpoint_queries.count_deliveries(s, endpoint_id)),
        )


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    events: list[domain.WebhookEventType] | None = strawberry.field(
        default=None, description="Left out: every event, present and future."
    )
    description: str | None = None


@strawberry.input
class UpdateWebhookEndpointInput:
    url: str | None = strawberry.UNSET
    events: list[domain.WebhookEventType] | None = strawberry.field(
        default=strawberry.UNSET, description="null: every event, present and future."
    )
    description: str | None = strawberry.UNSET
    enabled: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="true again after healthgraph disabled it: its failures count anew.",
    )


@strawberry.type
class WebhookSecretPayload:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(
        description="The signing secret (whsec_…): shown here only. Verify deliveries with any "
        "Standard Webhooks library."
    )


def _not_found(global_id: str) -> ClientError:
    # The same words for another tenant's endpoint: an id reveals nothing.
    return ClientError(f"{ENDPOINT} {global_id!r} does not exist")


async def _owned_endpoint(info: Info, global_id: strawberry.ID) -> int:
    """The endpoint behind `global_id` if it exists and the token may manage it."""
    info.context.viewer.require(domain.TokenScope.WRITE)
    endpoint_id = decode_id(global_id, ENDPOINT)
    found = await info.context.read(
        lambda s: endpoint_queries.webhook_endpoints_by_id(s, [endpoint_id])
    )
    endpoint = found.get(endpoint_id)
    limited_to = info.context.viewer.consumer_id
    if endpoint is None or (limited_to is not None and endpoint.consumer_id != limited_to):
        raise _not_found(global_id)
    return endpoint_id


def _kinds(events: list[domain.WebhookEventType] | None) -> list[str] | None:
    return None if events is None else [kind.value for kind in events]


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="Webhook endpoints, oldest first (write scope).")
    async def webhook_endpoints(
        self, info: Info, first: First = None, after: str | None = None
    ) -> relay.Connection[WebhookEndpoint]:
        viewer = info.context.viewer
        viewer.require(domain.TokenScope.WRITE)
        page = relay.page_request(first, after)
        listed = await info.context.read(
            lambda s: endpoint_queries.list_webhook_endpoints(
                s, page, consumer_id=viewer.consumer_id
            )
        )
        return relay.to_connection(
            listed,
            lambda record: WebhookEndpoint(_record=record),
            lambda: info.context.read(
                lambda s: endpoint_queries.count_webhook_endpoints(
                    s, consumer_id=viewer.consumer_id
                )
            ),
        )


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Subscribe a URL to events; the payload shows its secret.")
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> WebhookSecretPayload:
        services = info.context.services
        consumer_id = info.context.viewer.consumer_id

        async def create(session: AsyncSession) -> tuple[domain.WebhookEndpoint, str]:
            return await endpoint_commands.create_webhook_endpoint(
                session,
                url=input.url,
                events=_kinds(input.events),
                description=input.description,
                consumer_id=consumer_id,
                outbound=services.guard,
                key_ring=services.key_ring(),
            )

        endpoint, secret = await write(info, create)
        return WebhookSecretPayload(endpoint=WebhookEndpoint(_record=endpoint), secret=secret)

    @strawberry.mutation(description="Change an endpoint; given fields only.")
    async def update_webhook_endpoint(
        self, info: Info, id: strawberry.ID, input: UpdateWebhookEndpointInput
    ) -> WebhookEndpoint:
        endpoint_id = await _owned_endpoint(info, id)
        guard = info.context.services.guard

        def given(value: object) -> object:
            return UNSET if value is strawberry.UNSET else value

        if input.url is None:
            raise ClientError("url: must not be null; leave it out to keep the URL")
        if input.enabled is None:
            raise ClientError("enabled: must not be null; leave it out to keep it as it is")
        events = input.events
        record = await write(
            info,
            lambda s: endpoint_commands.update_webhook_endpoint(
                s,
                endpoint_id,
                url=given(input.url),  # type: ignore[arg-type]
                events=UNSET if events is strawberry.UNSET else _kinds(events),
                description=given(input.description),  # type: ignore[arg-type]
                enabled=given(input.enabled),  # type: ignore[arg-type]
                outbound=guard,
            ),
        )
        return WebhookEndpoint(_record=record)

    @strawberry.mutation(description="Delete an endpoint with its deliveries.")
    async def delete_webhook_endpoint(self, info: Info, id: strawberry.ID) -> WebhookEndpoint:
        endpoint_id = await _owned_endpoint(info, id)
        record = await write(
            info, lambda s: endpoint_commands.delete_webhook_endpoint(s, endpoint_id)
        )
        return WebhookEndpoint(_record=record)

    @strawberry.mutation(
        description="A new signing secret; the previous one keeps signing beside it for 24 "
        "hours, so receivers can switch without refusing a delivery."
    )
    async def rotate_webhook_secret(self, info: Info, id: strawberry.ID) -> WebhookSecretPayload:
        endpoint_id = await _owned_endpoint(info, id)
        key_ring = info.context.services.key_ring()
        endpoint, secret = await write(
            info,
            lambda s: endpoint_commands.rotate_webhook_secret(s, endpoint_id, key_ring=key_ring),
        )
        return WebhookSecretPayload(endpoint=WebhookEndpoint(_record=endpoint), secret=secret)

    @strawberry.mutation(
        description="Send a delivery's event to its endpoint again: a pending one is tried at "
        "once, a finished one (delivered or given up) gets a new delivery."
    )
    async def redeliver_webhook_event(self, info: Info, id: strawberry.ID) -> WebhookDelivery:
        info.context.viewer.require(domain.TokenScope.WRITE)
        delivery_id = decode_id(id, DELIVERY)
        delivery = await info.context.read(
            lambda s: endpoint_queries.webhook_delivery(s, delivery_id)
        )
        if delivery is None:
            raise ClientError(f"{DELIVERY} {id!r} does not exist")
        try:
            await _owned_endpoint(info, strawberry.ID(to_global_id(ENDPOINT, delivery.endpoint_id)))
        except ClientError:
            raise ClientError(f"{DELIVERY} {id!r} does not exist") from None
        try:
            record = await write(
                info, lambda s: endpoint_commands.redeliver_webhook_event(s, delivery_id)
            )
        except NotFoundError:
            raise ClientError(f"{DELIVERY} {id!r} does not exist") from None
        return WebhookDelivery(_record=record)
