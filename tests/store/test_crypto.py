"""The credential key ring: encrypt with the newest key, decrypt with any, rotate."""

from __future__ import annotations

import pytest

from store.crypto import KeyRing, KeyRingError, generate_key

CANARY = {"kind": "bearer", "token": "canary-7f3e9a"}


def test_round_trip_and_ciphertext_hides_the_secret() -> None:
    ring = KeyRing([generate_key()])
    ciphertext = ring.encrypt(CANARY)
    assert b"canary" not in ciphertext
    assert ring.decrypt(ciphertext) == CANARY


def test_old_key_decrypts_until_rotation_drops_it() -> None:
    old, new = generate_key(), generate_key()
    stored = KeyRing([old]).encrypt(CANARY)
    both = KeyRing([new, old])
    assert both.decrypt(stored) == CANARY
    rotated = both.rotate(stored)
    assert KeyRing([new]).decrypt(rotated) == CANARY
    with pytest.raises(KeyRingError, match="cannot be decrypted with any key of the ring"):
        KeyRing([new]).decrypt(stored)


def test_bad_keys_are_named_by_position_never_echoed() -> None:
    with pytest.raises(KeyRingError) as caught:
        KeyRing([generate_key(), "not-a-key-hunter2"])
    assert str(caught.value) == "key 2 of the ring is not a Fernet key (32 url-safe base64 bytes)"
    with pytest.raises(KeyRingError, match="the key ring is empty"):
        KeyRing([])
