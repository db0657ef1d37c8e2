"""OAuth2: the connector's app, and each connection's grant with its rotating tokens.

A refresh token that rotates dies the moment it is used; a refresh that runs twice, or whose
answer is not saved, kills the customer's connection for good. So a refresh is done only by
the holder of the grant's *refresh lease*, a claim written and committed in a short
transaction of its own (atomic on both backends, so it holds across threads, processes and
workers), and the new tokens are committed, encrypted, before the access token is used:

    take_refresh_lease → (the token endpoint) → save_refreshed_tokens | mark_grant_dead

No transaction stays open while the token endpoint answers. The lease outlives the token
request's timeout many times over; a holder that dies mid-refresh leaves it to expire, and
whoever comes next refreshes with the stored token. If the dead holder had already been
answered, that token was rotated away: the provider refuses it (`invalid_grant`), and
`refresh_token_unchanged` tells that apart from another holder having rotated it meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store import validation
from store.crypto import KeyRing
from store.errors import ValidationError
from store.heartbeat import fill, url_problem
from store.models import OAuthGrantRow

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
GRANT_TYPES = ("refresh_token", "client_credentials")
MAX_SCOPES = 50
APP_FIELDS = ("token_url", "client_id", "scopes", "auth_method")
# Three times what a token request may take (probes.oauth's timeout): a live holder never loses
# it mid-refresh, a dead one holds the grant back this long at most (a holder known dead, on
# the same machine, not even that: see take_refresh_lease's `dead_holder`).
REFRESH_LEASE_SECONDS = 30.0

_GRANTS = cast(Table, OAuthGrantRow.__table__)


def oauth2_app(value: object) -> dict[str, Any]:
    """A connector's OAuth2 app (no secret): token_url, client_id, scopes, auth_method."""
    app = validation.mapping("oauth2", value)
    for key in app:
        if key not in APP_FIELDS:
            raise ValidationError(
                f"oauth2.{key}", app[key], f"unknown key; expected one of {', '.join(APP_FIELDS)}"
            )
    token_url = app.get("token_url")
    if not isinstance(token_url, str) or not token_url:
        raise ValidationError("oauth2.token_url", token_url, "is required: the token endpoint")
    problem = url_problem(token_url, None)
    if problem is None and not token_url.startswith(("https://", "http://", "{params.")):
        problem = f"{token_url!r} is not an http(s) URL"
    if problem:
        raise ValidationError("oauth2.token_url", token_url, problem)
    client_id = validation.text("oauth2.client_id", app.get("client_id"), 1000)
    scopes = app.get("scopes", [])
    if (
        not isinstance(scopes, list)
        or len(scopes) > MAX_SCOPES
        or not all(isinstance(s, str) and s and " " not in s for s in scopes)
    ):
        raise ValidationError(
            "oauth2.scopes", scopes, f"must be a list of at most {MAX_SCOPES} scope names"
        )
    auth_method = app.get("auth_method", AUTH_METHODS[0])
    if auth_method not in AUTH_METHODS:
        raise ValidationError(
            "oauth2.auth_method", auth_method, f"must be one of {', '.join(AUTH_METHODS)}"
        )
    return {
        "token_url": token_url,
        "client_id": client_id,
        "scopes": list(scopes),
        "auth_method": auth_method,
    }


def client_secret(value: object) -> str:
    """A client secret: one line, as a token endpoint takes it. Never echoed in errors."""
    if not isinstance(value, str) or not value or len(value) > 4000:
        raise ValidationError("oauth2.client_secret", "<redacted>", "must be a non-empty string")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError(
            "oauth2.client_secret", "<redacted>", "must not contain control characters"
        )
    return value


def seed_digest(refresh_token: str) -> str:
    """What identifies a catalog's seed refresh token without keeping it: its SHA-256.

    A refresh token is a long random string, so its hash reveals nothing; and unlike a keyed
    hash it survives `keys rotate` (a changed digest would put the old seed back over the
    rotated token).
    """
    return hashlib.sha256(b"healthgraph-oauth-seed\0" + refresh_token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OAuthGrant:
    """A connection's grant, decrypted. repr never shows a token."""

    connection_id: int
    grant_type: str
    generation: int
    refresh_token: str | None = field(repr=False)
    access_token: str | None = field(repr=False)
    access_token_expires_at: datetime | None
    refresh_token_expires_at: datetime | None
    dead_reason: str | None
    seed_digest: str | None


async def load_grant(
    session: AsyncSession, connection_id: int, key_ring: KeyRing
) -> OAuthGrant | None:
    """The grant as it is stored now (its own statement: never the identity map's copy)."""
    row = (
        await session.execute(select(_GRANTS).where(_GRANTS.c.connection_id == connection_id))
    ).one_or_none()
    if row is None:
        return None
    return OAuthGrant(
        connection_id=row.connection_id,
        grant_type=row.grant_type,
        generation=row.generation,
        refresh_token=_decrypt(key_ring, row.refresh_token_ciphertext),
        access_token=_decrypt(key_ring, row.access_token_ciphertext),
        access_token_expires_at=row.access_token_expires_at,
        refresh_token_expires_at=row.refresh_token_expires_at,
        dead_reason=row.dead_reason if row.dead_at is not None else None,
        seed_digest=row.seed_digest,
    )


def _decrypt(key_ring: KeyRing, ciphertext: bytes | None) -> str | None:
    if ciphertext is None:
        return None
    return str(key_ring.decrypt(ciphertext)["token"])


def _encrypt(key_ring: KeyRing, token: str | None) -> bytes | None:
    return None if token is None else key_ring.encrypt({"token": token})


async def put_grant(
    session: AsyncSession,
    connection_id: int,
    *,
    grant_type: str,
    refresh_token: str | None,
    access_token: str | None,
    access_token_expires_at: datetime | None,
    seed: str | None,
    key_ring: KeyRing,
) -> None:
    """Replace the connection's grant (new credentials): a new generation, no lease, alive."""
    existing = await session.get(OAuthGrantRow, connection_id, populate_existing=True)
    row = existing or OAuthGrantRow(connection_id=connection_id, generation=0)
    row.grant_type = grant_type
    row.refresh_token_ciphertext = _encrypt(key_ring, refresh_token)
    row.access_token_ciphertext = _encrypt(key_ring, access_token)
    row.access_token_expires_at = access_token_expires_at
    row.refresh_token_expires_at = None
    row.seed_digest = None if seed is None else seed_digest(seed)
    row.generation = (row.generation or 0) + 1
    row.refreshing_by = row.refreshing_until = None
    row.dead_at = row.dead_reason = None
    if existing is None:
        session.add(row)
    await session.flush()


async def delete_grant(session: AsyncSession, connection_id: int) -> None:
    row = await session.get(OAuthGrantRow, connection_id)
    if row is not None:
        await session.delete(row)
        await session.flush()


async def take_refresh_lease(
    session: AsyncSession,
    connection_id: int,
    *,
    holder: str,
    now: datetime,
    generation: int,
    dead_holder: str | None = None,
) -> bool:
    """Claim the right to refresh `generation` of the grant (the one the holder read), unless
    someone else holds it or it changed since: whether this holder has it. `dead_holder`: a
    holder known to be gone (its process is not running), whose lease is taken over at once
    instead of waited out.

    One UPDATE, in the caller's (short) transaction: commit it before the token request.
    """
    result = await (await session.connection()).execute(
        update(_GRANTS)
        .where(
            _GRANTS.c.connection_id == connection_id,
            _GRANTS.c.generation == generation,
            _GRANTS.c.dead_at.is_(None),
            or_(
                _GRANTS.c.refreshing_until.is_(None),
                _GRANTS.c.refreshing_until <= now,
                _GRANTS.c.refreshing_by == holder,
                _GRANTS.c.refreshing_by == (dead_holder or holder),
            ),
        )
        .values(
            refreshing_by=holder,
            refreshing_until=now + timedelta(seconds=REFRESH_LEASE_SECONDS),
        )
    )
    return bool(result.rowcount)


async def refresh_leased(session: AsyncSession, connection_id: int, *, now: datetime) -> bool:
    """Whether someone holds the grant's refresh lease now."""
    return await lease_holder(session, connection_id, now=now) is not None


async def lease_holder(session: AsyncSession, connection_id: int, *, now: datetime) -> str | None:
    """Who holds the grant's refresh lease now, if anyone."""
    row = (
        await session.execute(
            select(_GRANTS.c.refreshing_by, _GRANTS.c.refreshing_until).where(
                _GRANTS.c.connection_id == connection_id
            )
        )
    ).one_or_none()
    if row is None or row.refreshing_until is None or row.refreshing_until <= now:
        return None
    return str(row.refreshing_by)


async def release_refresh_lease(session: AsyncSession, connection_id: int, *, holder: str) -> None:
    await session.execute(
        update(_GRANTS)
        .where(_GRANTS.c.connection_id == connection_id, _GRANTS.c.refreshing_by == holder)
        .values(refreshing_by=None, refreshing_until=None)
    )


async def save_refreshed_tokens(
    session: AsyncSession,
    connection_id: int,
    *,
    holder: str,
    used_generation: int,
    refresh_token: str | None,
    access_token: str,
    access_token_expires_at: datetime | None,
    refresh_token_expires_at: datetime | None,
    now: datetime,
    key_ring: KeyRing,
) -> bool:
    """Store what the token endpoint answered and give the lease back; whether it was stored.

    Only while this holder still holds the lease on the generation it refreshed: otherwise the
    grant was replaced meanwhile (new credentials) and this answer belongs to nobody. A
    provider that does not rotate answers without a refresh token: the stored one stays. Every
    save is a new generation, so a holder that leased the generation it read knows the grant
    is still as it read it.
    """
    values: dict[str, Any] = {
        "access_token_ciphertext": _encrypt(key_ring, access_token),
        "access_token_expires_at": access_token_expires_at,
        "refreshed_at": now,
        "refreshing_by": None,
        "refreshing_until": None,
        "generation": used_generation + 1,
    }
    if refresh_token_expires_at is not None:
        values["refresh_token_expires_at"] = refresh_token_expires_at
    if refresh_token is not None:
        values["refresh_token_ciphertext"] = _encrypt(key_ring, refresh_token)
    result = await (await session.connection()).execute(
        update(_GRANTS)
        .where(
            _GRANTS.c.connection_id == connection_id,
            _GRANTS.c.refreshing_by == holder,
            _GRANTS.c.generation == used_generation,
        )
        .values(values)
    )
    return bool(result.rowcount)


async def refresh_token_unchanged(
    session: AsyncSession, connection_id: int, *, generation: int
) -> bool:
    """After the provider refused a refresh token: is the grant still the generation that was
    used? (If not, another holder saved a refresh meanwhile, and the grant is alive.)"""
    stored = await session.scalar(
        select(_GRANTS.c.generation).where(_GRANTS.c.connection_id == connection_id)
    )
    return stored == generation


async def mark_grant_dead(
    session: AsyncSession,
    connection_id: int,
    *,
    holder: str,
    generation: int,
    reason: str,
    now: datetime,
) -> bool:
    """The provider refused the grant itself: no refresh is tried again until new credentials
    are set. Only the generation that was refused dies."""
    result = await (await session.connection()).execute(
        update(_GRANTS)
        .where(_GRANTS.c.connection_id == connection_id, _GRANTS.c.generation == generation)
        .values(
            dead_at=now,
            dead_reason=reason[: validation.MAX_TEXT_LENGTH],
            access_token_ciphertext=None,
            access_token_expires_at=None,
            refreshing_by=None,
            refreshing_until=None,
        )
    )
    return bool(result.rowcount)


def token_url_for(app: Mapping[str, Any], external_id: str, params: Mapping[str, str]) -> str:
    """The app's token URL with a connection's placeholders filled in (Zendesk's is per
    subdomain)."""
    return fill(str(app["token_url"]), external_id, params, url=True)
