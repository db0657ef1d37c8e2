"""API tokens over GraphQL (admin scope): list them, mint one (shown once), revoke one.

An admin token limited to one consumer sees, mints and revokes only that consumer's tokens:
it cannot reach past its tenant, and a token it mints is limited to the same consumer. No
field ever returns a token except `createApiToken`'s `token`, once, nor its hash.
"""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_schema import relay
from graphql_schema.batching import First
from graphql_schema.context import Info
from graphql_schema.errors import ClientError
from graphql_schema.ids import decode_id, to_global_id
from graphql_schema.types import Consumer
from store import domain, tokens
from store.errors import NotFoundError, ValidationError

TYPE_NAME = "ApiToken"


@strawberry.type(description="An API token: what it may do and when it was used; never the token.")
class ApiToken:
    _record: strawberry.Private[tokens.TokenRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id(TYPE_NAME, self._record.id))

    @strawberry.field(description="The note it was made with, to recognise it by.")
    def name(self) -> str:
        return self._record.name

    @strawberry.field
    def scope(self) -> domain.TokenScope:
        return self._record.scope

    @strawberry.field(description="The one consumer it is limited to; null: every consumer.")
    async def consumer(self, info: Info) -> Consumer | None:
        if self._record.consumer_id is None:
            return None
        record = await info.context.loaders.consumer.load(self._record.consumer_id)
        return Consumer.from_record(record) if record else None

    @strawberry.field
    def created_at(self) -> datetime:
        return self._record.created_at

    @strawberry.field(description="Null: it never expires.")
    def expires_at(self) -> datetime | None:
        return self._record.expires_at

    @strawberry.field(description="When it was revoked; null while it is not.")
    def revoked_at(self) -> datetime | None:
        return self._record.revoked_at

    @strawberry.field(description="Its last request, to the minute; null: never used.")
    def last_used_at(self) -> datetime | None:
        return self._record.last_used_at


@strawberry.input
class CreateApiTokenInput:
    scope: domain.TokenScope
    consumer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Limit the token to this consumer."
    )
    name: str = ""
    expires_in_days: int | None = strawberry.field(
        default=None, description=f"1..{tokens.MAX_EXPIRES_IN_DAYS}; null: it never expires."
    )


@strawberry.type
class CreateApiTokenPayload:
    api_token: ApiToken
    token: str = strawberry.field(
        description="The token itself: shown here only, once. Only its hash is stored."
    )


def _admin_scope(info: Info) -> int | None:
    """The consumer the viewer's tokens are limited to (None: all); admin scope required."""
    viewer = info.context.viewer
    viewer.require(domain.TokenScope.ADMIN)
    return viewer.consumer_id


def _invalid(field: str, problem: str) -> GraphQLError:
    return GraphQLError(
        f"{field}: {problem}", extensions={"code": "BAD_USER_INPUT", "field": field}
    )


def _not_found(global_id: str) -> ClientError:
    # The same words for another tenant's token: an id reveals nothing.
    return ClientError(f"{TYPE_NAME} {global_id!r} does not exist")


def _missing_consumer(consumer_id: int | None) -> ClientError:
    return ClientError(f"Consumer {to_global_id('Consumer', consumer_id or 0)!r} does not exist")


async def _new_token_consumer(
    info: Info, requested: strawberry.ID | None
) -> tuple[int | None, str | None]:
    """The consumer (row id, external id) a new token is limited to: the one asked for, or
    else the minting token's own. A consumer-scoped admin may name no other consumer."""
    limited_to = info.context.viewer.consumer_id
    consumer_id = limited_to if requested is None else decode_id(requested, "Consumer")
    if consumer_id is None:
        return None, None
    consumer = await info.context.loaders.consumer.load(consumer_id)
    if consumer is None or (limited_to is not None and consumer_id != limited_to):
        raise _missing_consumer(consumer_id)
    return consumer_id, consumer.external_id


@strawberry.type
class TokenQuery:
    @strawberry.field(description="API tokens, oldest first, revoked ones included (admin).")
    async def api_tokens(
        self, info: Info, first: First = None, after: str | None = None
    ) -> relay.Connection[ApiToken]:
        consumer_id = _admin_scope(info)
        page = relay.page_request(first, after)
        listed = await info.context.read(
            lambda s: tokens.list_tokens(s, page, consumer_id=consumer_id)
        )
        return relay.to_connection(
            listed,
            lambda record: ApiToken(_record=record),
            lambda: info.context.read(lambda s: tokens.count_tokens(s, consumer_id=consumer_id)),
        )


@strawberry.type
class TokenMutation:
    @strawberry.mutation(description="Mint a token (admin); the payload shows it this once.")
    async def create_api_token(
        self, info: Info, input: CreateApiTokenInput
    ) -> CreateApiTokenPayload:
        _admin_scope(info)
        consumer_id, external_id = await _new_token_consumer(info, input.consumer_id)
        try:
            expires_at = tokens.expiry(input.expires_in_days, datetime.now(UTC))

            async def create(session: AsyncSession) -> tuple[str, tokens.TokenRecord]:
                token, grant = await tokens.create_token(
                    session,
                    scope=input.scope,
                    consumer_external_id=external_id,
                    name=input.name,
                    expires_at=expires_at,
                )
                return token, await tokens.get_token(session, grant.token_id)

            token, record = await info.context.write(create)
        except ValidationError as exc:
            field = {"expires_in_days": "expiresInDays"}.get(exc.field, exc.field)
            raise _invalid(f"input.{field}", exc.problem) from None
        except NotFoundError:  # the consumer went away meanwhile
            raise _missing_consumer(consumer_id) from None
        return CreateApiTokenPayload(api_token=ApiToken(_record=record), token=token)

    @strawberry.mutation(
        description="Revoke a token (admin): refused from its next request on. Idempotent."
    )
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> ApiToken:
        consumer_id = _admin_scope(info)
        token_id = decode_id(id, TYPE_NAME)
        try:
            record = await info.context.write(
                lambda s: tokens.revoke_token(s, token_id, consumer_id=consumer_id)
            )
        except NotFoundError:
            raise _not_found(id) from None
        return ApiToken(_record=record)
