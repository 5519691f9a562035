"""The key-encryption keyring and envelope encryption of secret values.

Layout (format version 1, persisted: only ever add versions):

- every secret version gets a fresh 256-bit data key (DEK);
- the value is sealed under the DEK with associated data ``ks1:val:`` + context;
- the DEK is sealed under the current key-encryption key (KEK) with ``ks1:dek:`` +
  context, so a wrapped key copied to another row fails to open as well;
- the keyring (all KEK versions plus the HMAC keys for tokens and audit) is serialised
  and sealed under the root key, which exists only in memory while unsealed.

Rotation follows "first key encrypts, any key decrypts": ``rotate`` adds a KEK version
used for new writes; old versions stay to open old rows until ``rewrap`` moves them.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from keysafe.crypto.envelope import DecryptionFailed, generate_key, open_sealed, seal

ENVELOPE_FORMAT = 1
_KEYRING_AAD = b"keysafe:keyring:v1"


@dataclass(frozen=True, slots=True)
class Envelope:
    """What is stored for one encrypted value."""

    kek_version: int
    wrapped_dek: bytes
    ciphertext: bytes
    format: int = ENVELOPE_FORMAT


@dataclass
class Keyring:
    """KEK versions plus purpose-bound HMAC keys. Lives in memory only while unsealed."""

    keks: dict[int, bytes]
    token_hmac_key: bytes
    audit_hmac_key: bytes
    created: dict[int, float] = field(default_factory=dict)
    # JWT signing keys (plain dicts, owned by keysafe.access.jwt_tokens): sealed with the
    # rest of the keyring so that they never reach the database in clear.
    signing_keys: list[dict[str, Any]] = field(default_factory=list)
    # True for vaults whose audit chain was anchored when they were initialised: for
    # them an empty trail or a missing head means deleted events, never a new vault.
    # Sealed with the keyring, so whoever holds the database cannot clear it.
    audit_anchored: bool = False
    # With an auto-unseal source: the digest of the recovery key (``rootkey.recovery_
    # digest``), so recovery shares can be checked; sealed here so that whoever writes
    # the database cannot swap in a recovery key of their own.
    recovery_digest: bytes | None = None
    # Transit keys served to other vaults (name -> version -> AES key): they never leave
    # the keyring, as the KEKs never do.
    transit_keys: dict[str, dict[int, bytes]] = field(default_factory=dict)

    @classmethod
    def new(cls) -> Keyring:
        return cls(
            keks={1: generate_key()},
            token_hmac_key=generate_key(),
            audit_hmac_key=generate_key(),
            created={1: time.time()},
            audit_anchored=True,
        )

    @property
    def current_version(self) -> int:
        return max(self.keks)

    def rotate(self) -> int:
        """Add a KEK version that all new writes use; returns it."""
        version = self.current_version + 1
        self.keks[version] = generate_key()
        self.created[version] = time.time()
        return version

    # -- envelope encryption -------------------------------------------------------------

    def encrypt(self, plaintext: bytes, context: bytes) -> Envelope:
        """Seal ``plaintext`` under a fresh DEK bound to ``context`` (e.g. path + version)."""
        dek = generate_key()
        version = self.current_version
        return Envelope(
            kek_version=version,
            wrapped_dek=seal(self.keks[version], dek, b"ks1:dek:" + context),
            ciphertext=seal(dek, plaintext, b"ks1:val:" + context),
        )

    def decrypt(self, envelope: Envelope, context: bytes) -> bytes:
        """Open an envelope; raises DecryptionFailed if anything was altered or moved."""
        if envelope.format != ENVELOPE_FORMAT:
            raise DecryptionFailed(f"unknown envelope format {envelope.format}")
        kek = self.keks.get(envelope.kek_version)
        if kek is None:
            raise DecryptionFailed("unknown key version")
        dek = open_sealed(kek, envelope.wrapped_dek, b"ks1:dek:" + context)
        return open_sealed(dek, envelope.ciphertext, b"ks1:val:" + context)

    def rewrap(self, envelope: Envelope, context: bytes) -> Envelope:
        """The same value with its DEK re-wrapped under the current KEK (value untouched)."""
        kek = self.keks.get(envelope.kek_version)
        if kek is None:
            raise DecryptionFailed("unknown key version")
        dek = open_sealed(kek, envelope.wrapped_dek, b"ks1:dek:" + context)
        version = self.current_version
        return Envelope(
            kek_version=version,
            wrapped_dek=seal(self.keks[version], dek, b"ks1:dek:" + context),
            ciphertext=envelope.ciphertext,
            format=envelope.format,
        )

    # -- persistence under the root key --------------------------------------------------

    def seal_with(self, root_key: bytes) -> bytes:
        """The keyring serialised and sealed under ``root_key``."""

        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode()

        doc: dict[str, Any] = {
            "v": 1,
            "keks": {str(k): b64(v) for k, v in self.keks.items()},
            "created": {str(k): v for k, v in self.created.items()},
            "token_hmac_key": b64(self.token_hmac_key),
            "audit_hmac_key": b64(self.audit_hmac_key),
        }
        if self.signing_keys:
            doc["signing_keys"] = self.signing_keys
        if self.audit_anchored:
            doc["audit_anchored"] = True
        if self.recovery_digest is not None:
            doc["recovery_digest"] = b64(self.recovery_digest)
        if self.transit_keys:
            doc["transit_keys"] = {
                name: {str(ver): b64(key) for ver, key in versions.items()}
                for name, versions in self.transit_keys.items()
            }
        return seal(root_key, json.dumps(doc).encode(), _KEYRING_AAD)

    @classmethod
    def open_with(cls, root_key: bytes, blob: bytes) -> Keyring:
        """Rebuild the keyring; raises DecryptionFailed for a wrong root key."""
        doc = json.loads(open_sealed(root_key, blob, _KEYRING_AAD))
        digest = doc.get("recovery_digest")
        return cls(
            keks={int(k): base64.b64decode(v) for k, v in doc["keks"].items()},
            token_hmac_key=base64.b64decode(doc["token_hmac_key"]),
            audit_hmac_key=base64.b64decode(doc["audit_hmac_key"]),
            created={int(k): float(v) for k, v in doc.get("created", {}).items()},
            signing_keys=list(doc.get("signing_keys", [])),
            audit_anchored=doc.get("audit_anchored") is True,
            recovery_digest=base64.b64decode(digest) if isinstance(digest, str) else None,
            transit_keys={
                name: {int(v): base64.b64decode(k) for v, k in versions.items()}
                for name, versions in doc.get("transit_keys", {}).items()
            },
        )
