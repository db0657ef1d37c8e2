"""Re-encrypting every stored secret under the newest key of the ring (`keys rotate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Column, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.crypto import KeyRing, KeyRingError
from store.models import ConnectionRow, ConnectorRow, OAuthGrantRow, WebhookEndpointRow

BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class _Encrypted:
    """One encrypted column, the key of its rows, and how an error names a row."""

    what: str
    table: Table
    key: str
    column: str


def _encrypted(what: str, row: type, key: str, column: str) -> _Encrypted:
    return _Encrypted(what, cast(Table, row.__table__), key, column)  # type: ignore[attr-defined]


# Every column that holds a ciphertext; a new one belongs here, or rotation leaves it behind
# (tests/healthgraph/test_keys.py checks this list against the models).
ENCRYPTED_COLUMNS = (
    _encrypted("connection", ConnectionRow, "id", "credentials_ciphertext"),
    _encrypted("connector", ConnectorRow, "id", "oauth2_client_secret_ciphertext"),
    _encrypted(
        "OAuth2 grant of connection", OAuthGrantRow, "connection_id", "refresh_token_ciphertext"
    ),
    _encrypted(
        "OAuth2 grant of connection", OAuthGrantRow, "connection_id", "access_token_ciphertext"
    ),
    _encrypted("webhook endpoint", WebhookEndpointRow, "id", "secret_ciphertext"),
    _encrypted("webhook endpoint", WebhookEndpointRow, "id", "previous_secret_ciphertext"),
)


async def reencrypt_credentials(
    sessions: async_sessionmaker[AsyncSession], key_ring: KeyRing, *, batch_size: int = BATCH_SIZE
) -> int:
    """Re-encrypt every stored secret (connection credentials, OAuth2 client secrets and
    tokens, webhook signing secrets) under the ring's newest key.

    One transaction per batch, so a large catalog does not hold one long transaction; a
    rotation that stops half way can simply be run again. Returns how many ciphertexts were
    re-encrypted. Raises KeyRingError naming the row whose secret no key of the ring opens.
    """
    rotated = 0
    for encrypted in ENCRYPTED_COLUMNS:
        rotated += await _reencrypt_column(sessions, key_ring, encrypted, batch_size)
    return rotated


async def _reencrypt_column(
    sessions: async_sessionmaker[AsyncSession],
    key_ring: KeyRing,
    encrypted: _Encrypted,
    batch_size: int,
) -> int:
    key: Column[int] = encrypted.table.c[encrypted.key]
    column: Column[bytes] = encrypted.table.c[encrypted.column]
    rotated, after = 0, 0
    while True:
        async with sessions.begin() as session:
            rows = (
                await session.execute(
                    select(key, column)
                    .where(column.is_not(None), key > after)
                    .order_by(key)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                return rotated
            params = []
            for row_key, ciphertext in rows:
                try:
                    new = key_ring.rotate(ciphertext)
                except KeyRingError as exc:
                    raise KeyRingError(f"{encrypted.what} {row_key}: {exc}") from exc
                params.append({"b_key": row_key, "b_old": ciphertext, "b_new": new})
            # Compare-and-set: a secret replaced meanwhile (by apply, the API or a token
            # refresh) is already under the newest key and must not be overwritten with the
            # old one.
            await (await session.connection()).execute(
                update(encrypted.table)
                .where(key == bindparam("b_key"), column == bindparam("b_old"))
                .values({encrypted.column: bindparam("b_new")}),
                params,
            )
        rotated += len(rows)
        after = rows[-1][0]
