"""Key rotation: stored credentials move to the newest key, batch by batch, on both backends."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import LargeBinary, select

from healthgraph.database import Database
from healthgraph.keys import add_key_to_file, read_key_file, retire_old_keys
from store.crypto import KeyRing, KeyRingError, generate_key
from store.keys import ENCRYPTED_COLUMNS, reencrypt_credentials
from store.models import (
    Base,
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    OAuthGrantRow,
    WebhookEndpointRow,
)

SECRETS = [{"kind": "bearer", "token": f"token-{n}"} for n in range(5)]


async def add_credentials(db: Database, ciphertexts: list[bytes | None]) -> list[int]:
    async with db.sessions.begin() as session:
        consumer = ConsumerRow(external_id="acme", name="Acme")
        connector = ConnectorRow(slug="q", name="Q", category="accounting", heartbeat={})
        session.add_all([consumer, connector])
        await session.flush()
        rows = [
            ConnectionRow(
                consumer_id=consumer.id,
                connector_id=connector.id,
                name=f"connection {n}",
                credentials_ciphertext=ciphertext,
            )
            for n, ciphertext in enumerate(ciphertexts)
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def stored(db: Database) -> dict[int, bytes]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(ConnectionRow.id, ConnectionRow.credentials_ciphertext).where(
                ConnectionRow.credentials_ciphertext.is_not(None)
            )
        )
        return {connection_id: ciphertext for connection_id, ciphertext in rows.all()}


async def test_rotation_moves_every_ciphertext_to_the_newest_key(db: Database) -> None:
    old, new = generate_key(), generate_key()
    old_ring = KeyRing([old])
    await add_credentials(db, [old_ring.encrypt(secret) for secret in SECRETS] + [None])
    before = await stored(db)
    assert len(before) == 5

    # Before: the ring [new, old] opens them, the new key alone does not.
    for secret, ciphertext in zip(SECRETS, before.values(), strict=True):
        assert KeyRing([new, old]).decrypt(ciphertext) == secret
        with pytest.raises(KeyRingError):
            KeyRing([new]).decrypt(ciphertext)

    assert await reencrypt_credentials(db.sessions, KeyRing([new, old]), batch_size=2) == 5

    after = await stored(db)
    assert after.keys() == before.keys()
    for secret, ciphertext in zip(SECRETS, after.values(), strict=True):
        assert KeyRing([new]).decrypt(ciphertext) == secret
        with pytest.raises(KeyRingError):
            old_ring.decrypt(ciphertext)

    # Running it again is harmless.
    assert await reencrypt_credentials(db.sessions, KeyRing([new]), batch_size=2) == 5


async def test_nothing_to_rotate(db: Database) -> None:
    assert await reencrypt_credentials(db.sessions, KeyRing([generate_key()])) == 0


async def test_a_ciphertext_no_key_opens_is_named_and_nothing_leaks(db: Database) -> None:
    ring = KeyRing([generate_key()])
    stranger = KeyRing([generate_key()]).encrypt({"kind": "bearer", "token": "CANARY-x"})
    ids = await add_credentials(db, [ring.encrypt(SECRETS[0]), stranger])
    with pytest.raises(KeyRingError, match=f"^connection {ids[1]}: stored credentials cannot"):
        await reencrypt_credentials(db.sessions, ring)


def test_every_encrypted_column_is_rotated() -> None:
    # A new ciphertext column that rotation does not know would keep the old key alive.
    binary = {
        (table.name, column.name)
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    assert binary == {(encrypted.table.name, encrypted.column) for encrypted in ENCRYPTED_COLUMNS}


async def test_oauth2_and_webhook_secrets_move_to_the_newest_key(db: Database) -> None:
    old, new = generate_key(), generate_key()
    old_ring = KeyRing([old])
    secrets = {
        name: {"secret": f"{name}-canary"}
        for name in ("client", "refresh", "access", "hook", "previous")
    }
    [connection_id] = await add_credentials(db, [old_ring.encrypt(SECRETS[0])])
    async with db.sessions.begin() as session:
        connector = await session.scalar(select(ConnectorRow))
        assert connector is not None
        connector.oauth2_client_secret_ciphertext = old_ring.encrypt(secrets["client"])
        session.add_all(
            [
                OAuthGrantRow(
                    connection_id=connection_id,
                    grant_type="refresh_token",
                    refresh_token_ciphertext=old_ring.encrypt(secrets["refresh"]),
                    access_token_ciphertext=old_ring.encrypt(secrets["access"]),
                ),
                WebhookEndpointRow(
                    url="https://hooks.example.com/a",
                    secret_ciphertext=old_ring.encrypt(secrets["hook"]),
                    previous_secret_ciphertext=old_ring.encrypt(secrets["previous"]),
                ),
                WebhookEndpointRow(
                    url="https://hooks.example.com/b",
                    secret_ciphertext=old_ring.encrypt(secrets["hook"]),
                ),
            ]
        )

    assert await reencrypt_credentials(db.sessions, KeyRing([new, old]), batch_size=1) == 7

    newest = KeyRing([new])
    async with db.sessions() as session:
        client = await session.scalar(select(ConnectorRow.oauth2_client_secret_ciphertext))
        grant = (await session.execute(select(OAuthGrantRow))).scalar_one()
        hooks = list(
            await session.scalars(select(WebhookEndpointRow).order_by(WebhookEndpointRow.id))
        )
    assert client is not None and newest.decrypt(client) == secrets["client"]
    assert grant.refresh_token_ciphertext is not None and grant.access_token_ciphertext is not None
    assert newest.decrypt(grant.refresh_token_ciphertext) == secrets["refresh"]
    assert newest.decrypt(grant.access_token_ciphertext) == secrets["access"]
    assert [newest.decrypt(hook.secret_ciphertext) for hook in hooks] == [secrets["hook"]] * 2
    assert hooks[0].previous_secret_ciphertext is not None
    assert newest.decrypt(hooks[0].previous_secret_ciphertext) == secrets["previous"]
    assert hooks[1].previous_secret_ciphertext is None


async def test_a_webhook_secret_no_key_opens_is_named(db: Database) -> None:
    async with db.sessions.begin() as session:
        hook = WebhookEndpointRow(
            url="https://hooks.example.com/a",
            secret_ciphertext=KeyRing([generate_key()]).encrypt({"secret": "CANARY-x"}),
        )
        session.add(hook)
    with pytest.raises(
        KeyRingError, match=f"^webhook endpoint {hook.id}: stored credentials cannot"
    ):
        await reencrypt_credentials(db.sessions, KeyRing([generate_key()]))


def test_key_file_rotation(tmp_path: Path) -> None:
    path = tmp_path / "healthgraph.key"
    first = generate_key()
    path.write_text(first + "\n")
    path.chmod(0o600)
    ciphertext = KeyRing([first]).encrypt(SECRETS[0])

    ring = add_key_to_file(path)
    keys = read_key_file(path)
    assert len(keys) == 2 and keys[1] == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.decrypt(ciphertext) == SECRETS[0]
    rotated = ring.rotate(ciphertext)

    retire_old_keys(path)
    assert read_key_file(path) == keys[:1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing(read_key_file(path)).decrypt(rotated) == SECRETS[0]
    assert not (tmp_path / "healthgraph.key.tmp").exists()
