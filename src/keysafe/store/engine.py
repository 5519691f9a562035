"""The one engine factory: SQLite pragmas for the embedded mode, a pool for PostgreSQL."""

from __future__ import annotations

import contextlib
import math
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool

from keysafe.errors import InvalidInput, StorageUnavailable
from keysafe.store.invalidations import run_after_commit

SQLITE_BUSY_TIMEOUT_MS = 5000


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and pick the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("sqlite://", "postgresql+psycopg://")):
        return url
    raise InvalidInput(f"unsupported database URL scheme in {url.split(':', 1)[0]!r}")


@dataclass(frozen=True)
class DbTimeouts:
    """Bounds on every PostgreSQL wait, so a hung or unreachable server gives errors
    (503) instead of a frozen node. SQLite has its busy timeout instead."""

    connect_seconds: float = 5.0
    # Server side: a statement, or a transaction left idle, is ended by PostgreSQL.
    statement_seconds: float = 10.0
    idle_in_transaction_seconds: float = 30.0
    # Waiting for a free pooled connection.
    pool_seconds: float = 5.0
    # TCP keep-alives find a dead peer (host gone, cable cut) on idle connections.
    keepalive_idle_seconds: int = 10
    keepalive_interval_seconds: int = 5
    keepalive_count: int = 3


def make_engine(url: str, timeouts: DbTimeouts | None = None) -> Engine:
    """An engine configured for keysafe's access patterns (``timeouts``: PostgreSQL)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return _postgres_engine(url, timeouts or DbTimeouts())


def postgres_connect_args(url: str, timeouts: DbTimeouts) -> dict[str, Any]:
    """libpq parameters bounding connects, statements and idle connections. Server
    settings go in ``options``, appended to any the URL already gives (a search_path)."""
    given = make_url(url).query.get("options", "")
    own = (
        f"-c statement_timeout={int(timeouts.statement_seconds * 1000)} "
        "-c idle_in_transaction_session_timeout="
        f"{int(timeouts.idle_in_transaction_seconds * 1000)}"
    )
    given_text = given if isinstance(given, str) else " ".join(given)
    keepalive_ms = (
        timeouts.keepalive_idle_seconds
        + timeouts.keepalive_interval_seconds * timeouts.keepalive_count
    ) * 1000
    return {
        # libpq takes whole seconds (at least 2); round up so a short setting still bounds.
        "connect_timeout": max(2, math.ceil(timeouts.connect_seconds)),
        "options": f"{given_text} {own}".strip(),
        "keepalives": 1,
        "keepalives_idle": timeouts.keepalive_idle_seconds,
        "keepalives_interval": timeouts.keepalive_interval_seconds,
        "keepalives_count": timeouts.keepalive_count,
        # Unacknowledged data (a peer that vanished mid-write) ends the connection too.
        "tcp_user_timeout": keepalive_ms,
    }


def _postgres_engine(url: str, timeouts: DbTimeouts) -> Engine:
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=timeouts.pool_seconds,
        connect_args=postgres_connect_args(url, timeouts),
    )
    # How long async callers wait on a call (keysafe.store.offload): the statement
    # timeout, plus a margin so the server's own timeout normally answers first.
    wait = timeouts.statement_seconds + 0.5
    return engine.execution_options(ks_wait_seconds=wait)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents 0700 (existing folders are left alone)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered through the umask


def _private_db_file(path: Path) -> None:
    """The database file exists 0600 before SQLite opens it: SQLite gives the -wal and
    -shm files the main file's mode, so the whole vault stays readable by its owner
    only. Files left looser by an older version are tightened."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:" and not path.startswith("file:"):
        _private_dir(Path(path).parent)
        _private_db_file(Path(path))
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if path in ("", ":memory:"):
        # One shared connection: every new one would be a different, empty database.
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args=connect_args, pool_size=8, max_overflow=16)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how a transaction starts (see below).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (kill -9); only an OS crash can
        # lose the last commits, which is the usual trade for embedded databases.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Keep a large store's index pages in memory: reads stay flat from 1k to 100k+.
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA mmap_size=268435456")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front so two writers never deadlock on upgrade.
        if conn.get_execution_options().get("ks_write", False):
            _begin_immediate(conn.connection.dbapi_connection)
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def _begin_immediate(dbapi_conn: Any) -> None:
    """BEGIN IMMEDIATE, retrying briefly while another process holds the write lock.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between attempts, which lets
    one process starve another under load; short jittered retries keep writers fair.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.0002
    dbapi_conn.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 1.5, 0.005)
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


@contextlib.contextmanager
def write_txn(engine: Engine) -> Iterator[Connection]:
    """A write transaction (SQLite: BEGIN IMMEDIATE); commits on success."""
    with storage_errors(), engine.connect() as conn:
        conn = conn.execution_options(ks_write=True)
        committed = False
        try:
            with conn.begin():
                yield conn
            committed = True
        finally:
            # Announcements wait for the commit: another node must never reload the
            # state before the change is visible (see ``keysafe.store.invalidations``).
            run_after_commit(conn, committed)


@contextlib.contextmanager
def read_conn(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; storage failures become StorageUnavailable."""
    with storage_errors(), engine.connect() as conn:
        yield conn


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn driver failures (locked, gone, disk full) into StorageUnavailable."""
    try:
        yield
    except OperationalError as exc:
        raise StorageUnavailable(f"database unavailable: {_short(exc)}") from exc
    except PoolTimeout as exc:
        # Every pooled connection is busy (a slow or hung database holds them).
        raise StorageUnavailable("database unavailable: no free connection") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StorageUnavailable(f"database connection lost: {_short(exc)}") from exc
        raise


def _short(exc: DBAPIError) -> str:
    return str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
