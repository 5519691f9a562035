"""Every PostgreSQL connection is bounded; a database that cannot be reached is
StorageUnavailable (503), the hot read path included, never an unexpected error."""

from __future__ import annotations

import socket

import pytest

from keysafe.errors import StorageUnavailable
from keysafe.store.engine import DbTimeouts, make_engine, postgres_connect_args, read_conn
from keysafe.store.rawread import RawReader


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connect_args_bound_every_wait() -> None:
    timeouts = DbTimeouts(connect_seconds=1.5, statement_seconds=2.5)
    args = postgres_connect_args("postgresql+psycopg://u@h/db", timeouts)
    assert args["connect_timeout"] == 2
    assert "-c statement_timeout=2500" in args["options"]
    assert "-c idle_in_transaction_session_timeout=30000" in args["options"]
    assert args["keepalives"] == 1
    assert args["keepalives_idle"] == 10


def test_connect_args_keep_the_urls_own_options() -> None:
    url = "postgresql+psycopg://u@h/db?options=-csearch_path%3Dks_x"
    options = postgres_connect_args(url, DbTimeouts())["options"]
    assert options.startswith("-csearch_path=ks_x ")
    assert "statement_timeout=10000" in options


def test_unreachable_database_is_storage_unavailable_on_the_raw_read_path() -> None:
    engine = make_engine(f"postgresql://nobody@127.0.0.1:{_closed_port()}/none")
    reader = RawReader(engine)
    try:
        with pytest.raises(StorageUnavailable):
            reader.fetchone(reader.sql("SELECT 1 WHERE 1 = ?"), (1,))
        with pytest.raises(StorageUnavailable), read_conn(engine):
            pass
    finally:
        reader.close()
        engine.dispose()
