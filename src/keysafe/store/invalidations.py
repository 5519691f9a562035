"""Cache invalidations announced to every process of every node.

Each process keeps short-lived caches of credentials, policies and the seal state. A
change made by one process is announced as a (kind, id) message and every process,
this one included, drops the matching entries as the message arrives; the cache expiry
(``token_cache_seconds``) stays only as a safety net for a listener that is
disconnected.

Three carriers, one per deployment:

- ``PostgresNotify``: ``pg_notify`` inside the writer's transaction (PostgreSQL delivers
  it only if, and once, the transaction commits), ``LISTEN`` on one connection per
  process.
- ``RedisPubSub`` (when ``KEYSAFE_REDIS_URL`` is set): published after the commit.
- ``TableInvalidations`` (SQLite: one node, several workers): a row written inside the
  writer's transaction, polled every ``POLL_SECONDS`` with one indexed read.

Each listener runs in its own daemon thread (never on the event loop), reconnects with
capped backoff, and after every (re)connect tells the handler to drop everything
(``KIND_ALL``), since messages sent while it was away are lost.

Kinds are sent between versions of nodes during a rolling upgrade: only ever add.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text

from keysafe.store.tables import invalidations

__all__ = [
    "CHANNEL",
    "KIND_ALL",
    "KIND_KEY",
    "KIND_POLICY",
    "KIND_SEAL",
    "KIND_SESSION",
    "KIND_TOKEN",
    "UNANNOUNCED",
    "Announcer",
    "Handler",
    "Invalidations",
    "PostgresNotify",
    "ProcessOnly",
    "RedisPubSub",
    "TableInvalidations",
    "after_commit",
    "build_invalidations",
    "run_after_commit",
]

log = logging.getLogger(__name__)

KIND_TOKEN = "token"  # noqa: S105 -- a kind name, not a secret
KIND_KEY = "key"
KIND_SESSION = "session"  # a session, a person or a role changed: all sessions
KIND_POLICY = "policy"
KIND_SEAL = "seal"
KIND_ALL = "all"  # sent to the handler (never on the wire) after a (re)connect

CHANNEL = "keysafe_invalidate"
POLL_SECONDS = 0.02
# Rows older than this are pruned by writers; a poller further behind drops everything.
KEEP_SECONDS = 60.0
BACKOFF_FIRST = 0.1
PUBLISH_TIMEOUT = 0.5
BACKOFF_MAX = 5.0
_AFTER_COMMIT = "ks_after_commit"

Handler = Callable[[str, str], None]


class Announcer(Protocol):
    """What a service that changes cached state calls inside its write transaction."""

    def announce(self, conn: Connection, kind: str, ident: str) -> None: ...


class Invalidations(Announcer, Protocol):
    """An announcer plus the listener that applies everyone's announcements here."""

    def start(self, handler: Handler) -> None: ...

    def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...


class _Unannounced:
    """Announces nothing (a service used on its own, in tests or the CLI)."""

    def announce(self, conn: Connection, kind: str, ident: str) -> None:
        return None


UNANNOUNCED: Announcer = _Unannounced()


def after_commit(conn: Connection, action: Callable[[], None]) -> None:
    """Run ``action`` once the transaction of ``conn`` (opened by ``write_txn``) commits;
    it is dropped if the transaction rolls back."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(action)


def after_commit_mark(conn: Connection) -> int:
    """How many actions are waiting for the commit (see ``drop_after_commit``)."""
    return len(conn.info.get(_AFTER_COMMIT, ()))


def drop_after_commit(conn: Connection, mark: int) -> None:
    """Forget the actions added since ``mark``: their savepoint was rolled back."""
    actions = conn.info.get(_AFTER_COMMIT)
    if actions is not None:
        del actions[mark:]


def run_after_commit(conn: Connection, committed: bool) -> None:
    """Called by ``write_txn`` when its transaction ends; never raises."""
    actions = conn.info.pop(_AFTER_COMMIT, None)
    if not committed or not actions:
        return
    for action in actions:
        try:
            action()
        except Exception as exc:  # the cache expiry remains the safety net
            log.warning("could not announce a change: %s", exc)


def _encode(kind: str, ident: str) -> str:
    return f"{kind}:{ident}"


def _decode(payload: str) -> tuple[str, str]:
    kind, _, ident = payload.partition(":")
    return kind, ident


class _Listener:
    """The daemon thread shared by the carriers: ``run_once`` connects and listens until
    the connection fails or ``stop`` is set; failures back off up to ``BACKOFF_MAX``."""

    name = "invalidations"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handler: Handler | None = None
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self, handler: Handler) -> None:
        self._handler = handler
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _deliver(self, kind: str, ident: str) -> None:
        if self._handler is None:
            return
        try:
            self._handler(kind, ident)
        except Exception as exc:  # one bad message must not stop the listener
            log.warning("could not apply an invalidation (%s): %s", kind, exc)

    def _loop(self) -> None:
        delay = BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                self._run_once()
                delay = BACKOFF_FIRST
            except Exception as exc:
                if self._connected:
                    log.warning("invalidation listener disconnected: %s", exc)
                self._connected = False
                self._stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
            self._connected = False

    def _run_once(self) -> None:
        raise NotImplementedError


class PostgresNotify(_Listener):
    """``pg_notify`` in the writer's transaction, ``LISTEN`` in a thread per process."""

    name = "invalidations-pg"

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )

    def announce(self, conn: Connection, kind: str, ident: str) -> None:
        conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": _encode(kind, ident)})

    def _run_once(self) -> None:
        import psycopg

        with psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=5, keepalives_idle=10
        ) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._connected = True
            self._deliver(KIND_ALL, "")
            while not self._stop.is_set():
                # The timeout bounds how long ``close`` waits and checks the connection.
                for note in conn.notifies(timeout=1.0):
                    self._deliver(*_decode(note.payload))
                conn.execute("SELECT 1")


class RedisPubSub(_Listener):
    """Published after the writer's commit; one subscriber thread per process."""

    name = "invalidations-redis"

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis

        # Publishing follows a commit on a request's thread: a Redis outage may cost a
        # change at most this much, and other processes then rely on the cache expiry.
        self._redis = redis.Redis.from_url(
            url, socket_timeout=PUBLISH_TIMEOUT, socket_connect_timeout=PUBLISH_TIMEOUT
        )
        self._url = url

    def announce(self, conn: Connection, kind: str, ident: str) -> None:
        payload = _encode(kind, ident)
        after_commit(conn, lambda: self._publish(payload))

    def _publish(self, payload: str) -> None:
        self._redis.publish(CHANNEL, payload)

    def _run_once(self) -> None:
        import redis

        client: Any = redis.Redis.from_url(
            self._url, socket_timeout=5.0, socket_connect_timeout=2.0, health_check_interval=2
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(CHANNEL)
            self._connected = True
            self._deliver(KIND_ALL, "")
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self._deliver(*_decode(data.decode() if isinstance(data, bytes) else data))
        finally:
            with contextlib.suppress(Exception):
                pubsub.close()
                client.close()

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self._redis.close()


class TableInvalidations(_Listener):
    """A row in ``invalidations`` written in the writer's transaction; every process
    polls for rows past the last one it saw (SQLite: one node, several workers)."""

    name = "invalidations-table"

    def __init__(self, engine: Engine, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__()
        self._engine = engine
        self._poll = poll_seconds

    def announce(self, conn: Connection, kind: str, ident: str) -> None:
        now = time.time()
        conn.execute(insert(invalidations).values(kind=kind, ident=ident[:200], at=int(now)))
        conn.execute(delete(invalidations).where(invalidations.c.at < int(now - KEEP_SECONDS)))

    def _run_once(self) -> None:
        with self._engine.connect() as conn:
            last = conn.execute(select(func.coalesce(func.max(invalidations.c.seq), 0))).scalar()
            conn.rollback()
        last = int(last or 0)
        self._connected = True
        self._deliver(KIND_ALL, "")
        query = (
            select(invalidations.c.seq, invalidations.c.kind, invalidations.c.ident)
            .where(invalidations.c.seq > bindparam("last"))
            .order_by(invalidations.c.seq)
        )
        while not self._stop.wait(self._poll):
            with self._engine.connect() as conn:
                rows = conn.execute(query, {"last": last}).all()
                conn.rollback()
            for seq, kind, ident in rows:
                last = max(last, int(seq))
                self._deliver(kind, ident)


class ProcessOnly:
    """An in-memory SQLite database lives in one process: nobody else to tell (and its
    one shared connection must not be polled from another thread)."""

    connected = True

    def announce(self, conn: Connection, kind: str, ident: str) -> None:
        return None

    def start(self, handler: Handler) -> None:
        return None

    def close(self) -> None:
        return None


def build_invalidations(engine: Engine, redis_url: str | None) -> Invalidations:
    """Redis pub/sub when ``redis_url`` is set, else PostgreSQL ``LISTEN/NOTIFY``, else
    (SQLite) the polled table."""
    if redis_url:
        return RedisPubSub(redis_url)
    if engine.dialect.name == "postgresql":
        return PostgresNotify(engine)
    if engine.url.database in (None, "", ":memory:"):
        return ProcessOnly()
    return TableInvalidations(engine)
