"""The admin token: how it is made, hashed and checked.

Only the sha256 hex of a token is ever stored or compared, so neither the
database nor a timing side channel reveals the token itself.
"""

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32
"""256 bits of randomness: a token is unguessable, so a fast hash is enough."""


def generate_token() -> str:
    """A new random admin token, URL-safe, to be shown to the operator once."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The sha256 hex digest under which `token` is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, expected_hash: str) -> bool:
    """Whether `token` hashes to `expected_hash`, compared in constant time."""
    return hmac.compare_digest(hash_token(token), expected_hash.lower())
