"""API tokens: random, shown once, stored only as a SHA-256 hash.

A token is 32 random bytes, so a plain hash is enough: there is nothing to brute-force.
Listing gives `TokenRecord`s, which have no hash and no token; `authenticate` reads the row on
every request, so a revoke holds from the next request on, on every replica.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.domain import TokenScope
from store.errors import NotFoundError, ValidationError
from store.models import ApiTokenRow, ConsumerRow, utcnow
from store.pagination import Page, PageRequest, keyset_page, paginate_rows

TOKEN_PREFIX = "hg_"  # noqa: S105 - a marker, not a secret
MAX_NAME_LENGTH = 200  # the column's width
MAX_EXPIRES_IN_DAYS = 3650
USE_RECORD_INTERVAL = timedelta(minutes=1)
"""`last_used_at` moves at most this often: it tells a stale token from a live one, and a write
per request would cost every request a write."""


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a presented token allows."""

    token_id: int
    scope: TokenScope
    consumer_id: int | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as it may be shown: everything but the token and its hash."""

    id: int
    name: str
    scope: TokenScope
    consumer_id: int | None
    consumer_external_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def expiry(days: int | None, now: datetime) -> datetime | None:
    """When a token made `now` to live `days` expires (None: never); `days` in 1..3650."""
    if days is None:
        return None
    if not 1 <= days <= MAX_EXPIRES_IN_DAYS:
        raise ValidationError(
            "expires_in_days", days, f"{days} is out of range; use 1..{MAX_EXPIRES_IN_DAYS}"
        )
    return now + timedelta(days=days)


async def create_token(
    session: AsyncSession,
    *,
    scope: TokenScope,
    consumer_external_id: str | None = None,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[str, TokenGrant]:
    """A new token and its grant; the plaintext exists only in the return value."""
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError("name", name, f"longer than {MAX_NAME_LENGTH} characters")
    consumer_id = None
    if consumer_external_id is not None:
        consumer_id = await session.scalar(
            select(ConsumerRow.id).where(ConsumerRow.external_id == consumer_external_id)
        )
        if consumer_id is None:
            raise NotFoundError("consumer", consumer_external_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiTokenRow(
        name=name,
        token_hash=hash_token(token),
        scope=scope,
        consumer_id=consumer_id,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return token, TokenGrant(token_id=row.id, scope=scope, consumer_id=consumer_id)


async def authenticate(session: AsyncSession, token: str) -> TokenGrant | None:
    """The grant of a live token (not revoked, not expired), or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = await session.scalar(
        select(ApiTokenRow).where(ApiTokenRow.token_hash == hash_token(token))
    )
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return TokenGrant(token_id=row.id, scope=row.scope, consumer_id=row.consumer_id)


def _within(consumer_id: int | None) -> tuple[ColumnElement[bool], ...]:
    """The condition that keeps to one consumer's tokens, or none."""
    return () if consumer_id is None else (ApiTokenRow.consumer_id == consumer_id,)


# TokenRecord's fields in its order: never the hash.
_RECORD_COLUMNS: tuple[Any, ...] = (
    ApiTokenRow.id,
    ApiTokenRow.name,
    ApiTokenRow.scope,
    ApiTokenRow.consumer_id,
    ConsumerRow.external_id,
    ApiTokenRow.created_at,
    ApiTokenRow.expires_at,
    ApiTokenRow.revoked_at,
    ApiTokenRow.last_used_at,
)


def _records(*conditions: ColumnElement[bool]) -> Select[Any]:
    """Core rows, not entities, so a row this session holds cannot hide a change another
    statement made (a revoke)."""
    return (
        select(*_RECORD_COLUMNS)
        .outerjoin(ConsumerRow, ConsumerRow.id == ApiTokenRow.consumer_id)
        .where(*conditions)
    )


async def list_tokens(
    session: AsyncSession, page: PageRequest, *, consumer_id: int | None = None
) -> Page[TokenRecord]:
    """Tokens in the order they were made, revoked and expired ones included; with
    `consumer_id`, only the tokens limited to that consumer."""
    keyset = keyset_page(_records(*_within(consumer_id)), ApiTokenRow.id, page.after is not None)
    return await paginate_rows(session, keyset, page, lambda row: TokenRecord(*row))


async def count_tokens(session: AsyncSession, *, consumer_id: int | None = None) -> int:
    """How many tokens `list_tokens` pages through."""
    total = await session.scalar(
        select(func.count()).select_from(ApiTokenRow).where(*_within(consumer_id))
    )
    return total or 0


async def get_token(
    session: AsyncSession, token_id: int, *, consumer_id: int | None = None
) -> TokenRecord:
    """One token; NotFoundError when there is none by that id (within `consumer_id`'s)."""
    found = (
        await session.execute(_records(ApiTokenRow.id == token_id, *_within(consumer_id)))
    ).first()
    if found is None:
        raise NotFoundError("token", token_id)
    return TokenRecord(*found)


async def revoke_token(
    session: AsyncSession, token_id: int, *, consumer_id: int | None = None
) -> TokenRecord:
    """Revoke a token from now on; revoking it again keeps the first time. NotFoundError when
    there is no token by that id (within `consumer_id`'s)."""
    await session.execute(
        update(ApiTokenRow)
        .where(
            ApiTokenRow.id == token_id,
            ApiTokenRow.revoked_at.is_(None),
            *_within(consumer_id),
        )
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return await get_token(session, token_id, consumer_id=consumer_id)


async def record_use(session: AsyncSession, token_id: int, at: datetime) -> bool:
    """Set the token's `last_used_at` to `at` unless it moved less than USE_RECORD_INTERVAL
    before (by any process); whether it was written."""
    result = await session.execute(
        update(ApiTokenRow)
        .where(
            ApiTokenRow.id == token_id,
            or_(
                ApiTokenRow.last_used_at.is_(None),
                ApiTokenRow.last_used_at <= at - USE_RECORD_INTERVAL,
            ),
        )
        .values(last_used_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
