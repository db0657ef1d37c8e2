"""Credentials at rest: Fernet with a key ring, newest key first, so keys rotate live."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from store.errors import StoreError


class KeyRingError(StoreError):
    """A key that is not a Fernet key, or a ciphertext no key of the ring opens."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class KeyRing:
    """Encrypts with the newest key, decrypts with any."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise KeyRingError(
                "the key ring is empty; generate a key with `healthgraph keys rotate`"
            )
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode("ascii")))
            except (ValueError, UnicodeEncodeError) as exc:
                # Never echo the key itself: name its position in the ring.
                raise KeyRingError(
                    f"key {position} of the ring is not a Fernet key (32 url-safe base64 bytes)"
                ) from exc
        self._ring = MultiFernet(fernets)
        self._keys = tuple(key.strip() for key in keys)
        self._newest_key = self._keys[0].encode("ascii")

    def __reduce__(self) -> tuple[type[KeyRing], tuple[tuple[str, ...]]]:
        # Pickled as its keys, for the worker's own probe processes (probes.pool).
        return (KeyRing, (self._keys,))

    def __repr__(self) -> str:
        return f"KeyRing({len(self._keys)} keys)"

    def encrypt(self, secret: dict[str, Any]) -> bytes:
        return self._ring.encrypt(json.dumps(secret, sort_keys=True).encode())

    def decrypt(self, ciphertext: bytes) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(self._ring.decrypt(ciphertext))
        except InvalidToken as exc:
            raise KeyRingError(
                "stored credentials cannot be decrypted with any key of the ring; "
                "was a key removed before `healthgraph keys rotate` ran?"
            ) from exc
        return value

    def derive(self, purpose: str) -> bytes:
        """A key for `purpose` (e.g. signing links) derived from the newest key of the ring."""
        return hmac.new(self._newest_key, purpose.encode(), hashlib.sha256).digest()

    def rotate(self, ciphertext: bytes) -> bytes:
        """Re-encrypt under the newest key."""
        try:
            return self._ring.rotate(ciphertext)
        except InvalidToken as exc:
            raise KeyRingError(
                "stored credentials cannot be decrypted with any key of the ring"
            ) from exc
