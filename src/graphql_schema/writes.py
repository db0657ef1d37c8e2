"""The mutations' way to the store: scope and tenant checks, one transaction per command, and
the store's refusals turned into GraphQL errors that name the field."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_schema.context import Info
from graphql_schema.errors import ClientError
from graphql_schema.ids import decode_id
from store import domain
from store.errors import ConflictError, ValidationError

T = TypeVar("T")


def camel(snake: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), snake)


def invalid(field: str, problem: str) -> GraphQLError:
    return GraphQLError(
        f"{field}: {problem}", extensions={"code": "BAD_USER_INPUT", "field": field}
    )


async def write(info: Info, command: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `command` in its own transaction, turning store refusals into client errors."""
    info.context.viewer.require(domain.TokenScope.WRITE)
    try:
        return await info.context.write(command)
    except ValidationError as exc:
        field = ".".join(camel(part) for part in exc.field.split("."))
        if isinstance(exc, ConflictError):
            raise GraphQLError(str(exc), extensions={"code": "CONFLICT", "field": field}) from None
        raise invalid(field, exc.problem) from None


async def owned(info: Info, type_name: str, global_id: strawberry.ID) -> int:
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


def global_only(info: Info, what: str) -> None:
    """Refuse a token limited to one consumer: `what` belongs to every consumer."""
    info.context.viewer.require(domain.TokenScope.WRITE)
    if info.context.viewer.consumer_id is not None:
        raise ClientError(f"a token limited to one consumer cannot create {what}")


def given(value: object) -> dict[str, Any]:
    """The fields of an input the client actually sent (UNSET ones left out)."""
    return {
        name: getattr(value, name)
        for name in value.__dataclass_fields__  # type: ignore[attr-defined]
        if getattr(value, name) is not strawberry.UNSET
    }


def required(value: object, field: str) -> Any:
    if value is None:
        raise invalid(field, "must not be null")
    return value
