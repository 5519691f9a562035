"""Transit keys: encrypt and decrypt for callers (another vault's root key, above all)
with AES-256-GCM keys kept in the keyring, so they are sealed with it and never leave.

Ciphertexts look like Vault's (``vault:v<version>:<base64>``) so that Vault's transit
clients, and keysafe's own transit unseal source, work unchanged. Each is bound to its
key's name: a ciphertext of one key does not open under another.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import TypeVar

from keysafe.crypto.envelope import DecryptionFailed, generate_key, open_sealed, seal
from keysafe.crypto.keyring import Keyring
from keysafe.errors import InvalidInput, NotFound

__all__ = ["MAX_PLAINTEXT_BYTES", "TransitService", "check_key_name"]

T = TypeVar("T")

MAX_PLAINTEXT_BYTES = 32 * 1024  # transit wraps keys, not files
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PREFIX = "vault:v"  # persisted in callers' ciphertexts: never change


def check_key_name(name: str) -> str:
    """``name`` if it is a valid transit key name; raises InvalidInput."""
    if not _NAME.fullmatch(name):
        raise InvalidInput("a transit key name is 1-64 letters, digits, '_', '.' or '-'")
    return name


def _aad(name: str) -> bytes:
    return b"keysafe:transit:v1:" + name.encode()


class TransitService:
    """Named keys in the keyring: create, encrypt, decrypt. Authorisation and audit are
    the caller's (the route), as for every service."""

    def __init__(
        self,
        keyring: Callable[[], Keyring],
        change_keyring: Callable[[Callable[[Keyring], bool]], bool],
    ) -> None:
        self._keyring = keyring
        self._change = change_keyring

    def create(self, name: str) -> bool:
        """Create key ``name`` (version 1); False when it already exists (unchanged)."""
        check_key_name(name)

        def add(ring: Keyring) -> bool:
            if name in ring.transit_keys:
                return False
            ring.transit_keys[name] = {1: generate_key()}
            return True

        return self._change(add)

    def encrypt(self, name: str, plaintext_b64: str) -> tuple[str, int]:
        """The ciphertext of the base64 ``plaintext_b64`` and the key version used."""
        versions = self._versions(name)
        plaintext = _b64(plaintext_b64, "plaintext")
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            raise InvalidInput(f"plaintext is limited to {MAX_PLAINTEXT_BYTES} bytes")
        version = max(versions)
        sealed = seal(versions[version], plaintext, _aad(name))
        return f"{_PREFIX}{version}:{base64.b64encode(sealed).decode()}", version

    def decrypt(self, name: str, ciphertext: str) -> str:
        """The base64 plaintext of ``ciphertext``; one vague InvalidInput on any mismatch."""
        versions = self._versions(name)
        head, _, body = ciphertext.removeprefix(_PREFIX).partition(":")
        key = versions.get(int(head)) if ciphertext.startswith(_PREFIX) and head.isdigit() else None
        if key is None:
            raise InvalidInput("invalid ciphertext")
        try:
            plaintext = open_sealed(key, _b64(body, "ciphertext"), _aad(name))
        except DecryptionFailed as exc:
            raise InvalidInput("invalid ciphertext") from exc
        return base64.b64encode(plaintext).decode()

    def _versions(self, name: str) -> dict[int, bytes]:
        versions = self._keyring().transit_keys.get(check_key_name(name))
        if not versions:
            raise NotFound(f"no transit key named {name!r}")
        return versions


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64") from exc
