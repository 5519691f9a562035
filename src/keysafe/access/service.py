"""Tokens: minted, looked up by keyed hash, revoked.

The server stores HMAC-SHA256(token key, token); the token key lives in the keyring,
so the database alone cannot be used to test guesses. Lookups hash the presented token
and fetch by that hash; the final comparison is constant-time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from keysafe.access.grants import holder_of
from keysafe.access.lineage import MAX_DEPTH, PARENT_ROOT, Lineage, parent_of
from keysafe.access.models import MODE_POLICY, MODE_READ, MODE_ROOT, MODE_WRITE, Principal
from keysafe.access.policy_store import check_held_names, check_policies_exist
from keysafe.clock import Clock
from keysafe.crypto import keyformat
from keysafe.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.invalidations import KIND_TOKEN, UNANNOUNCED, Announcer
from keysafe.store.tables import tokens

MAX_TTL_SECONDS = 10 * 365 * 24 * 3600
# Tokens minted by anyone but root (Vault's default and maximum token TTL): they always
# expire, never after their creator, and never live longer than the maximum.
DEFAULT_CHILD_TTL_SECONDS = 3600
MAX_CHILD_TTL_SECONDS = 32 * 24 * 3600
_UNAUTHENTICATED = "missing, malformed, expired or revoked token"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly minted token: the only moment the secret exists outside the caller."""

    token: str
    record: dict[str, Any]


class TokenService:
    def __init__(
        self,
        engine: Engine,
        token_key: Callable[[], bytes],
        clock: Clock,
        cache_seconds: float = 1.0,
        lineage: Lineage | None = None,
    ) -> None:
        self._engine = engine
        self._token_key = token_key
        self._clock = clock
        self._cache_seconds = cache_seconds
        # Without the key and session services a token minted by a key or a session
        # cannot be judged: it is refused (fail closed).
        self._lineage = lineage or Lineage(engine, clock, None, None, cache_seconds)
        # digest -> (loaded at, principal, parent kind, parent id)
        self._cache: dict[bytes, tuple[float, Principal, str | None, str | None]] = {}
        self._lock = threading.Lock()
        # Tells the other processes to drop a revoked token (set by the server).
        self.announcer: Announcer = UNANNOUNCED

    def hash(self, token: str, key: bytes | None = None) -> bytes:
        """The keyed hash stored for ``token`` (``key`` defaults to the keyring's)."""
        return hmac.digest(key or self._token_key(), token.encode(), "sha256")

    # -- minting -------------------------------------------------------------------------

    def mint_root(self, conn: Connection, token_key: bytes) -> IssuedToken:
        """The root token, minted inside the init transaction (the vault is still sealed,
        so the new keyring's token key is passed in)."""
        return self._insert(
            conn, MODE_ROOT, "root", "", None, "initial root token", "system", token_key
        )

    def mint(
        self,
        creator: Principal,
        prefix: str,
        mode: str,
        ttl_seconds: int | None,
        description: str,
        conn: Connection,
        policies: list[str] | None = None,
    ) -> IssuedToken:
        """A scoped token: bound to ``policies`` (judged by them alone), or of the vault
        core's ``mode`` under ``prefix``. Only the root token mints mode tokens; anyone
        else may bind only policies granting nothing it does not hold itself.

        A token minted by anyone but root is bounded by its creator: it expires after
        ``ttl_seconds`` (None: ``DEFAULT_CHILD_TTL_SECONDS``; at most
        ``MAX_CHILD_TTL_SECONDS``) and never after its creator, and it is refused as
        soon as its creator is (see ``keysafe.access.lineage``). Raises InvalidInput,
        Forbidden, NotFound (a policy)."""
        parent_kind, parent_id = parent_of(creator)
        now = self._clock.now_us()
        if creator.is_root:
            if ttl_seconds is not None and not 0 < ttl_seconds <= MAX_TTL_SECONDS:
                raise InvalidInput(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
            expires = None if ttl_seconds is None else now + ttl_seconds * 1_000_000
        else:
            ttl = DEFAULT_CHILD_TTL_SECONDS if ttl_seconds is None else ttl_seconds
            if not 0 < ttl <= MAX_CHILD_TTL_SECONDS:
                raise InvalidInput(f"ttl_seconds must be between 1 and {MAX_CHILD_TTL_SECONDS}")
            expires = now + ttl * 1_000_000
            if creator.expires_at is not None:
                expires = min(expires, creator.expires_at)
            if self._lineage.depth(conn, parent_kind, parent_id) + 1 >= MAX_DEPTH:
                raise Forbidden(f"a token may not be more than {MAX_DEPTH - 1} tokens deep")
        parent = (parent_kind, parent_id[:64])
        if policies:
            names = sorted(set(policies))
            check_policies_exist(conn, names)
            check_held_names(conn, holder_of(creator), names)
            return self._insert(
                conn,
                MODE_POLICY,
                "scoped",
                "",
                expires,
                description,
                creator.token_id,
                policies=names,
                parent=parent,
            )
        if mode not in (MODE_READ, MODE_WRITE):
            raise InvalidInput("mode must be 'read' or 'write'")
        if not creator.is_root:
            raise Forbidden("only the root token mints read/write tokens; bind policies instead")
        return self._insert(
            conn, mode, "scoped", prefix, expires, description, creator.token_id, parent=parent
        )

    def _insert(
        self,
        conn: Connection,
        mode: str,
        kind: str,
        prefix: str,
        expires: int | None,
        description: str,
        created_by: str,
        token_key: bytes | None = None,
        policies: list[str] | None = None,
        parent: tuple[str, str] | None = None,
    ) -> IssuedToken:
        token = keyformat.generate(keyformat.KIND_ROOT if kind == "root" else keyformat.KIND_TOKEN)
        record = {
            "id": "tok_" + secrets.token_hex(8),
            "token_hash": self.hash(token, token_key),
            "kind": kind,
            "prefix": prefix,
            "mode": mode,
            "description": description,
            "created_by": created_by,
            "created_at": self._clock.now_us(),
            "expires_at": expires,
            "revoked_at": None,
            "policies": ",".join(policies or ()),
            "parent_kind": parent[0] if parent else PARENT_ROOT,
            "parent_id": parent[1] if parent else created_by[:64],
        }
        conn.execute(insert(tokens).values(**record))
        return IssuedToken(token, public_record(record))

    # -- lookups -------------------------------------------------------------------------

    def authenticate(self, token: str | None, source: str | None = None) -> Principal:
        """The principal behind ``token`` presented from ``source``; raises
        Unauthenticated with one vague message (also when any of its creators is no
        longer live), or Forbidden when a key it descends from may not be used from
        ``source`` (None: the allowlist is not judged)."""
        if not token:
            raise Unauthenticated(_UNAUTHENTICATED)
        digest = self.hash(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self._cache_seconds:
            # Only a well-formed token can have been cached under its digest.
            _, principal, parent_kind, parent_id = cached
        else:
            if keyformat.parse(token) is None:
                raise Unauthenticated(_UNAUTHENTICATED)
            principal, parent_kind, parent_id = self._load(digest)
            with self._lock:
                if len(self._cache) > 50_000:
                    self._cache.clear()
                self._cache[digest] = (now, principal, parent_kind, parent_id)
        if principal.expires_at is not None and principal.expires_at <= self._clock.now_us():
            raise Unauthenticated(_UNAUTHENTICATED)
        if parent_kind != PARENT_ROOT and not principal.is_root:
            self._lineage.check(parent_kind, parent_id, source)
        return principal

    def _load(self, digest: bytes) -> tuple[Principal, str | None, str | None]:
        with read_conn(self._engine) as conn:
            row = conn.execute(select(tokens).where(tokens.c.token_hash == digest)).first()
        if row is None or not hmac.compare_digest(bytes(row.token_hash), digest):
            raise Unauthenticated(_UNAUTHENTICATED)
        if row.revoked_at is not None:
            raise Unauthenticated(_UNAUTHENTICATED)
        bound = tuple(row.policies.split(",")) if row.policies else ()
        principal = Principal(
            row.id,
            row.kind,
            row.mode,
            row.prefix,
            row.expires_at,
            policies=bound,
            source_key=self._lineage.source_key(row.parent_kind, row.parent_id),
        )
        return principal, row.parent_kind, row.parent_id

    def find(self, token: str, conn: Connection) -> dict[str, Any] | None:
        """The stored record of ``token`` (revoked or not), or None; no cache."""
        if keyformat.parse(token) is None:
            return None
        digest = self.hash(token)
        row = conn.execute(select(tokens).where(tokens.c.token_hash == digest)).mappings().first()
        if row is None or not hmac.compare_digest(bytes(row["token_hash"]), digest):
            return None
        return dict(row)

    def revoke(self, token_id: str, conn: Connection) -> None:
        result = conn.execute(
            update(tokens)
            .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=self._clock.now_us())
        )
        if result.rowcount == 0:
            exists = conn.execute(select(tokens.c.id).where(tokens.c.id == token_id)).first()
            if exists is None:
                raise NotFound(f"no token with id {token_id}")
        self.forget(token_id)
        self.announcer.announce(conn, KIND_TOKEN, token_id)

    def forget_all(self) -> None:
        """Drop every cached token and lineage node (announcements may have been missed)."""
        self._lineage.forget_all()
        with self._lock:
            self._cache.clear()

    def forget(self, token_id: str) -> None:
        """Drop a token from this process's caches (after revocation); the tokens it
        minted see the revocation at once, since their lineage is walked per request."""
        self._lineage.forget(token_id)
        with self._lock:
            for digest, (_, principal, _, _) in list(self._cache.items()):
                if principal.token_id == token_id:
                    del self._cache[digest]

    def list_tokens(self) -> list[dict[str, Any]]:
        with read_conn(self._engine) as conn:
            rows = conn.execute(select(tokens).order_by(tokens.c.created_at)).mappings().all()
        return [public_record(dict(r)) for r in rows]

    def get(self, token_id: str) -> dict[str, Any]:
        with read_conn(self._engine) as conn:
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).mappings().first()
        if row is None:
            raise NotFound(f"no token with id {token_id}")
        return public_record(dict(row))

    def write_txn(self) -> Any:
        return write_txn(self._engine)


def public_record(record: dict[str, Any]) -> dict[str, Any]:
    """A token record without its hash, times as ISO strings."""
    from keysafe.timefmt import iso_us

    return {
        "id": record["id"],
        "kind": record["kind"],
        "prefix": record["prefix"],
        "mode": record["mode"],
        "description": record["description"],
        "created_by": record["created_by"],
        "created_at": iso_us(record["created_at"]),
        "expires_at": iso_us(record["expires_at"]),
        "revoked": record["revoked_at"] is not None,
        "policies": record["policies"].split(",") if record.get("policies") else [],
    }
