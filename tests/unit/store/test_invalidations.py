"""Announced invalidations: delivered once the writer commits, never for a rollback;
a listener that cannot connect keeps retrying in its thread without blocking anyone."""

from __future__ import annotations

import contextlib
import queue
from pathlib import Path

import pytest
from sqlalchemy import Engine

from keysafe.store.engine import make_engine, write_txn
from keysafe.store.invalidations import (
    KIND_ALL,
    KIND_KEY,
    KIND_TOKEN,
    PostgresNotify,
    ProcessOnly,
    RedisPubSub,
    TableInvalidations,
    after_commit,
    build_invalidations,
)
from keysafe.store.migrate import upgrade

WAIT = 10.0  # a bound on a wait, not a measured duration


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'keysafe.db'}")
    upgrade(engine)
    return engine


def test_after_commit_actions_run_only_when_the_transaction_commits(engine: Engine) -> None:
    ran: list[str] = []
    with contextlib.suppress(RuntimeError), write_txn(engine) as conn:
        after_commit(conn, lambda: ran.append("rolled back"))
        raise RuntimeError("refused")
    with write_txn(engine) as conn:
        after_commit(conn, lambda: ran.append("committed"))
        assert ran == []  # not before the commit
    assert ran == ["committed"]
    with write_txn(engine):
        pass  # a later transaction on the same pooled connection runs nothing stale
    assert ran == ["committed"]


def test_the_table_carrier_delivers_committed_changes_in_order(engine: Engine) -> None:
    got: queue.Queue[tuple[str, str]] = queue.Queue()
    carrier = TableInvalidations(engine, poll_seconds=0.005)
    carrier.start(lambda kind, ident: got.put((kind, ident)))
    try:
        assert got.get(timeout=WAIT) == (KIND_ALL, "")  # dropped everything on connect
        with contextlib.suppress(RuntimeError), write_txn(engine) as conn:
            carrier.announce(conn, KIND_TOKEN, "tok_rolled_back")
            raise RuntimeError("refused")
        with write_txn(engine) as conn:
            carrier.announce(conn, KIND_TOKEN, "tok_1")
            carrier.announce(conn, KIND_KEY, "key_1")
        assert got.get(timeout=WAIT) == (KIND_TOKEN, "tok_1")
        assert got.get(timeout=WAIT) == (KIND_KEY, "key_1")
        assert carrier.connected
    finally:
        carrier.close()
    assert got.empty()


def test_a_handler_failure_does_not_stop_the_listener(engine: Engine) -> None:
    got: queue.Queue[str] = queue.Queue()

    def handler(kind: str, ident: str) -> None:
        if ident == "boom":
            raise ValueError("bad entry")
        got.put(ident)

    carrier = TableInvalidations(engine, poll_seconds=0.005)
    carrier.start(handler)
    try:
        assert got.get(timeout=WAIT) == ""
        with write_txn(engine) as conn:
            carrier.announce(conn, KIND_TOKEN, "boom")
            carrier.announce(conn, KIND_TOKEN, "after")
        assert got.get(timeout=WAIT) == "after"
    finally:
        carrier.close()


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_an_unreachable_carrier_retries_in_its_thread(kind: str) -> None:
    """Nothing listens on port 9 here: start returns at once, the listener stays
    disconnected (the caches' expiry is the safety net) and close ends it."""
    carrier: PostgresNotify | RedisPubSub
    if kind == "postgres":
        carrier = PostgresNotify(make_engine("postgresql://nobody@127.0.0.1:9/none"))
    else:
        carrier = RedisPubSub("redis://127.0.0.1:9/0")
    delivered: list[str] = []
    carrier.start(lambda k, i: delivered.append(k))
    assert not carrier.connected
    carrier.close()
    assert delivered == []


def test_a_change_commits_when_redis_cannot_take_its_announcement(engine: Engine) -> None:
    """Fail open on the announcement only: the change stands, other processes fall back
    on their caches' expiry (and a warning is logged)."""
    carrier = RedisPubSub("redis://127.0.0.1:9/0")
    try:
        with write_txn(engine) as conn:
            carrier.announce(conn, KIND_TOKEN, "tok_1")
            conn.exec_driver_sql("INSERT INTO invalidations (kind, ident, at) VALUES ('x', 'y', 0)")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT ident FROM invalidations").scalars().all() == ["y"]
    finally:
        carrier.close()


def test_each_deployment_gets_its_carrier(engine: Engine) -> None:
    assert isinstance(build_invalidations(engine, None), TableInvalidations)
    assert isinstance(build_invalidations(make_engine("sqlite:///:memory:"), None), ProcessOnly)
    pg = make_engine("postgresql://nobody@127.0.0.1:9/none")
    assert isinstance(build_invalidations(pg, None), PostgresNotify)
    redis_carrier = build_invalidations(engine, "redis://127.0.0.1:9/0")
    assert isinstance(redis_carrier, RedisPubSub)
    redis_carrier.close()
