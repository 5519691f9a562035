"""A token's lineage: the credential that minted it, which it may never outlive.

Every token records its parent (``tokens.parent_kind``/``parent_id``): the root token,
another token, an API key (or the key behind a JWT), or a person's session. At every
request the chain is walked up to its root through per-process caches that expire like
the credential caches (``token_cache_seconds``) and are dropped at once when any
process revokes one of their entries (announced: ``keysafe.store.invalidations``);
so a token is refused as soon as any ancestor is revoked, suspended, expired, or (a
session) logged out or its person disabled or deleted. A key ancestor's address
allowlist applies to the token's requests, and its rate limit too
(``Principal.source_key``).

Parent kinds are persisted: only ever add.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from keysafe.access.apikeys import KeyService
from keysafe.access.models import KIND_KEY, KIND_USER, MODE_ROOT, Principal
from keysafe.access.sessions import SessionStore
from keysafe.clock import Clock
from keysafe.errors import InvalidInput, Unauthenticated
from keysafe.store.engine import read_conn
from keysafe.store.tables import tokens

__all__ = [
    "MAX_DEPTH",
    "PARENT_KEY",
    "PARENT_ROOT",
    "PARENT_SESSION",
    "PARENT_TOKEN",
    "PARENT_USER",
    "Lineage",
    "parent_of",
]

PARENT_ROOT = "root"  # minted by the root token (or the root token itself): no bound
PARENT_TOKEN = "token"  # noqa: S105 -- a kind name, not a secret
PARENT_KEY = "key"
PARENT_SESSION = "session"
PARENT_USER = "user"  # tokens minted by a person before sessions were recorded

# A chain longer than this is refused (at mint, and at use: fail closed).
MAX_DEPTH = 8
_UNAUTHENTICATED = "missing, malformed, expired or revoked token"


@dataclass(frozen=True, slots=True)
class _Node:
    """What the walk needs of a stored token (cached per process)."""

    mode: str
    expires_at: int | None
    revoked: bool
    parent_kind: str | None
    parent_id: str | None


def parent_of(creator: Principal) -> tuple[str, str]:
    """The (kind, id) a token minted by ``creator`` records as its parent."""
    if creator.is_root:
        return PARENT_ROOT, creator.token_id
    if creator.kind == KIND_KEY:
        return PARENT_KEY, creator.source_key or creator.token_id
    if creator.kind == KIND_USER:
        if creator.credential_id is None:
            raise InvalidInput("a person mints tokens from a session")
        return PARENT_SESSION, creator.credential_id
    return PARENT_TOKEN, creator.token_id


class Lineage:
    """Walks a token's ancestors; every ancestor must be live."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        keys: KeyService | None,
        sessions: SessionStore | None,
        cache_seconds: float = 1.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._keys = keys
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._nodes: dict[str, tuple[float, _Node | None]] = {}
        self._lock = threading.Lock()

    def check(self, kind: str | None, ident: str | None, source: str | None) -> None:
        """Raise Unauthenticated unless the parent (``kind``, ``ident``) and each of its
        ancestors is live, or Forbidden when a key ancestor's allowlist excludes
        ``source`` (None: not judged). A token without a recorded parent predates
        lineage and is bounded only by its own expiry."""
        depth = 0
        while kind is not None and kind != PARENT_ROOT:
            if depth >= MAX_DEPTH or ident is None:
                raise Unauthenticated(_UNAUTHENTICATED)
            if kind == PARENT_KEY and self._keys is not None:
                self._keys.check_id(ident, source)
                return
            if kind == PARENT_SESSION and self._sessions is not None:
                if not self._sessions.session_alive(ident):
                    raise Unauthenticated(_UNAUTHENTICATED)
                return
            if kind == PARENT_USER and self._sessions is not None:
                if not self._sessions.person_alive(ident):
                    raise Unauthenticated(_UNAUTHENTICATED)
                return
            if kind != PARENT_TOKEN:
                raise Unauthenticated(_UNAUTHENTICATED)  # unknown or unwired: fail closed
            node = self._node(ident)
            if node is None or node.revoked:
                raise Unauthenticated(_UNAUTHENTICATED)
            if node.mode == MODE_ROOT:  # tokens minted before lineage, by root
                return
            if node.expires_at is not None and node.expires_at <= self._clock.now_us():
                raise Unauthenticated(_UNAUTHENTICATED)
            kind, ident = node.parent_kind, node.parent_id
            depth += 1

    def source_key(self, kind: str | None, ident: str | None) -> str | None:
        """The key at the top of the chain starting at (``kind``, ``ident``), if any.
        Parents never change, so callers may cache the answer with the token."""
        for _ in range(MAX_DEPTH):
            if kind == PARENT_KEY:
                return ident
            if kind != PARENT_TOKEN or ident is None:
                return None
            node = self._node(ident)
            if node is None:
                return None
            kind, ident = node.parent_kind, node.parent_id
        return None

    def depth(self, conn: Connection, kind: str, ident: str) -> int:
        """How many tokens stand between a new child of (``kind``, ``ident``) and the
        first credential that is not a token (read in ``conn``, no cache)."""
        depth = 0
        while kind == PARENT_TOKEN and depth <= MAX_DEPTH:
            row = conn.execute(
                select(tokens.c.parent_kind, tokens.c.parent_id).where(tokens.c.id == ident)
            ).first()
            if row is None or row.parent_kind is None or row.parent_id is None:
                break
            kind, ident = row.parent_kind, row.parent_id
            depth += 1
        return depth

    def forget(self, token_id: str) -> None:
        """Drop ``token_id`` (revoked on this process): its children see it at once."""
        with self._lock:
            self._nodes.pop(token_id, None)

    def forget_all(self) -> None:
        """Drop every cached node."""
        with self._lock:
            self._nodes.clear()

    def _node(self, token_id: str) -> _Node | None:
        cached = self._nodes.get(token_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        with read_conn(self._engine) as conn:
            row = conn.execute(
                select(
                    tokens.c.mode,
                    tokens.c.expires_at,
                    tokens.c.revoked_at,
                    tokens.c.parent_kind,
                    tokens.c.parent_id,
                ).where(tokens.c.id == token_id)
            ).first()
        node = (
            None
            if row is None
            else _Node(
                row.mode, row.expires_at, row.revoked_at is not None, row.parent_kind, row.parent_id
            )
        )
        with self._lock:
            if len(self._nodes) > 50_000:
                self._nodes.clear()
            self._nodes[token_id] = (now, node)
        return node
