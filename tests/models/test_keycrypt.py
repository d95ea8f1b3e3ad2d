"""API key encryption at rest: round trip, binding to the row id, keyed hashes."""

import pytest

from turnout.storage.keycrypt import KeyCipher, KeyCipherError

SECRET = "a-secret-of-sufficient-length"


def test_round_trip_and_fresh_nonces() -> None:
    cipher = KeyCipher(SECRET)
    one, two = cipher.encrypt("id1", "tk_key"), cipher.encrypt("id1", "tk_key")
    assert one != two and "tk_key" not in one
    assert cipher.decrypt("id1", one) == cipher.decrypt("id1", two) == "tk_key"


def test_a_ciphertext_moved_to_another_row_or_secret_does_not_decrypt() -> None:
    token = KeyCipher(SECRET).encrypt("id1", "tk_key")
    with pytest.raises(KeyCipherError):
        KeyCipher(SECRET).decrypt("id2", token)
    with pytest.raises(KeyCipherError, match="TURNOUT_SECRET_KEY"):
        KeyCipher("another-secret-of-length").decrypt("id1", token)


def test_lookup_hash_is_keyed_and_stable() -> None:
    a, b = KeyCipher(SECRET), KeyCipher("another-secret-of-length")
    assert a.lookup_hash("k") == KeyCipher(SECRET).lookup_hash("k")
    assert a.lookup_hash("k") != a.lookup_hash("k2")
    assert a.lookup_hash("k") != b.lookup_hash("k")


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        KeyCipher("short")
