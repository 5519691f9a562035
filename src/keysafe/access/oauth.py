"""OAuth 2.0 client credentials: a service trades its API key for a short-lived JWT.

The access token (EdDSA, at most one hour, ``kid`` in the header) carries the key's
policies as its scope, so resource servers verify it offline against the JWKS and
keysafe authorises it like the key. Signing keys live in the sealed keyring; rotation
keeps the previous key verifiable for the longest token lifetime plus an overlap, so
verifiers never see a gap. Revoked token ids are kept in the database until expiry.

A token is never more alive than its key: at every request (and in introspection) the
key it was exchanged from is looked up by id through the key service's cache, so a
revoked, suspended, expired or rolled-out key ends its tokens as fast as itself, and
the key's address allowlist and rate limit bind the token's requests too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, delete
from sqlalchemy.dialects import postgresql, sqlite

from keysafe.access.apikeys import KeyService
from keysafe.access.jwt_tokens import (
    SigningKeySet,
    introspect,
    issue_access_token,
    verify_access_token,
)
from keysafe.access.models import Principal
from keysafe.errors import InvalidInput, Unauthenticated
from keysafe.store.engine import write_txn
from keysafe.store.rawread import RawReader
from keysafe.store.tables import jwt_revocations

ISSUER = "keysafe"
AUDIENCE = "keysafe"
DEFAULT_TTL_SECONDS = 900
ROTATION_OVERLAP_SECONDS = 300.0


class DbRevocationList:
    """Revoked JWT ids, shared by every process through the database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._raw = RawReader(engine)
        self._sql = self._raw.sql("SELECT 1 FROM jwt_revocations WHERE jti = ?")
        self._postgres = engine.dialect.name == "postgresql"

    def revoke(self, jti: str, exp: float) -> None:
        insert = postgresql.insert if self._postgres else sqlite.insert
        with write_txn(self._engine) as conn:
            conn.execute(
                insert(jwt_revocations)
                .values(jti=jti[:64], expires_at=int(exp * 1_000_000))
                .on_conflict_do_nothing(index_elements=["jti"])
            )
            # Expired entries no longer matter: the token fails on its expiry.
            conn.execute(
                delete(jwt_revocations).where(
                    jwt_revocations.c.expires_at < int(time.time() * 1_000_000)
                )
            )

    def is_revoked(self, jti: str, now: float) -> bool:
        return self._raw.fetchone(self._sql, (jti,)) is not None

    def close(self) -> None:
        self._raw.close()


class TokenExchange:
    def __init__(
        self,
        signing_keys: Callable[[], SigningKeySet],
        revocations: DbRevocationList,
        keys: KeyService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signing_keys = signing_keys
        self._revocations = revocations
        self._keys = keys
        self._clock = clock

    def issue(self, principal: Principal, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> dict[str, Any]:
        """An access token for an API-key principal (RFC 6749 section 5.1 reply)."""
        if principal.kind != "key":
            raise InvalidInput("only API keys can be exchanged for access tokens")
        keys = self._signing_keys()  # may create the first key: read the time after it
        now = self._clock()
        ttl = min(max(1, ttl_seconds), 3600)
        if principal.expires_at is not None:
            # Never outlive the key it was exchanged for.
            ttl = max(1, min(ttl, int(principal.expires_at / 1_000_000 - now)))
        token, claims = issue_access_token(
            keys,
            issuer=ISSUER,
            subject=principal.token_id,
            audience=AUDIENCE,
            scope=list(principal.policies),
            ttl_seconds=ttl,
            now=now,
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": claims.get("scope", ""),
        }

    def principal(self, token: str, source: str) -> Principal:
        """The principal of a valid access token presented from ``source``: as alive as
        its key (raises Unauthenticated once the key is revoked, suspended, expired or
        past its grace period) and bound to the key's allowlist (raises Forbidden)."""
        claims = verify_access_token(
            token,
            self._signing_keys(),
            issuer=ISSUER,
            audience=AUDIENCE,
            now=self._clock(),
            revocations=self._revocations,
        )
        key_id = str(claims["sub"])
        key = self._keys.check_id(key_id, source)
        scope = str(claims.get("scope", ""))
        # Never more than the key holds now, even if the token says more.
        held = set(key.policies)
        policies = tuple(p for p in scope.split() if p in held)
        return Principal(
            token_id=key_id,
            kind="key",
            mode="policy",
            prefix="",
            expires_at=min(int(float(claims["exp"]) * 1_000_000), key.expires_at),
            policies=policies,
            source_key=key_id,
        )

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: ``{"active": false}`` for anything invalid, including a token whose
        key is no longer live (the introspecting party is not the token's holder, so the
        key's address allowlist is not judged here)."""
        info = introspect(
            token,
            self._signing_keys(),
            issuer=ISSUER,
            audience=AUDIENCE,
            now=self._clock(),
            revocations=self._revocations,
        )
        if info.get("active"):
            try:
                self._keys.check_id(str(info.get("sub", "")), None)
            except Unauthenticated:
                return {"active": False}
        return info

    def probe(self, key_id: str, source: str) -> None:
        """Mint an access token for ``key_id`` exactly as the exchange would and present
        it from ``source`` (the incident playbook's verify step): returns when it is
        accepted, raises Unauthenticated or Forbidden as a request would. The token
        never leaves this call."""
        keys = self._signing_keys()
        token, _ = issue_access_token(
            keys,
            issuer=ISSUER,
            subject=key_id,
            audience=AUDIENCE,
            scope=[],
            ttl_seconds=60,
            now=self._clock(),
        )
        self.principal(token, source)

    def revoke(self, token: str) -> None:
        """RFC 7009: revoke a valid token; anything else is silently accepted."""
        info = self.introspect(token)
        if info.get("active") and info.get("jti"):
            self._revocations.revoke(str(info["jti"]), float(info.get("exp", self._clock())))

    def jwks(self) -> dict[str, Any]:
        return self._signing_keys().jwks(self._clock())

    def close(self) -> None:
        self._revocations.close()
