"""Re-encrypting every stored credential under the newest key of the ring (`keys rotate`)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.crypto import KeyRing, KeyRingError
from store.models import ConnectionRow

BATCH_SIZE = 500

_CONNECTIONS = cast(Table, ConnectionRow.__table__)


async def reencrypt_credentials(
    sessions: async_sessionmaker[AsyncSession], key_ring: KeyRing, *, batch_size: int = BATCH_SIZE
) -> int:
    """Re-encrypt every stored credentials ciphertext under the ring's newest key.

    One transaction per batch, so a large catalog does not hold one long transaction; a
    rotation that stops half way can simply be run again. Returns how many were re-encrypted.
    Raises KeyRingError naming the connection whose credentials no key of the ring opens.
    """
    rotated, after_id = 0, 0
    while True:
        async with sessions.begin() as session:
            rows = (
                await session.execute(
                    select(_CONNECTIONS.c.id, _CONNECTIONS.c.credentials_ciphertext)
                    .where(
                        _CONNECTIONS.c.credentials_ciphertext.is_not(None),
                        _CONNECTIONS.c.id > after_id,
                    )
                    .order_by(_CONNECTIONS.c.id)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                return rotated
            params = []
            for connection_id, ciphertext in rows:
                try:
                    new = key_ring.rotate(ciphertext)
                except KeyRingError as exc:
                    raise KeyRingError(f"connection {connection_id}: {exc}") from exc
                params.append({"b_id": connection_id, "b_old": ciphertext, "b_new": new})
            # Compare-and-set: credentials replaced meanwhile (by apply or the API) are already
            # under the newest key and must not be overwritten with the old secret.
            await (await session.connection()).execute(
                update(_CONNECTIONS)
                .where(
                    _CONNECTIONS.c.id == bindparam("b_id"),
                    _CONNECTIONS.c.credentials_ciphertext == bindparam("b_old"),
                )
                .values(credentials_ciphertext=bindparam("b_new")),
                params,
            )
        rotated += len(rows)
        after_id = rows[-1][0]
