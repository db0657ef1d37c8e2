"""Mutations (write scope). Each validates in the store and writes in one transaction; a
refused input comes back as a GraphQL error naming the field, and nothing is half-written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_schema.check_now import check_now
from graphql_schema.context import Info
from graphql_schema.errors import ClientError
from graphql_schema.ids import decode_id
from graphql_schema.links import LinkSigner
from graphql_schema.mutation_inputs import (
    ConsumerLink,
    CreateConnectionInput,
    CreateConnectorInput,
    CreateConsumerInput,
    CreateUseInput,
    CredentialsInput,
    OAuth2AppInput,
    StepInput,
    SyncInput,
    UpdateConnectionInput,
    UpdateConnectorInput,
    UpdateConsumerInput,
    UpdateUseInput,
)
from graphql_schema.mutes import MuteMutation
from graphql_schema.tokens import TokenMutation
from graphql_schema.types import (
    ConnectionNode,
    Connector,
    Consumer,
    Sync,
    SyncActivation,
    Use,
)
from graphql_schema.webhooks import WebhookMutation
from graphql_schema.writes import camel, given, global_only, invalid, owned, required, write
from store import commands, domain, library, queries
from store.commands import UNSET, Unset
from store.errors import NotFoundError, ValidationError

MAX_LINK_SECONDS = 30 * 86400


def _params(value: object) -> dict[str, str]:
    """`params` as given (null: none); the store checks names and values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("params", 'expected an object of "name": "value"')
    return value


def _client_secret(app: OAuth2AppInput | None) -> str | Unset | None:
    """What the input says of the client secret: a new one, keep (UNSET), or none."""
    if app is None:
        return None
    return UNSET if app.client_secret is strawberry.UNSET else app.client_secret


async def _connector_now(session: AsyncSession, connector_id: int) -> domain.Connector:
    return (await queries.connectors_by_id(session, [connector_id]))[connector_id]


def resolve_template(
    template: str,
    name: str | None,
    category: str | None,
    heartbeat: dict[str, Any],
    app: dict[str, Any] | None,
) -> library.ResolvedConnector:
    """The connector `template` makes with the input's overrides, or a field error."""
    try:
        return library.resolve(
            template, name=name, category=category, heartbeat=heartbeat, oauth2=app
        )
    except ValidationError as exc:
        raise invalid(exc.field, exc.problem) from None


@strawberry.type
class Mutation(TokenMutation, WebhookMutation, MuteMutation):
    @strawberry.mutation
    async def create_consumer(self, info: Info, input: CreateConsumerInput) -> Consumer:
        global_only(info, "consumers")
        record = await write(
            info,
            lambda s: commands.create_consumer(
                s, external_id=input.external_id, name=input.name, email=input.email
            ),
        )
        return Consumer.from_record(record)

    @strawberry.mutation
    async def update_consumer(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateConsumerInput,
    ) -> Consumer:
        row_id = await owned(info, "Consumer", id)
        values = given(input)
        for field in ("external_id", "name"):
            if field in values:
                required(values[field], camel(field))
        record = await write(info, lambda s: commands.update_consumer(s, row_id, **values))
        return Consumer.from_record(record)

    @strawberry.mutation(description="Delete a consumer, its connections, uses, activations.")
    async def delete_consumer(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await owned(info, "Consumer", id)
        await write(info, lambda s: commands.delete_consumer(s, row_id))
        return id

    @strawberry.mutation
    async def create_connector(self, info: Info, input: CreateConnectorInput) -> Connector:
        global_only(info, "connectors")
        heartbeat = input.heartbeat.to_dict() if input.heartbeat else {}
        app = input.oauth2.app() if input.oauth2 else None
        name, category = input.name, input.category
        if input.template is not None:
            made = resolve_template(input.template, name, category, heartbeat, app)
            name, category, heartbeat, app = made.name, made.category, made.heartbeat, made.oauth2
        services = info.context.services
        secret = _client_secret(input.oauth2)
        key_ring = services.key_ring() if secret is not UNSET and secret is not None else None

        async def create(session: AsyncSession) -> domain.Connector:
            record = await commands.create_connector(
                session,
                slug=input.slug,
                name=required(name, "name"),
                category=required(category, "category"),
                heartbeat=heartbeat,
                template_name=input.template,
                outbound=services.guard,
            )
            if app is not None:
                await commands.set_connector_oauth2(
                    session,
                    record.id,
                    app=app,
                    client_secret=secret,
                    key_ring=key_ring,
                    outbound=services.guard,
                )
            return await _connector_now(session, record.id)

        return Connector.from_record(await write(info, create))

    @strawberry.mutation
    async def update_connector(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateConnectorInput,
    ) -> Connector:
        row_id = await owned(info, "Connector", id)
        values = given(input)
        for field in ("slug", "name", "category"):
            if field in values:
                required(values[field], field)
        if "heartbeat" in values:
            values["heartbeat"] = values["heartbeat"].to_dict() if values["heartbeat"] else {}
        oauth2 = values.pop("oauth2", UNSET)
        services = info.context.services
        secret = _client_secret(oauth2) if oauth2 is not UNSET else UNSET
        key_ring = services.key_ring() if secret is not UNSET and secret is not None else None

        async def update(session: AsyncSession) -> domain.Connector:
            record = await commands.update_connector(
                session, row_id, outbound=services.guard, **values
            )
            if oauth2 is not UNSET:
                await commands.set_connector_oauth2(
                    session,
                    record.id,
                    app=oauth2.app() if oauth2 is not None else None,
                    client_secret=secret,
                    key_ring=key_ring,
                    outbound=services.guard,
                )
            return await _connector_now(session, record.id)

        return Connector.from_record(await write(info, update))

    @strawberry.mutation
    async def delete_connector(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await owned(info, "Connector", id)
        await write(info, lambda s: commands.delete_connector(s, row_id))
        return id

    @strawberry.mutation
    async def create_connection(
        self,
        info: Info,
        input: CreateConnectionInput,
    ) -> ConnectionNode:
        consumer_id = await owned(info, "Consumer", input.consumer_id)
        connector_id = decode_id(input.connector_id, "Connector")
        heartbeat = input.heartbeat.to_dict() if input.heartbeat else {}
        outbound = info.context.services.guard
        record = await write(
            info,
            lambda s: commands.create_connection(
                s,
                consumer_id=consumer_id,
                connector_id=connector_id,
                name=input.name,
                direction=input.direction,
                state=input.state,
                check_interval_seconds=input.check_interval_seconds,
                failure_threshold=input.failure_threshold,
                heartbeat=heartbeat,
                params=_params(input.params),
                outbound=outbound,
            ),
        )
        return ConnectionNode.from_record(record)

    @strawberry.mutation
    async def update_connection(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateConnectionInput,
    ) -> ConnectionNode:
        row_id = await owned(info, "Connection", id)
        values = given(input)
        for field, value in values.items():
            if field not in ("heartbeat", "params"):
                required(value, camel(field))
        if "connector_id" in values:
            values["connector_id"] = decode_id(values["connector_id"], "Connector")
        if "heartbeat" in values:
            values["heartbeat"] = values["heartbeat"].to_dict() if values["heartbeat"] else {}
        if "params" in values:
            values["params"] = _params(values["params"])
        outbound = info.context.services.guard
        record = await write(
            info, lambda s: commands.update_connection(s, row_id, outbound=outbound, **values)
        )
        await info.context.services.broadcaster.publish([record.id])
        return ConnectionNode.from_record(record)

    @strawberry.mutation
    async def delete_connection(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await owned(info, "Connection", id)
        await write(info, lambda s: commands.delete_connection(s, row_id))
        return id

    @strawberry.mutation(description="Set (or with null, remove) a connection's credentials.")
    async def set_connection_credentials(
        self, info: Info, id: strawberry.ID, credentials: CredentialsInput | None
    ) -> ConnectionNode:
        row_id = await owned(info, "Connection", id)
        key_ring = info.context.services.key_ring()
        secret = credentials.to_secret() if credentials else None
        record = await write(
            info,
            lambda s: commands.set_connection_credentials(
                s, row_id, secret=secret, key_ring=key_ring
            ),
        )
        return ConnectionNode.from_record(record)

    @strawberry.mutation
    async def create_use(self, info: Info, input: CreateUseInput) -> Use:
        connection_id = await owned(info, "Connection", input.connection_id)
        record = await write(
            info,
            lambda s: commands.create_use(
                s, connection_id=connection_id, kind=input.kind, name=input.name
            ),
        )
        return Use.from_record(record)

    @strawberry.mutation
    async def update_use(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateUseInput,
    ) -> Use:
        row_id = await owned(info, "Use", id)
        values = {k: required(v, k) for k, v in given(input).items()}
        record = await write(info, lambda s: commands.update_use(s, row_id, **values))
        return Use.from_record(record)

    @strawberry.mutation
    async def delete_use(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await owned(info, "Use", id)
        await write(info, lambda s: commands.delete_use(s, row_id))
        return id

    @strawberry.mutation(description="The app that runs a use reports how its last run went.")
    async def report_use_run(
        self, info: Info, use_id: strawberry.ID, success: bool, error: str | None = None
    ) -> Use:
        row_id = await owned(info, "Use", use_id)
        now = datetime.now(UTC)
        record = await write(
            info, lambda s: commands.report_use_run(s, row_id, success=success, error=error, at=now)
        )
        return Use.from_record(record)

    @strawberry.mutation(description="Probe the connection now and return it, fresh.")
    async def check_connection_now(self, info: Info, id: strawberry.ID) -> ConnectionNode:
        row_id = await owned(info, "Connection", id)
        info.context.viewer.require(domain.TokenScope.WRITE)
        return ConnectionNode.from_record(await check_now(info, row_id, id))

    @strawberry.mutation(description="An inbound connection calls in: it is up for one interval.")
    async def record_inbound_heartbeat(
        self, info: Info, connection_id: strawberry.ID
    ) -> ConnectionNode:
        row_id = await owned(info, "Connection", connection_id)
        now = datetime.now(UTC)
        record = await write(info, lambda s: commands.record_inbound_heartbeat(s, row_id, at=now))
        await info.context.services.broadcaster.publish([record.id])
        return ConnectionNode.from_record(record)

    @strawberry.mutation
    async def create_sync(self, info: Info, input: SyncInput) -> Sync:
        global_only(info, "syncs")
        required_ids = [decode_id(i, "Connector") for i in input.required_connector_ids]
        record = await write(
            info,
            lambda s: commands.create_sync(s, name=input.name, required_connector_ids=required_ids),
        )
        return Sync.from_record(record)

    @strawberry.mutation
    async def update_sync(self, info: Info, id: strawberry.ID, input: SyncInput) -> Sync:
        row_id = await owned(info, "Sync", id)
        required_ids = [decode_id(i, "Connector") for i in input.required_connector_ids]
        record = await write(
            info,
            lambda s: commands.update_sync(
                s, row_id, name=input.name, required_connector_ids=required_ids
            ),
        )
        return Sync.from_record(record)

    @strawberry.mutation
    async def delete_sync(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await owned(info, "Sync", id)
        await write(info, lambda s: commands.delete_sync(s, row_id))
        return id

    @strawberry.mutation
    async def create_sync_activation(
        self, info: Info, sync_id: strawberry.ID, consumer_id: strawberry.ID
    ) -> SyncActivation:
        consumer_row = await owned(info, "Consumer", consumer_id)
        sync_row = decode_id(sync_id, "Sync")
        record = await write(
            info,
            lambda s: commands.create_sync_activation(
                s, sync_id=sync_row, consumer_id=consumer_row
            ),
        )
        return SyncActivation.from_record(record)

    @strawberry.mutation(description="Mark steps complete or not; the issue column follows.")
    async def update_sync_activation(
        self, info: Info, id: strawberry.ID, steps: list[StepInput]
    ) -> SyncActivation:
        row_id = await owned(info, "SyncActivation", id)
        wanted = {s.step: (s.complete, s.detail) for s in steps}
        if len(wanted) != len(steps):
            raise invalid("steps", "lists a step twice")
        record = await write(
            info, lambda s: commands.update_sync_activation(s, row_id, steps=wanted)
        )
        return SyncActivation.from_record(record)

    @strawberry.mutation
    async def delete_sync_activation(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await owned(info, "SyncActivation", id)
        await write(info, lambda s: commands.delete_sync_activation(s, row_id))
        return id

    @strawberry.mutation(description="A signed link to the consumer's connection page.")
    async def consumer_link(
        self, info: Info, consumer_id: strawberry.ID, expires_in_seconds: int = 86400
    ) -> ConsumerLink:
        info.context.viewer.require(domain.TokenScope.WRITE)
        row_id = await owned(info, "Consumer", consumer_id)
        expires_at = _link_expiry(expires_in_seconds)
        consumer = await info.context.loaders.consumer.load(row_id)
        if consumer is None:
            raise NotFoundError("consumer", consumer_id)
        path = _link_signer(info).path(consumer.external_id, expires_at)
        return ConsumerLink(url=f"{info.context.services.public_url}{path}", expires_at=expires_at)

    @strawberry.mutation(
        description="A signed link to the consumer's page for one sync activation: its steps, "
        "its required connections and its issue."
    )
    async def sync_activation_link(
        self, info: Info, activation_id: strawberry.ID, expires_in_seconds: int = 86400
    ) -> ConsumerLink:
        info.context.viewer.require(domain.TokenScope.WRITE)
        row_id = await owned(info, "SyncActivation", activation_id)
        expires_at = _link_expiry(expires_in_seconds)
        loaders = info.context.loaders
        activation = await loaders.sync_activation.load(row_id)
        consumer = await loaders.consumer.load(activation.consumer_id) if activation else None
        if activation is None or consumer is None:
            raise NotFoundError("sync activation", activation_id)
        path = _link_signer(info).sync_path(consumer.external_id, activation.id, expires_at)
        return ConsumerLink(url=f"{info.context.services.public_url}{path}", expires_at=expires_at)


def _link_expiry(expires_in_seconds: int) -> datetime:
    """When a link asked for now for `expires_in_seconds` expires (60 s to 30 days)."""
    if not 60 <= expires_in_seconds <= MAX_LINK_SECONDS:
        raise invalid(
            "expiresInSeconds",
            f"{expires_in_seconds} is out of range; use 60..{MAX_LINK_SECONDS}",
        )
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expires_in_seconds)


def _link_signer(info: Info) -> LinkSigner:
    signer = info.context.services.link_signer
    if signer is None:
        raise ClientError("consumer links cannot be signed: no secret key is configured")
    return signer
