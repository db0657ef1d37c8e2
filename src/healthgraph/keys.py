"""The embedded key file of `healthgraph keys rotate` (the re-encryption is
`store.keys.reencrypt_credentials`).

Rotation with HEALTHGRAPH_SECRET_KEYS: put a new key first (keep the old ones after it), run
`keys rotate`, then drop the old keys. For the embedded default, `add_key_to_file` and
`retire_old_keys` do the same to the generated key file.
"""

from __future__ import annotations

import os
from pathlib import Path

from store.crypto import KeyRing, generate_key


def read_key_file(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def add_key_to_file(path: Path) -> KeyRing:
    """Put a new key first in the key file (the old ones stay, to decrypt); the new ring."""
    keys = [generate_key(), *read_key_file(path)]
    _write_key_file(path, keys)
    return KeyRing(keys)


def retire_old_keys(path: Path) -> None:
    """Keep only the newest key, once everything is re-encrypted under it."""
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
