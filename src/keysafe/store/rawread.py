"""The hot read path: fixed SQL on a raw driver connection kept per thread.

SQLAlchemy's connection checkout, transaction events and result processing cost about
ten times the query itself on SQLite; the audited-read budget cannot pay that. Only
single-statement, read-only queries go through here (autocommit, so no transaction is
left open); everything that writes uses the engine.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from keysafe.errors import StorageUnavailable


class RawReader:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()
        self._postgres = engine.dialect.name == "postgresql"
        self._errors: tuple[type[BaseException], ...] = (
            DBAPIError,
            PoolTimeout,
            *_driver_errors(engine),
        )

    def sql(self, text: str) -> str:
        """``text`` with ``?`` placeholders rewritten for the driver."""
        return text.replace("?", "%s") if self._postgres else text

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._engine.raw_connection()
            if self._postgres:
                conn.driver_connection.autocommit = True  # type: ignore[union-attr]
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this reader opened (on shutdown)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    def fetchone(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """One row of a read-only query; storage failures become StorageUnavailable."""
        conn = None
        try:
            # Opening the connection fails like a query does when the database is down.
            conn = self._conn()
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                row: tuple[Any, ...] | None = cur.fetchone()
            finally:
                cur.close()
        except self._errors as exc:
            # Drop the connection: the next call opens a fresh one.
            self._local.conn = None
            if conn is not None:
                with contextlib.suppress(Exception):  # already failing; the original matters
                    conn.invalidate()
            raise StorageUnavailable(f"database unavailable: {str(exc).splitlines()[0]}") from exc
        return row


def _driver_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    dbapi = engine.dialect.dbapi
    error = getattr(dbapi, "Error", None)
    return (error,) if isinstance(error, type) else ()


def checkpoint(engine: Engine, mode: str = "PASSIVE") -> None:
    """A WAL checkpoint (SQLite only). PASSIVE moves pages without blocking anyone;
    TRUNCATE (at start-up, before serving) also empties the WAL, so that reads of a
    freshly loaded store do not go through a large WAL index."""
    if engine.dialect.name != "sqlite":
        return
    if mode not in ("PASSIVE", "TRUNCATE"):
        raise ValueError(f"unknown checkpoint mode {mode}")
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute(f"PRAGMA wal_checkpoint({mode})")
        cur.close()
    finally:
        conn.close()
