"""Mutations (write scope). Each validates in the store and writes in one transaction; a
refused input comes back as a GraphQL error naming the field, and nothing is half-written."""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from graphql_schema.context import Services
from graphql_schema.errors import ClientError
from graphql_schema.ids import decode_id
from graphql_schema.tokens import TokenMutation
from graphql_schema.types import (
    ConnectionNode,
    Connector,
    Consumer,
    Info,
    Sync,
    SyncActivation,
    Use,
)
from probes.check import check_connection
from probes.errors import BlockedAddressError, ProbeConfigError
from probes.scheduler import random_jitter
from store import commands, domain, scheduling
from store.errors import ConflictError, NotFoundError, ValidationError
from store.heartbeat import heartbeat_problems
from store.scheduling import DueCheck

T = TypeVar("T")

MAX_LINK_SECONDS = 30 * 86400
JITTER_RATIO = 0.1


log = logging.getLogger(__name__)


def _observe_check(
    services: Services, due: DueCheck, outcome: domain.CheckOutcome, seconds: float
) -> None:
    """Count a checkConnectionNow probe in the self-metrics, as the scheduler counts its own."""
    if services.check_observer is None:
        return
    try:
        services.check_observer.check_finished(
            str(due.heartbeat.get("kind", "http")), outcome, seconds
        )
    except Exception:  # metrics never fail a check
        log.exception("checkConnectionNow: check observer failed")


def _camel(snake: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), snake)


def _invalid(field: str, problem: str) -> GraphQLError:
    return GraphQLError(
        f"{field}: {problem}", extensions={"code": "BAD_USER_INPUT", "field": field}
    )


async def _write(info: Info, command: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `command` in its own transaction, turning store refusals into client errors."""
    info.context.viewer.require(domain.TokenScope.WRITE)
    try:
        return await info.context.write(command)
    except ValidationError as exc:
        field = ".".join(_camel(part) for part in exc.field.split("."))
        message = str(exc) if isinstance(exc, ConflictError) else None
        raise (
            GraphQLError(message, extensions={"code": "CONFLICT", "field": field})
            if message
            else _invalid(field, exc.problem)
        ) from None


async def _owned(info: Info, type_name: str, global_id: strawberry.ID) -> int:
    """The row id behind `global_id` if it exists and the token's tenant owns it.

    The same message either way, so a tenant cannot probe for others' ids.
    """
    row_id = decode_id(global_id, type_name)
    loaders = info.context.loaders
    viewer = info.context.viewer
    owner: int | None = None
    match type_name:
        case "Consumer":
            consumer = await loaders.consumer.load(row_id)
            owner = consumer.id if consumer else None
        case "Connection":
            connection = await loaders.connection.load(row_id)
            owner = connection.consumer_id if connection else None
        case "Use":
            use = await loaders.use.load(row_id)
            connection = await loaders.connection.load(use.connection_id) if use else None
            owner = connection.consumer_id if connection else None
        case "SyncActivation":
            activation = await loaders.sync_activation.load(row_id)
            owner = activation.consumer_id if activation else None
        case "Connector" | "Sync":
            viewer.require(domain.TokenScope.WRITE)
            if viewer.consumer_id is not None:
                raise ClientError(f"a token limited to one consumer cannot change {type_name}s")
            loader = loaders.connector if type_name == "Connector" else loaders.sync
            if await loader.load(row_id) is None:
                raise ClientError(f"{type_name} {global_id!r} does not exist")
            return row_id
    if owner is None or not viewer.sees_consumer(owner):
        raise ClientError(f"{type_name} {global_id!r} does not exist")
    return row_id


def _global_only(info: Info, what: str) -> None:
    info.context.viewer.require(domain.TokenScope.WRITE)
    if info.context.viewer.consumer_id is not None:
        raise ClientError(f"a token limited to one consumer cannot create {what}")


async def _check_target(info: Info, field: str, heartbeat: dict[str, Any] | None) -> None:
    """Refuse a heartbeat URL the outbound-address guard would block, before anything is saved."""
    guard = info.context.services.guard
    url = (heartbeat or {}).get("url")
    if guard is None or not isinstance(url, str) or heartbeat_problems(heartbeat or {}):
        return  # a malformed heartbeat is the store's to refuse, with its own message
    try:
        await guard.check_url(url.replace("{external_id}", "x"))
    except BlockedAddressError as exc:
        raise _invalid(f"{field}.url", str(exc)) from None
    except ProbeConfigError as exc:
        raise _invalid(f"{field}.url", str(exc)) from None


def _given(value: object) -> dict[str, Any]:
    """The fields of an input the client actually sent (UNSET ones left out)."""
    return {
        name: getattr(value, name)
        for name in value.__dataclass_fields__  # type: ignore[attr-defined]
        if getattr(value, name) is not strawberry.UNSET
    }


@strawberry.input(description="Heartbeat fields; on a connection they override the template.")
class HeartbeatInput:
    kind: domain.ProbeKind | None = strawberry.UNSET
    method: str | None = strawberry.UNSET
    url: str | None = strawberry.UNSET
    expected_status: list[int] | None = strawberry.UNSET
    timeout_seconds: float | None = strawberry.UNSET
    body_regex: str | None = strawberry.UNSET
    json_path: str | None = strawberry.UNSET
    json_equals: JSON | None = strawberry.UNSET

    def to_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in _given(self).items() if v is not None}
        if isinstance(fields.get("kind"), domain.ProbeKind):
            fields["kind"] = fields["kind"].value
        return fields


@strawberry.input
class CreateConsumerInput:
    external_id: str
    name: str
    email: str | None = None


@strawberry.input
class UpdateConsumerInput:
    external_id: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET


@strawberry.input
class CreateConnectorInput:
    slug: str
    name: str
    category: str
    heartbeat: HeartbeatInput | None = None


@strawberry.input
class UpdateConnectorInput:
    slug: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    category: str | None = strawberry.UNSET
    heartbeat: HeartbeatInput | None = strawberry.UNSET


@strawberry.input
class CreateConnectionInput:
    consumer_id: strawberry.ID
    connector_id: strawberry.ID
    name: str
    direction: domain.Direction = domain.Direction.OUTBOUND
    state: domain.ConnectionState = domain.ConnectionState.ACTIVE
    check_interval_seconds: int = commands.DEFAULT_CHECK_INTERVAL_SECONDS
    failure_threshold: int = commands.DEFAULT_FAILURE_THRESHOLD
    heartbeat: HeartbeatInput | None = None


@strawberry.input
class UpdateConnectionInput:
    connector_id: strawberry.ID | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    direction: domain.Direction | None = strawberry.UNSET
    state: domain.ConnectionState | None = strawberry.UNSET
    check_interval_seconds: int | None = strawberry.UNSET
    failure_threshold: int | None = strawberry.UNSET
    heartbeat: HeartbeatInput | None = strawberry.UNSET


@strawberry.enum
class CredentialKind(enum.Enum):
    BEARER = "bearer"
    BASIC = "basic"
    HEADER = "header"
    QUERY = "query"


@strawberry.input(description="Write-only: nothing ever reads these back.")
class CredentialsInput:
    kind: CredentialKind
    token: str | None = None
    username: str | None = None
    password: str | None = None
    name: str | None = None
    value: str | None = None

    def to_secret(self) -> dict[str, str]:
        secret = {"kind": self.kind.value}
        for field in ("token", "username", "password", "name", "value"):
            if getattr(self, field) is not None:
                secret[field] = getattr(self, field)
        return secret


@strawberry.input
class CreateUseInput:
    connection_id: strawberry.ID
    kind: str
    name: str


@strawberry.input
class UpdateUseInput:
    kind: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET


@strawberry.input
class SyncInput:
    name: str
    required_connector_ids: list[strawberry.ID]


@strawberry.input
class StepInput:
    step: domain.SyncStep
    complete: bool
    detail: str | None = None


@strawberry.type
class ConsumerLink:
    url: str
    expires_at: datetime


def _required(value: object, field: str) -> Any:
    if value is None:
        raise _invalid(field, "must not be null")
    return value


@strawberry.type
class Mutation(TokenMutation):
    @strawberry.mutation
    async def create_consumer(self, info: Info, input: CreateConsumerInput) -> Consumer:
        _global_only(info, "consumers")
        record = await _write(
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
        row_id = await _owned(info, "Consumer", id)
        values = _given(input)
        for field in ("external_id", "name"):
            if field in values:
                _required(values[field], _camel(field))
        record = await _write(info, lambda s: commands.update_consumer(s, row_id, **values))
        return Consumer.from_record(record)

    @strawberry.mutation(description="Delete a consumer, its connections, uses, activations.")
    async def delete_consumer(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await _owned(info, "Consumer", id)
        await _write(info, lambda s: commands.delete_consumer(s, row_id))
        return id

    @strawberry.mutation
    async def create_connector(self, info: Info, input: CreateConnectorInput) -> Connector:
        _global_only(info, "connectors")
        heartbeat = input.heartbeat.to_dict() if input.heartbeat else {}
        await _check_target(info, "heartbeat", heartbeat)
        record = await _write(
            info,
            lambda s: commands.create_connector(
                s, slug=input.slug, name=input.name, category=input.category, heartbeat=heartbeat
            ),
        )
        return Connector.from_record(record)

    @strawberry.mutation
    async def update_connector(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateConnectorInput,
    ) -> Connector:
        row_id = await _owned(info, "Connector", id)
        values = _given(input)
        for field in ("slug", "name", "category"):
            if field in values:
                _required(values[field], field)
        if "heartbeat" in values:
            values["heartbeat"] = values["heartbeat"].to_dict() if values["heartbeat"] else {}
            await _check_target(info, "heartbeat", values["heartbeat"])
        record = await _write(info, lambda s: commands.update_connector(s, row_id, **values))
        return Connector.from_record(record)

    @strawberry.mutation
    async def delete_connector(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await _owned(info, "Connector", id)
        await _write(info, lambda s: commands.delete_connector(s, row_id))
        return id

    @strawberry.mutation
    async def create_connection(
        self,
        info: Info,
        input: CreateConnectionInput,
    ) -> ConnectionNode:
        consumer_id = await _owned(info, "Consumer", input.consumer_id)
        connector_id = decode_id(input.connector_id, "Connector")
        heartbeat = input.heartbeat.to_dict() if input.heartbeat else {}
        await _check_target(info, "heartbeat", heartbeat)
        record = await _write(
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
        row_id = await _owned(info, "Connection", id)
        values = _given(input)
        for field, value in values.items():
            if field != "heartbeat":
                _required(value, _camel(field))
        if "connector_id" in values:
            values["connector_id"] = decode_id(values["connector_id"], "Connector")
        if "heartbeat" in values:
            values["heartbeat"] = values["heartbeat"].to_dict() if values["heartbeat"] else {}
            await _check_target(info, "heartbeat", values["heartbeat"])
        record = await _write(info, lambda s: commands.update_connection(s, row_id, **values))
        await info.context.services.broadcaster.publish([record.id])
        return ConnectionNode.from_record(record)

    @strawberry.mutation
    async def delete_connection(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await _owned(info, "Connection", id)
        await _write(info, lambda s: commands.delete_connection(s, row_id))
        return id

    @strawberry.mutation(description="Set (or with null, remove) a connection's credentials.")
    async def set_connection_credentials(
        self, info: Info, id: strawberry.ID, credentials: CredentialsInput | None
    ) -> ConnectionNode:
        row_id = await _owned(info, "Connection", id)
        key_ring = info.context.services.key_ring()
        secret = credentials.to_secret() if credentials else None
        record = await _write(
            info,
            lambda s: commands.set_connection_credentials(
                s, row_id, secret=secret, key_ring=key_ring
            ),
        )
        return ConnectionNode.from_record(record)

    @strawberry.mutation
    async def create_use(self, info: Info, input: CreateUseInput) -> Use:
        connection_id = await _owned(info, "Connection", input.connection_id)
        record = await _write(
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
        row_id = await _owned(info, "Use", id)
        values = {k: _required(v, k) for k, v in _given(input).items()}
        record = await _write(info, lambda s: commands.update_use(s, row_id, **values))
        return Use.from_record(record)

    @strawberry.mutation
    async def delete_use(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await _owned(info, "Use", id)
        await _write(info, lambda s: commands.delete_use(s, row_id))
        return id

    @strawberry.mutation(description="The app that runs a use reports how its last run went.")
    async def report_use_run(
        self, info: Info, use_id: strawberry.ID, success: bool, error: str | None = None
    ) -> Use:
        row_id = await _owned(info, "Use", use_id)
        now = datetime.now(UTC)
        record = await _write(
            info, lambda s: commands.report_use_run(s, row_id, success=success, error=error, at=now)
        )
        return Use.from_record(record)

    @strawberry.mutation(description="Probe the connection now and return it, fresh.")
    async def check_connection_now(self, info: Info, id: strawberry.ID) -> ConnectionNode:
        row_id = await _owned(info, "Connection", id)
        info.context.viewer.require(domain.TokenScope.WRITE)
        services = info.context.services
        connection = await info.context.loaders.connection.load(row_id)
        assert connection is not None
        if connection.direction is domain.Direction.INBOUND:
            raise ClientError(f"connection {id!r} is inbound: it calls in, it is not probed")
        if services.probe_context is None:
            raise ClientError("checks cannot run right now: the service is starting or stopping")
        due = await info.context.read(lambda s: scheduling.load_due_check(s, row_id))
        assert due is not None
        started = time.perf_counter()
        outcome = await check_connection(due, services.probe_context, services.credentials_key_ring)
        seconds = time.perf_counter() - started
        await _write(
            info,
            lambda s: scheduling.record_unclaimed_outcomes(
                s, outcomes=[(row_id, outcome)], jitter=random_jitter(JITTER_RATIO)
            ),
        )
        _observe_check(services, due, outcome, seconds)
        await services.broadcaster.publish([row_id])
        fresh = await info.context.loaders.connection.load(row_id)
        assert fresh is not None
        return ConnectionNode.from_record(fresh)

    @strawberry.mutation(description="An inbound connection calls in: it is up for one interval.")
    async def record_inbound_heartbeat(
        self, info: Info, connection_id: strawberry.ID
    ) -> ConnectionNode:
        row_id = await _owned(info, "Connection", connection_id)
        now = datetime.now(UTC)
        record = await _write(info, lambda s: commands.record_inbound_heartbeat(s, row_id, at=now))
        await info.context.services.broadcaster.publish([record.id])
        return ConnectionNode.from_record(record)

    @strawberry.mutation
    async def create_sync(self, info: Info, input: SyncInput) -> Sync:
        _global_only(info, "syncs")
        required = [decode_id(i, "Connector") for i in input.required_connector_ids]
        record = await _write(
            info,
            lambda s: commands.create_sync(s, name=input.name, required_connector_ids=required),
        )
        return Sync.from_record(record)

    @strawberry.mutation
    async def update_sync(self, info: Info, id: strawberry.ID, input: SyncInput) -> Sync:
        row_id = await _owned(info, "Sync", id)
        required = [decode_id(i, "Connector") for i in input.required_connector_ids]
        record = await _write(
            info,
            lambda s: commands.update_sync(
                s, row_id, name=input.name, required_connector_ids=required
            ),
        )
        return Sync.from_record(record)

    @strawberry.mutation
    async def delete_sync(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await _owned(info, "Sync", id)
        await _write(info, lambda s: commands.delete_sync(s, row_id))
        return id

    @strawberry.mutation
    async def create_sync_activation(
        self, info: Info, sync_id: strawberry.ID, consumer_id: strawberry.ID
    ) -> SyncActivation:
        consumer_row = await _owned(info, "Consumer", consumer_id)
        sync_row = decode_id(sync_id, "Sync")
        record = await _write(
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
        row_id = await _owned(info, "SyncActivation", id)
        wanted = {s.step: (s.complete, s.detail) for s in steps}
        if len(wanted) != len(steps):
            raise _invalid("steps", "lists a step twice")
        record = await _write(
            info, lambda s: commands.update_sync_activation(s, row_id, steps=wanted)
        )
        return SyncActivation.from_record(record)

    @strawberry.mutation
    async def delete_sync_activation(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        row_id = await _owned(info, "SyncActivation", id)
        await _write(info, lambda s: commands.delete_sync_activation(s, row_id))
        return id

    @strawberry.mutation(description="A signed link to the consumer's connection page.")
    async def consumer_link(
        self, info: Info, consumer_id: strawberry.ID, expires_in_seconds: int = 86400
    ) -> ConsumerLink:
        info.context.viewer.require(domain.TokenScope.WRITE)
        row_id = await _owned(info, "Consumer", consumer_id)
        if not 60 <= expires_in_seconds <= MAX_LINK_SECONDS:
            raise _invalid(
                "expiresInSeconds",
                f"{expires_in_seconds} is out of range; use 60..{MAX_LINK_SECONDS}",
            )
        consumer = await info.context.loaders.consumer.load(row_id)
        if consumer is None:
            raise NotFoundError("consumer", consumer_id)
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(
            seconds=expires_in_seconds
        )
        signer = info.context.services.link_signer
        if signer is None:
            raise ClientError("consumer links cannot be signed: no secret key is configured")
        path = signer.path(consumer.external_id, expires_at)
        return ConsumerLink(url=f"{info.context.services.public_url}{path}", expires_at=expires_at)
