"""Signing keys for short-lived access tokens: Ed25519 (EdDSA), sealed in the keyring.

Rotation leaves no gap for verifiers: ``rotate`` adds a key (optionally pre-published in
the JWKS before it signs, so caches pick it up first); the previous key stops signing when
the new one activates but stays published and verifiable until every token it signed
has expired plus an overlap (``retire_at``). ``prune`` then drops it. The ``kid`` is the
RFC 7638 thumbprint of the public key, so two keys never share one.

Times are Unix seconds (``float``), injected by the caller so tests never sleep.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from keysafe.errors import InvalidInput, Unavailable

__all__ = [
    "ALGORITHM",
    "MAX_TOKEN_TTL_SECONDS",
    "PublicKeySet",
    "SigningKey",
    "SigningKeySet",
    "VerificationKey",
    "VerificationKeys",
]

# The only algorithm we sign with and the only one we accept: an explicit allowlist,
# never derived from the token (RFC 8725 section 3.1).
ALGORITHM = "EdDSA"
MAX_TOKEN_TTL_SECONDS = 3600
# Serialised form of a signing key, stored inside the sealed keyring: only ever add fields.
_SIGNING_KEY_FORMAT = 1


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _thumbprint(raw_public: bytes) -> str:
    """RFC 7638 JWK thumbprint: a kid derived from the key, so two keys never share one."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw_public)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


# -- keys --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One Ed25519 signing key and its life: signs in [active_from, not_after_for_signing),
    verifies until ``retire_at``. ``None`` means "not scheduled yet"."""

    kid: str
    private_key: bytes = field(repr=False)  # raw 32-byte Ed25519 seed: never print it
    created_at: float
    active_from: float
    not_after_for_signing: float | None = None
    retire_at: float | None = None

    @classmethod
    def generate(cls, now: float, active_from: float | None = None) -> SigningKey:
        """A fresh key from the OS CSPRNG, signing from ``active_from`` (default ``now``)."""
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(
            kid=_thumbprint(_raw_public(private.public_key())),
            private_key=raw,
            created_at=now,
            active_from=now if active_from is None else active_from,
        )

    def signs_at(self, now: float) -> bool:
        return self.active_from <= now and (
            self.not_after_for_signing is None or now < self.not_after_for_signing
        )

    def retired_at(self, now: float) -> bool:
        return self.retire_at is not None and now >= self.retire_at

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PrivateKey.from_private_bytes(self.private_key).public_key()

    def jwk(self) -> dict[str, str]:
        """The public half as an RFC 7517 / RFC 8037 JWK."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(_raw_public(self.public_key())),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (holds the private key: store it only inside the keyring)."""
        return {
            "v": _SIGNING_KEY_FORMAT,
            "kid": self.kid,
            "private_key": b64url(self.private_key),
            "created_at": self.created_at,
            "active_from": self.active_from,
            "not_after_for_signing": self.not_after_for_signing,
            "retire_at": self.retire_at,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SigningKey:
        """Rebuild a key from ``to_dict``; raises InvalidInput if the dict is malformed or
        the kid does not match the key."""
        try:
            if doc.get("v", _SIGNING_KEY_FORMAT) != _SIGNING_KEY_FORMAT:
                raise InvalidInput(f"unknown signing key format {doc.get('v')!r}")
            raw = b64url_decode(str(doc["private_key"]))
            key = cls(
                kid=str(doc["kid"]),
                private_key=raw,
                created_at=float(doc["created_at"]),
                active_from=float(doc.get("active_from", doc["created_at"])),
                not_after_for_signing=_optional_float(doc.get("not_after_for_signing")),
                retire_at=_optional_float(doc.get("retire_at")),
            )
            actual_kid = _thumbprint(_raw_public(key.public_key()))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("malformed signing key") from exc
        if len(raw) != 32 or actual_kid != key.kid:
            raise InvalidInput("malformed signing key")
        return key


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """What a verifier needs of one key: the public key and when it stops being trusted."""

    kid: str
    public_key: Ed25519PublicKey
    retire_at: float | None = None
    # When the key stopped signing, if the verifier knows (a JWKS does not say).
    signs_until: float | None = None


class VerificationKeys(Protocol):
    """Anything that can find the public key for a ``kid`` (a key set, a fetched JWKS)."""

    def verification_key(self, kid: str) -> VerificationKey | None: ...


class SigningKeySet:
    """All signing keys of one issuer: the newest active one signs, all unretired verify."""

    def __init__(self, keys: Iterable[SigningKey], *, max_token_ttl: int = MAX_TOKEN_TTL_SECONDS):
        if not 0 < max_token_ttl <= MAX_TOKEN_TTL_SECONDS:
            raise InvalidInput(f"max_token_ttl must be in 1..{MAX_TOKEN_TTL_SECONDS} seconds")
        self.max_token_ttl = max_token_ttl
        self._keys: dict[str, SigningKey] = {k.kid: k for k in keys}

    @classmethod
    def new(cls, now: float, *, max_token_ttl: int = MAX_TOKEN_TTL_SECONDS) -> SigningKeySet:
        """A set with one fresh key that signs from ``now``."""
        return cls([SigningKey.generate(now)], max_token_ttl=max_token_ttl)

    @property
    def keys(self) -> list[SigningKey]:
        """Every key, oldest activation first."""
        return sorted(self._keys.values(), key=lambda k: (k.active_from, k.created_at))

    def current(self, now: float) -> SigningKey:
        """The newest key whose activation time has passed and that still signs.

        Raises Unavailable if there is none (every key retired or not yet active)."""
        signing = [k for k in self.keys if k.signs_at(now) and not k.retired_at(now)]
        if not signing:
            raise Unavailable("no active JWT signing key")
        return signing[-1]

    def rotate(self, now: float, overlap: float, *, prepublish: float = 0.0) -> SigningKey:
        """Add a key that signs from ``now + prepublish``; returns it.

        Every older key still signing then stops at that moment and is retired
        ``max_token_ttl + overlap`` later: the last token it signs expires before its
        ``retire_at``, and ``overlap`` absorbs clock skew and JWKS caches. During the
        pre-publication delay the new key is already in the JWKS but does not sign, so
        verifiers that cache the JWKS learn it before meeting a token it signed.
        """
        if overlap < 0 or prepublish < 0:
            raise InvalidInput("overlap and prepublish must not be negative")
        activation = now + prepublish
        retire = activation + self.max_token_ttl + overlap
        for kid, key in list(self._keys.items()):
            if key.not_after_for_signing is None or key.not_after_for_signing > activation:
                self._keys[kid] = replace(
                    key,
                    not_after_for_signing=max(activation, key.active_from),
                    retire_at=retire if key.retire_at is None else min(key.retire_at, retire),
                )
        new = SigningKey.generate(now, active_from=activation)
        self._keys[new.kid] = new
        return new

    def retire(self, kid: str, now: float) -> None:
        """Stop trusting one key at once (it leaked): its tokens fail from ``now``.

        Rotate first if it is the only signing key. Raises InvalidInput for an unknown kid."""
        key = self._keys.get(kid)
        if key is None:
            raise InvalidInput("unknown signing key")
        self._keys[kid] = replace(key, not_after_for_signing=now, retire_at=now)

    def prune(self, now: float) -> list[str]:
        """Drop keys past ``retire_at``; returns their kids."""
        dropped = [kid for kid, key in self._keys.items() if key.retired_at(now)]
        for kid in dropped:
            del self._keys[kid]
        return dropped

    def jwks(self, now: float | None = None) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set (RFC 7517): every key not retired (at ``now`` if given),
        including pre-published ones. Never contains private material."""
        keys = [k for k in self.keys if now is None or not k.retired_at(now)]
        return {"keys": [k.jwk() for k in keys]}

    def verification_key(self, kid: str) -> VerificationKey | None:
        key = self._keys.get(kid)
        if key is None:
            return None
        return VerificationKey(
            kid=kid,
            public_key=key.public_key(),
            retire_at=key.retire_at,
            signs_until=key.not_after_for_signing,
        )

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every key as a plain dict, for the sealed keyring."""
        return [k.to_dict() for k in self.keys]

    @classmethod
    def from_dicts(
        cls, docs: Iterable[Mapping[str, Any]], *, max_token_ttl: int = MAX_TOKEN_TTL_SECONDS
    ) -> SigningKeySet:
        """Rebuild from ``to_dicts``; raises InvalidInput for a malformed entry."""
        return cls([SigningKey.from_dict(d) for d in docs], max_token_ttl=max_token_ttl)


class PublicKeySet:
    """A verifier's view: the public keys of a JWKS document, nothing private.

    The publisher drops retired keys from its JWKS, so membership is trust here."""

    def __init__(self, keys: Iterable[VerificationKey]) -> None:
        self._keys = {k.kid: k for k in keys}

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> PublicKeySet:
        """Keep the Ed25519 signing keys of a JWKS; others are skipped. Raises InvalidInput
        if the document or an Ed25519 entry is malformed."""
        entries = jwks.get("keys")
        if not isinstance(entries, list):
            raise InvalidInput("malformed JWKS")
        keys: list[VerificationKey] = []
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("kty") != "OKP":
                continue
            if entry.get("crv") != "Ed25519" or entry.get("use", "sig") != "sig":
                continue
            try:
                raw = b64url_decode(str(entry["x"]))
                public = Ed25519PublicKey.from_public_bytes(raw)
                kid = str(entry["kid"])
            except (KeyError, ValueError) as exc:
                raise InvalidInput("malformed JWKS") from exc
            keys.append(VerificationKey(kid=kid, public_key=public))
        return cls(keys)

    def verification_key(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)
