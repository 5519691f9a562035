"""Short-lived JWT access tokens signed with Ed25519 (EdDSA), verified against an allowlist.

Issuing: the newest *active* signing key signs; its ``kid`` (the RFC 7638 thumbprint of
the public key) goes into the header with ``typ: at+jwt`` (RFC 9068). Tokens live at most
``MAX_TOKEN_TTL_SECONDS``.

The keys and their rotation live in ``keysafe.access.jwt_keys`` (re-exported here).

Verification refuses everything that is not exactly what we issue: only ``EdDSA`` (so
``none`` and the HS256-with-the-public-key confusion never reach a key), a known and
unretired ``kid``, our issuer and audience, a live ``exp``/``nbf``, a ``jti`` that is
not revoked. Every refusal is one ``AccessTokenRejected`` with the same vague message; the
precise reason stays on the exception for the audit trail.

Times are Unix seconds (``float``), injected by the caller so tests never sleep.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keysafe.access.jwt_keys import (
    ALGORITHM,
    MAX_TOKEN_TTL_SECONDS,
    PublicKeySet,
    SigningKey,
    SigningKeySet,
    VerificationKey,
    VerificationKeys,
)
from keysafe.errors import InvalidInput, Unauthenticated

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

# Only what we sign with is accepted: an explicit allowlist, never derived from the token
# (RFC 8725 section 3.1).
_ALLOWED_ALGORITHMS = (ALGORITHM,)
TOKEN_TYPE = "at+jwt"  # noqa: S105 -- the RFC 9068 media type, not a secret
_ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# A real token is a few hundred bytes; refuse absurd input before parsing it.
_MAX_TOKEN_CHARS = 8192
_REGISTERED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "scope", "client_id"}
)
_REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]
_REJECTED = "invalid or expired access token"


class AccessTokenRejected(Unauthenticated):
    """A token was refused. ``detail`` is deliberately vague; ``reason`` is for audit only.

    ``reason`` is an attribute rather than an ``extra`` entry because ``extra`` is copied
    into the problem document the client sees, and telling a caller *why* its forged
    token failed helps it forge the next one.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(_REJECTED)
        self.reason = reason


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
