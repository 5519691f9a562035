"""People's login sessions: ``ks_sess_`` tokens with an idle and an absolute lifetime.

The server keeps HMAC-SHA256(token key, token), never the token. A session dies when
it is revoked (logout, admin, user disabled or deleted), at its absolute expiry, or
after ``idle`` without a request.

Last use is not written on every request. Each process remembers when it last served a
session and writes ``last_seen_at`` at most once per ``touch`` interval per session, in
a batch (``flush_touches``, run by the server's poll loop every few seconds). So:

- on the process that served the last request, idle expiry is exact;
- another process reads ``last_seen_at`` from the database, which lags the true last
  use by at most ``touch`` plus one flush interval: it may expire a session that much
  EARLY, never late (fail closed). Before refusing a session as idle, a process re-reads
  the row once, so a use written by another process meanwhile is honoured.

Lookups are cached per process for ``cache_seconds`` (revocation and role changes reach
other processes within that delay), like API keys.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from keysafe.access.models import KIND_USER, MODE_POLICY, Principal
from keysafe.clock import Clock
from keysafe.crypto import keyformat
from keysafe.errors import NotFound, Unauthenticated
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.invalidations import KIND_SESSION, UNANNOUNCED, Announcer
from keysafe.store.tables_users import roles, sessions, user_roles, users
from keysafe.timefmt import iso_us

__all__ = ["SessionRecord", "SessionStore", "actor_of"]

_UNAUTHENTICATED = "missing, malformed, expired or revoked credential"
_US = 1_000_000


def actor_of(name: str) -> str:
    """The stable actor id of user ``name`` in audit events and principals."""
    return f"user:{name}"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What verification needs of a stored session (cached per process)."""

    id: str
    user_id: str
    name: str
    policies: tuple[str, ...]
    created_at: int
    last_seen_at: int
    expires_at: int
    mfa_at: int | None
    revoked_at: int | None
    disabled: bool


class SessionStore:
    def __init__(
        self,
        engine: Engine,
        token_key: Callable[[], bytes],
        clock: Clock,
        *,
        idle_seconds: int,
        max_seconds: int,
        cache_seconds: float = 1.0,
        touch_seconds: float = 60.0,
    ) -> None:
        self._engine = engine
        self._token_key = token_key
        self._clock = clock
        self.idle_us = idle_seconds * _US
        self.max_us = max_seconds * _US
        self._cache_seconds = cache_seconds
        # Never let the write lag be a large part of the idle timeout.
        self._touch_us = int(min(touch_seconds, idle_seconds / 4) * _US)
        self._cache: dict[bytes, tuple[float, SessionRecord | None]] = {}
        # Liveness by session or user id (tokens minted in a session follow it): the
        # absolute expiry of a live one, None for a dead one; same expiry, same forget.
        self._alive: dict[str, tuple[float, int | None]] = {}
        self._seen: dict[str, int] = {}  # session id -> last use served by this process
        self._written: dict[str, int] = {}  # session id -> last_seen_at known to be stored
        self._pending: dict[str, int] = {}  # session id -> last_seen_at to write
        self._lock = threading.Lock()
        # Tells the other processes to drop their sessions (set by the server).
        self.announcer: Announcer = UNANNOUNCED

    def hash(self, token: str) -> bytes:
        return hmac.digest(self._token_key(), token.encode(), "sha256")

    # -- issue and revoke ----------------------------------------------------------------

    def create(
        self, conn: Connection, user_id: str, source: str, mfa_at: int | None
    ) -> tuple[str, dict[str, Any]]:
        """A new session for ``user_id``: (token, public record). The token is shown once."""
        token = keyformat.generate(keyformat.KIND_SESSION)
        now = self._clock.now_us()
        record = {
            "id": "ses_" + secrets.token_hex(8),
            "token_hash": self.hash(token),
            "user_id": user_id,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + self.max_us,
            "mfa_at": mfa_at,
            "revoked_at": None,
            "source": source[:64],
        }
        conn.execute(insert(sessions).values(**record))
        return token, public_session(record)

    def set_mfa(self, conn: Connection, session_id: str, at: int) -> None:
        """Record a second factor proved in this session at ``at`` (step-up)."""
        conn.execute(update(sessions).where(sessions.c.id == session_id).values(mfa_at=at))
        self.forget(conn)

    def revoke(self, conn: Connection, session_id: str, user_id: str | None = None) -> None:
        """Revoke one session (of ``user_id`` when given). Raises NotFound."""
        query = update(sessions).where(sessions.c.id == session_id)
        if user_id is not None:
            query = query.where(sessions.c.user_id == user_id)
        done = conn.execute(
            query.where(sessions.c.revoked_at.is_(None)).values(revoked_at=self._clock.now_us())
        )
        if done.rowcount == 0:
            found = conn.execute(select(sessions.c.id).where(sessions.c.id == session_id)).first()
            if found is None:
                raise NotFound(f"no session {session_id}")
        self.forget(conn)

    def write_txn(self) -> Any:
        """A write transaction on the sessions' database (for callers outside access/)."""
        return write_txn(self._engine)

    def find(self, token: str, conn: Connection) -> dict[str, Any] | None:
        """The stored record of session ``token`` (revoked or not), or None; no cache."""
        if keyformat.parse(token) != keyformat.KIND_SESSION:
            return None
        digest = self.hash(token)
        row = (
            conn.execute(select(sessions).where(sessions.c.token_hash == digest)).mappings().first()
        )
        if row is None or not hmac.compare_digest(bytes(row["token_hash"]), digest):
            return None
        return dict(row)

    def revoke_all(self, conn: Connection, user_id: str) -> int:
        """Revoke every live session of ``user_id``; returns how many."""
        done = conn.execute(
            update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=self._clock.now_us())
        )
        self.forget(conn)
        return int(done.rowcount or 0)

    def list_for(self, user_id: str, *, live_only: bool = True) -> list[dict[str, Any]]:
        """The sessions of ``user_id`` (live ones by default), newest first, no hashes."""
        self.flush_touches()
        now = self._clock.now_us()
        with read_conn(self._engine) as conn:
            rows = conn.execute(
                select(sessions)
                .where(sessions.c.user_id == user_id)
                .order_by(sessions.c.created_at.desc())
            ).mappings()
            out = [dict(r) for r in rows]
        if live_only:
            out = [r for r in out if self._alive_row(r, now)]
        return [public_session(r) for r in out]

    def _alive_row(self, row: dict[str, Any], now: int) -> bool:
        last = max(row["last_seen_at"], self._seen.get(row["id"], 0))
        return row["revoked_at"] is None and row["expires_at"] > now and now - last <= self.idle_us

    def forget(self, conn: Connection | None = None) -> None:
        """Drop every cached lookup (after a change on this process) and, given the
        writer's ``conn``, tell the other processes to do the same once it commits."""
        if conn is not None:
            self.announcer.announce(conn, KIND_SESSION, "")
        with self._lock:
            self._cache.clear()
            self._alive.clear()

    def session_alive(self, session_id: str) -> bool:
        """True while session ``session_id`` lives: not revoked, within its absolute
        lifetime, its person neither disabled nor deleted. Idle time is not judged here
        (a token minted in a session serves programs, which do not keep it busy)."""
        expires = self._alive_until(session_id, self._load_session_expiry)
        return expires is not None and expires > self._clock.now_us()

    def person_alive(self, user_id: str) -> bool:
        """True while user ``user_id`` exists and is not disabled."""
        return self._alive_until("usr:" + user_id, self._load_person) is not None

    def _alive_until(self, ident: str, load: Callable[[str], int | None]) -> int | None:
        cached = self._alive.get(ident)
        if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        value = load(ident)
        with self._lock:
            if len(self._alive) > 100_000:
                self._alive.clear()
            self._alive[ident] = (time.monotonic(), value)
        return value

    def _load_session_expiry(self, session_id: str) -> int | None:
        with read_conn(self._engine) as conn:
            row = conn.execute(
                select(sessions.c.expires_at, sessions.c.revoked_at, users.c.disabled_at)
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.id == session_id)
            ).first()
        if row is None or row.revoked_at is not None or row.disabled_at is not None:
            return None
        return int(row.expires_at)

    def _load_person(self, ident: str) -> int | None:
        with read_conn(self._engine) as conn:
            row = conn.execute(
                select(users.c.disabled_at).where(users.c.id == ident.removeprefix("usr:"))
            ).first()
        return None if row is None or row.disabled_at is not None else 0

    # -- verification --------------------------------------------------------------------

    def verify(self, token: str, source: str) -> Principal:
        """The principal of a live session: a person judged by their roles' policies.

        Raises Unauthenticated (one vague message) for anything malformed, unknown,
        revoked, past its absolute lifetime, idle too long, or of a disabled user."""
        record = self.lookup(token)
        return Principal(
            token_id=actor_of(record.name),
            kind=KIND_USER,
            mode=MODE_POLICY,
            prefix="",
            expires_at=record.expires_at,
            policies=record.policies,
            mfa_at=record.mfa_at,
            credential_id=record.id,
        )

    def lookup(self, token: str) -> SessionRecord:
        """The live session of ``token``, counting this as a use. Raises Unauthenticated."""
        if keyformat.parse(token) != keyformat.KIND_SESSION:
            raise Unauthenticated(_UNAUTHENTICATED)
        digest = self.hash(token)
        cached = self._cache.get(digest)
        fresh = cached is not None and time.monotonic() - cached[0] < self._cache_seconds
        record = cached[1] if cached is not None and fresh else self._reload(digest)
        now = self._clock.now_us()
        if record is not None and self._idle(record, now) and fresh:
            # Another process may have served (and written) a more recent use.
            record = self._reload(digest)
        if (
            record is None
            or record.revoked_at is not None
            or record.disabled
            or record.expires_at <= now
            or self._idle(record, now)
        ):
            raise Unauthenticated(_UNAUTHENTICATED)
        self._note_use(record, now)
        return record

    def _idle(self, record: SessionRecord, now: int) -> bool:
        last = max(record.last_seen_at, self._seen.get(record.id, 0))
        return now - last > self.idle_us

    def _reload(self, digest: bytes) -> SessionRecord | None:
        record = self._load(digest)
        with self._lock:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[digest] = (time.monotonic(), record)
        return record

    def _load(self, digest: bytes) -> SessionRecord | None:
        with read_conn(self._engine) as conn:
            row = conn.execute(
                select(sessions, users.c.name, users.c.disabled_at)
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.token_hash == digest)
            ).first()
            if row is None or not hmac.compare_digest(bytes(row.token_hash), digest):
                return None
            names = conn.execute(
                select(roles.c.policies)
                .join(user_roles, user_roles.c.role == roles.c.name)
                .where(user_roles.c.user_id == row.user_id)
            ).all()
        policies = sorted({p for r in names for p in orjson.loads(r.policies)})
        return SessionRecord(
            id=row.id,
            user_id=row.user_id,
            name=row.name,
            policies=tuple(policies),
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
            mfa_at=row.mfa_at,
            revoked_at=row.revoked_at,
            disabled=row.disabled_at is not None,
        )

    # -- last use ------------------------------------------------------------------------

    def _note_use(self, record: SessionRecord, now: int) -> None:
        with self._lock:
            if now > self._seen.get(record.id, 0):
                self._seen[record.id] = now
            stored = max(record.last_seen_at, self._written.get(record.id, 0))
            if now - stored >= self._touch_us:
                self._pending[record.id] = now
                self._written[record.id] = now

    def flush_touches(self) -> int:
        """Write the batched last uses (the poll loop calls this every few seconds);
        returns how many sessions were written. Never moves ``last_seen_at`` back."""
        with self._lock:
            pending, self._pending = self._pending, {}
            # Forget what this process remembers of sessions idle for good.
            horizon = self._clock.now_us() - self.idle_us - self._touch_us
            for table in (self._seen, self._written):
                for session_id in [s for s, at in table.items() if at < horizon]:
                    del table[session_id]
        if not pending:
            return 0
        with write_txn(self._engine) as conn:
            for session_id, at in pending.items():
                conn.execute(
                    update(sessions)
                    .where(sessions.c.id == session_id, sessions.c.last_seen_at < at)
                    .values(last_seen_at=at)
                )
        return len(pending)


def public_session(record: dict[str, Any]) -> dict[str, Any]:
    """A session without its token hash; times as ISO strings."""
    return {
        "id": record["id"],
        "created_at": iso_us(record["created_at"]),
        "last_seen_at": iso_us(record["last_seen_at"]),
        "expires_at": iso_us(record["expires_at"]),
        "mfa_at": iso_us(record["mfa_at"]),
        "revoked": record["revoked_at"] is not None,
        "source": record["source"],
    }
