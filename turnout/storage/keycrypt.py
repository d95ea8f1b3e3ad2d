"""API keys at rest: AES-256-GCM encryption and a keyed lookup hash.

Both keys are derived from TURNOUT_SECRET_KEY (any string of 16+ characters) with
HMAC-SHA256 under distinct labels, so the encryption key and the hash key differ.
The ciphertext is bound to the key's row id (GCM associated data): a ciphertext
copied onto another row does not decrypt. Rotating the secret re-encrypts every key:
`turnout restore --old-secret-key` (turnout/backup.py).
"""

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_KEY_ENV = "TURNOUT_SECRET_KEY"
MIN_SECRET_LENGTH = 16
_NONCE_BYTES = 12


class KeyCipherError(ValueError):
    """A stored key cannot be decrypted: wrong TURNOUT_SECRET_KEY or damaged row."""


class KeyCipher:
    """Encrypts, decrypts and hashes API keys under one secret."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"{SECRET_KEY_ENV} must be at least {MIN_SECRET_LENGTH} characters")
        raw = secret.encode()
        self._aead = AESGCM(hmac.digest(raw, b"turnout api key encryption v1", "sha256"))
        self._hash_key = hmac.digest(raw, b"turnout api key lookup v1", "sha256")

    def lookup_hash(self, key: str) -> str:
        """Hex HMAC-SHA256 of `key`: equal keys give equal hashes, nothing else does."""
        return hmac.new(self._hash_key, key.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, key_id: str, key: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, key.encode(), key_id.encode())
        return base64.b64encode(nonce + sealed).decode()

    def decrypt(self, key_id: str, ciphertext: str) -> str:
        raw = base64.b64decode(ciphertext)
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise KeyCipherError(
                f"API key {key_id!r} cannot be decrypted: is {SECRET_KEY_ENV} the one it was "
                "stored with?"
            ) from None
        return plain.decode()
