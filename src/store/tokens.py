"""API tokens: random, shown once, stored only as a SHA-256 hash.

A token is 32 random bytes, so a plain hash is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.domain import TokenScope
from store.errors import NotFoundError
from store.models import ApiTokenRow, ConsumerRow, utcnow

TOKEN_PREFIX = "hg_"  # noqa: S105 - a marker, not a secret


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a presented token allows."""

    token_id: int
    scope: TokenScope
    consumer_id: int | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    session: AsyncSession,
    *,
    scope: TokenScope,
    consumer_external_id: str | None = None,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[str, TokenGrant]:
    """A new token and its grant; the plaintext exists only in the return value."""
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


async def revoke_token(session: AsyncSession, token_id: int) -> None:
    row = await session.get(ApiTokenRow, token_id)
    if row is None:
        raise NotFoundError("token", token_id)
    row.revoked_at = utcnow()
