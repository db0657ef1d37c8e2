"""API tokens in the store: listed without secrets, revoked for good, last use to the minute,
on every backend."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from healthgraph.database import Database
from store import tokens
from store.domain import TokenScope
from store.errors import NotFoundError, ValidationError
from store.models import ApiTokenRow
from store.pagination import PageRequest
from tests.factories import GraphFactory

EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_list_pages_every_token_without_its_secret(db: Database) -> None:
    async with db.sessions.begin() as session:
        acme = await GraphFactory(session).consumer("acme", "Acme")
        first, _ = await tokens.create_token(session, scope=TokenScope.ADMIN, name="ops")
        second, grant = await tokens.create_token(
            session,
            scope=TokenScope.READ,
            consumer_external_id="acme",
            name="acme dashboard",
            expires_at=EXPIRES,
        )
        await tokens.create_token(session, scope=TokenScope.WRITE)
    async with db.sessions() as session:
        page = await tokens.list_tokens(session, PageRequest(first=2))
        rest = await tokens.list_tokens(session, PageRequest(first=2, after=page.end_cursor))
        mine = await tokens.list_tokens(session, PageRequest(), consumer_id=acme.id)
        counts = (
            await tokens.count_tokens(session),
            await tokens.count_tokens(session, consumer_id=acme.id),
        )
    listed = [*page.items, *rest.items]
    assert [(r.name, r.scope, r.consumer_external_id) for r in listed] == [
        ("ops", TokenScope.ADMIN, None),
        ("acme dashboard", TokenScope.READ, "acme"),
        ("", TokenScope.WRITE, None),
    ]
    assert page.has_next_page and not rest.has_next_page
    assert counts == (3, 1)
    assert mine.items == (listed[1],)
    record = listed[1]
    assert (record.id, record.consumer_id, record.expires_at) == (grant.token_id, acme.id, EXPIRES)
    assert (record.revoked_at, record.last_used_at) == (None, None)
    assert record.created_at.tzinfo is not None
    # Nothing a record holds is the token or its hash.
    shown = repr(listed)
    for secret in (first, second, tokens.hash_token(first), tokens.hash_token(second)):
        assert secret not in shown
    assert {f.name for f in dataclasses.fields(tokens.TokenRecord)}.isdisjoint(
        {"token", "token_hash", "hash"}
    )


async def test_revoke_is_final_idempotent_and_kept_within_a_consumer(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        acme = await graph.consumer("acme")
        globex = await graph.consumer("globex")
        token, grant = await tokens.create_token(
            session, scope=TokenScope.READ, consumer_external_id="acme"
        )
    async with db.sessions.begin() as session:
        with pytest.raises(NotFoundError, match=r"^token \d+ does not exist$"):
            await tokens.revoke_token(session, grant.token_id, consumer_id=globex.id)
    async with db.sessions() as session:
        assert await tokens.authenticate(session, token) is not None
    async with db.sessions.begin() as session:
        revoked = await tokens.revoke_token(session, grant.token_id, consumer_id=acme.id)
    assert revoked.revoked_at is not None
    async with db.sessions.begin() as session:
        again = await tokens.revoke_token(session, grant.token_id)
        assert await tokens.authenticate(session, token) is None
    assert again == revoked  # the first revocation's time stays
    async with db.sessions.begin() as session:
        with pytest.raises(NotFoundError, match=r"^token 999999 does not exist$"):
            await tokens.revoke_token(session, 999999)


async def test_last_use_moves_at_most_once_a_minute(db: Database) -> None:
    async with db.sessions.begin() as session:
        _, grant = await tokens.create_token(session, scope=TokenScope.READ)
    start = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    written = []
    for offset in (0, 30, 59, 60, 61, 90, 125):
        async with db.sessions.begin() as session:
            at = start + timedelta(seconds=offset)
            written.append(await tokens.record_use(session, grant.token_id, at))
    assert written == [True, False, False, True, False, False, True]
    async with db.sessions() as session:
        stored = await session.scalar(
            select(ApiTokenRow.last_used_at).where(ApiTokenRow.id == grant.token_id)
        )
    assert stored == start + timedelta(seconds=125)


async def test_bad_names_and_expiries_are_refused_by_field(db: Database) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert tokens.expiry(None, now) is None
    assert tokens.expiry(30, now) == datetime(2026, 1, 31, tzinfo=UTC)
    for days in (0, -1, 3651):
        with pytest.raises(ValidationError) as refused:
            tokens.expiry(days, now)
        assert (refused.value.field, str(refused.value)) == (
            "expires_in_days",
            f"expires_in_days: {days} is out of range; use 1..3650",
        )
    async with db.sessions.begin() as session:
        with pytest.raises(ValidationError, match=r"^name: longer than 200 characters$"):
            await tokens.create_token(session, scope=TokenScope.READ, name="x" * 201)
        assert await tokens.count_tokens(session) == 0
