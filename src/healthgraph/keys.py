"""`healthgraph keys rotate`: re-encrypt every stored credential under the newest key.

Rotation with HEALTHGRAPH_SECRET_KEYS: put a new key first (keep the old ones after it), run
`keys rotate`, then drop the old keys. For the embedded default, `add_key_to_file` and
`retire_old_keys` do the same to the generated key file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.crypto import KeyRing, KeyRingError, generate_key
from store.models import ConnectionRow

BATCH_SIZE = 500

_CONNECTIONS = cast(Table, ConnectionRow.__table__)


async def rotate_keys(
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


def read_key_file(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def add_key_to_file(path: Path) -> KeyRing:
    """Put a new key first in the key file (the old ones stay, to decrypt); the new ring."""
    keys = [generate_key(), *read_key_file(path)]
    _write_key_file(path, keys)
    return KeyRing(keys)


def retire_old_keys(path: Path) -> None:
    """Keep only the newest key, once `rotate_keys` has re-encrypted everything under it."""
    keys = read_key_file(path)
    _write_key_file(path, keys[:1])


def _write_key_file(path: Path, keys: list[str]) -> None:
    # Write a sibling with mode 0600 and rename over: the file is never half written.
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("".join(f"{key}\n" for key in keys))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
