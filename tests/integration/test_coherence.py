"""Cluster coherence (issue 12 item 2): a change made on one server process reaches the
other process sharing its database well within the lookup caches' lifetime. The caches
are set to 30 s here, so only the announcement (SQLite: the polled table; PostgreSQL:
LISTEN/NOTIFY; with Redis: pub/sub) can explain a refusal within 200 ms."""

from __future__ import annotations

import contextlib
import queue
import secrets
from pathlib import Path

import pytest
from coherence_kit import KINDS, prepare, propagation, two_servers

from keysafe.store.engine import make_engine, write_txn
from keysafe.store.invalidations import KIND_ALL, KIND_KEY, KIND_TOKEN, PostgresNotify
from pgtest import pg_schema_url

WITHIN = 0.2


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("engine", "redis"),
    [
        ("sqlite", False),
        ("postgres", False),
        pytest.param("postgres", True, marks=pytest.mark.redis),
    ],
    ids=["sqlite", "postgres-notify", "postgres-redis"],
)
def test_every_kind_of_change_reaches_the_other_process_at_once(
    tmp_path: Path, engine: str, redis: bool
) -> None:
    with two_servers(engine, tmp_path, redis=redis) as pair:
        for kind in KINDS:  # the seal comes last: it ends everything
            change = prepare(pair, kind)
            try:
                delay = propagation(pair, change, limit=WITHIN)
            except AssertionError as exc:
                raise AssertionError(f"{kind}: {exc}") from exc
            assert delay < WITHIN, (kind, delay)


def test_postgres_announces_a_change_only_when_it_commits() -> None:
    """``pg_notify`` rides the writer's transaction: a rollback announces nothing."""
    with pg_schema_url() as url:
        engine = make_engine(url)
        got: queue.Queue[tuple[str, str]] = queue.Queue()
        carrier = PostgresNotify(engine)
        carrier.start(lambda kind, ident: got.put((kind, ident)))
        try:
            assert got.get(timeout=10) == (KIND_ALL, "")
            with contextlib.suppress(RuntimeError), write_txn(engine) as conn:
                carrier.announce(conn, KIND_TOKEN, "tok_rolled_back")
                raise RuntimeError("refused")
            marker = f"key_{secrets.token_hex(6)}"
            with write_txn(engine) as conn:
                carrier.announce(conn, KIND_KEY, marker)
            # Other databases' tests may share the channel: skip their messages.
            while (message := got.get(timeout=10)) != (KIND_KEY, marker):
                assert message != (KIND_TOKEN, "tok_rolled_back")
        finally:
            carrier.close()
            engine.dispose()
