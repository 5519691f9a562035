"""AES-256-GCM recipes: the only module that touches AES.

Callers never choose a nonce: ``seal`` draws a fresh 96-bit nonce per message and
prepends it. Every failure to open (wrong key, tampered bytes, wrong associated data)
is the same vague ``DecryptionFailed``, so a caller cannot be turned into an oracle.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class DecryptionFailed(Exception):
    """Ciphertext, key or associated data do not match."""


def generate_key() -> bytes:
    """A fresh 256-bit key from the OS CSPRNG."""
    return os.urandom(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` bound to ``aad``; returns nonce || ciphertext."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Reverse ``seal``; raises DecryptionFailed on any mismatch."""
    if len(blob) < NONCE_BYTES + 16:
        raise DecryptionFailed("ciphertext too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed("decryption failed") from exc
