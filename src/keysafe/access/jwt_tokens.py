"""Short-lived JWT access tokens signed with Ed25519 (EdDSA), verified against an allowlist.

Issuing: the newest *active* signing key signs; its ``kid`` (the RFC 7638 thumbprint of
the public key) goes into the header with ``typ: at+jwt`` (RFC 9068). Tokens live at most
``MAX_TOKEN_TTL_SECONDS``.

Rotation leaves no gap for verifiers: ``rotate`` adds a key (optionally pre-published in
the JWKS before it signs, so caches pick it up first); the previous key stops signing when
the new one activates but stays published and verifiable until every token it signed
has expired plus an overlap (``retire_at``). ``prune`` then drops it.

Verification refuses everything that is not exactly what we issue: only ``EdDSA`` (so
``none`` and the HS256-with-the-public-key confusion never reach a key), a known and
unretired ``kid``, our issuer and audience, a live ``exp``/``nbf``, a ``jti`` that is
not revoked. Every refusal is one ``AccessTokenRejected`` with the same vague message; the
precise reason stays on the exception for the audit trail.

Times are Unix seconds (``float``), injected by the caller so tests never sleep.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from keysafe.errors import InvalidInput, Unauthenticated, Unavailable

__all__ = [
    "ALGORITHM",
    "MAX_TOKEN_TTL_SECONDS",
    "TOKEN_TYPE",
    "AccessTokenRejected",
    "MemoryRevocationList",
    "PublicKeySet",
    "RevocationList",
    "SigningKey",
    "SigningKeySet",
    "VerificationKey",
    "VerificationKeys",
    "introspect",
    "issue_access_token",
    "verify_access_token",
]

# The only algorithm we sign with and the only one we accept: an explicit allowlist,
# never derived from the token (RFC 8725 section 3.1).
ALGORITHM = "EdDSA"
_ALLOWED_ALGORITHMS = (ALGORITHM,)
TOKEN_TYPE = "at+jwt"  # noqa: S105 -- the RFC 9068 media type, not a secret
_ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_TOKEN_TTL_SECONDS = 3600
# A real token is a few hundred bytes; refuse absurd input before parsing it.
_MAX_TOKEN_CHARS = 8192
_REGISTERED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "scope", "client_id"}
)
_REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]
_REJECTED = "invalid or expired access token"
# Serialised form of a signing key, stored inside the sealed keyring: only ever add fields.
_SIGNING_KEY_FORMAT = 1


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _thumbprint(raw_public: bytes) -> str:
    """RFC 7638 JWK thumbprint: a kid derived from the key, so two keys never share one."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw_public)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


class AccessTokenRejected(Unauthenticated):
    """A token was refused. ``detail`` is deliberately vague; ``reason`` is for audit only.

    ``reason`` is an attribute rather than an ``extra`` entry because ``extra`` is copied
    into the problem document the client sees, and telling a caller *why* its forged
    token failed helps it forge the next one.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(_REJECTED)
        self.reason = reason


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
            "x": _b64url(_raw_public(self.public_key())),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (holds the private key: store it only inside the keyring)."""
        return {
            "v": _SIGNING_KEY_FORMAT,
            "kid": self.kid,
            "private_key": _b64url(self.private_key),
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
            raw = _b64url_decode(str(doc["private_key"]))
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
                raw = _b64url_decode(str(entry["x"]))
                public = Ed25519PublicKey.from_public_bytes(raw)
                kid = str(entry["kid"])
            except (KeyError, ValueError) as exc:
                raise InvalidInput("malformed JWKS") from exc
            keys.append(VerificationKey(kid=kid, public_key=public))
        return cls(keys)

    def verification_key(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)


# -- revocation --------------------------------------------------------------------------


class RevocationList(Protocol):
    """Revoked token ids. An entry is only needed until the token's own ``exp``."""

    def revoke(self, jti: str, exp: float) -> None: ...

    def is_revoked(self, jti: str, now: float) -> bool: ...


class MemoryRevocationList:
    """In-process revocation list (tests, single process): jti -> exp."""

    def __init__(self) -> None:
        self._entries: dict[str, float] = {}

    def revoke(self, jti: str, exp: float) -> None:
        self._entries[jti] = max(exp, self._entries.get(jti, exp))

    def is_revoked(self, jti: str, now: float) -> bool:
        # Past exp the token fails on expiry anyway, so the answer no longer matters.
        return jti in self._entries

    def prune(self, now: float) -> int:
        """Forget entries whose token has expired; returns how many."""
        expired = [jti for jti, exp in self._entries.items() if exp < now]
        for jti in expired:
            del self._entries[jti]
        return len(expired)


# -- issue and verify --------------------------------------------------------------------


def issue_access_token(
    keys: SigningKeySet,
    *,
    issuer: str,
    subject: str,
    audience: str,
    scope: list[str],
    ttl_seconds: int,
    now: float,
    client_id: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Sign an access token with the current key; returns ``(token, claims)``.

    ``scope`` becomes the RFC 9068 space-separated string; ``client_id`` defaults to the
    subject (client-credentials: the client is the subject). Raises InvalidInput for a
    TTL outside 1..3600 s (or above the key set's ``max_token_ttl``, which its rotation
    schedule relies on), a scope containing spaces, or extra claims that would override
    a registered one; Unavailable if no key signs at ``now``.
    """
    if isinstance(ttl_seconds, bool) or not 0 < ttl_seconds <= keys.max_token_ttl:
        raise InvalidInput(f"access token TTL must be 1..{keys.max_token_ttl} seconds")
    if any(not s or any(c.isspace() for c in s) for s in scope):
        raise InvalidInput("each scope must be a non-empty string without spaces")
    extra = dict(extra_claims or {})
    if clash := sorted(_REGISTERED_CLAIMS & extra.keys()):
        raise InvalidInput(f"extra claims may not override {', '.join(clash)}")
    key = keys.current(now)
    issued_at = int(now)
    claims: dict[str, Any] = {
        **extra,
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "client_id": subject if client_id is None else client_id,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl_seconds,
        "jti": secrets.token_urlsafe(16),  # 128 random bits: unguessable, never reused
        "scope": " ".join(scope),
    }
    token = jwt.encode(
        claims,
        Ed25519PrivateKey.from_private_bytes(key.private_key),
        algorithm=ALGORITHM,
        headers={"kid": key.kid, "typ": TOKEN_TYPE},
    )
    return token, claims


def verify_access_token(
    token: str,
    keys: VerificationKeys,
    *,
    issuer: str,
    audience: str,
    now: float,
    leeway_seconds: int = 30,
    revocations: RevocationList | None = None,
) -> dict[str, Any]:
    """The claims of a valid access token.

    Raises AccessTokenRejected (an Unauthenticated) for anything else: malformed, an
    algorithm other than EdDSA, a wrong ``typ``, an unknown or retired ``kid``, a bad
    signature, another issuer or audience, a missing claim, expired, not yet valid, a
    lifetime longer than we ever issue, issued after its key stopped signing, or a
    revoked ``jti``.
    """
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise AccessTokenRejected("malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AccessTokenRejected("malformed") from exc
    # Checked before any key is touched: `none`, HS256 and friends stop here.
    if header.get("alg") not in _ALLOWED_ALGORITHMS:
        raise AccessTokenRejected("algorithm_not_allowed")
    # Media types compare case-insensitively (RFC 7515 section 4.1.9).
    if str(header.get("typ")).lower() not in _ACCEPTED_TYPES:
        raise AccessTokenRejected("wrong_type")
    if "crit" in header or "b64" in header:
        raise AccessTokenRejected("unsupported_header")
    kid = header.get("kid")
    key = keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise AccessTokenRejected("unknown_kid")
    if key.retire_at is not None and now >= key.retire_at:
        raise AccessTokenRejected("retired_key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=list(_ALLOWED_ALGORITHMS),
            audience=audience,
            issuer=issuer,
            # Time claims are checked below against the injected `now`.
            options={
                "require": _REQUIRED_CLAIMS,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "strict_aud": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise AccessTokenRejected("bad_signature") from exc
    except jwt.InvalidIssuerError as exc:
        raise AccessTokenRejected("wrong_issuer") from exc
    except jwt.InvalidAudienceError as exc:
        raise AccessTokenRejected("wrong_audience") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AccessTokenRejected("missing_claim") from exc
    except jwt.PyJWTError as exc:
        raise AccessTokenRejected("malformed") from exc
    _check_times(claims, now, leeway_seconds)
    # A key that has stopped signing cannot have made a newer token: only a stolen copy
    # of it could.
    if key.signs_until is not None and claims["iat"] > key.signs_until + leeway_seconds:
        raise AccessTokenRejected("issued_after_key_stopped_signing")
    if revocations is not None and revocations.is_revoked(claims["jti"], now):
        raise AccessTokenRejected("revoked")
    return claims


def _check_times(claims: Mapping[str, Any], now: float, leeway: int) -> None:
    times: list[int] = []
    for name in ("iat", "nbf", "exp"):
        value = claims.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise AccessTokenRejected("malformed")
        times.append(value)
    iat, nbf, exp = times
    if now >= exp + leeway:
        raise AccessTokenRejected("expired")
    if nbf > now + leeway or iat > now + leeway:
        raise AccessTokenRejected("not_yet_valid")
    # We never issue longer-lived tokens; one that claims to be is not ours.
    if exp - min(iat, nbf) > MAX_TOKEN_TTL_SECONDS:
        raise AccessTokenRejected("lifetime_too_long")


def introspect(
    token: str,
    keys: VerificationKeys,
    *,
    issuer: str,
    audience: str,
    now: float,
    revocations: RevocationList | None = None,
    leeway_seconds: int = 30,
) -> dict[str, Any]:
    """The RFC 7662 introspection response: ``{"active": False}`` for anything invalid
    (no reason: the caller learns nothing about why), else the active token's claims.
    Never raises for a bad token."""
    try:
        claims = verify_access_token(
            token,
            keys,
            issuer=issuer,
            audience=audience,
            now=now,
            leeway_seconds=leeway_seconds,
            revocations=revocations,
        )
    except AccessTokenRejected:
        return {"active": False}
    response: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti"):
        if name in claims:
            response[name] = claims[name]
    return response
