"""Cluster coherence (issue 12 item 2): a change made on one server process reaches the
other process sharing its database well within the lookup caches' lifetime. The caches
are set to 30 s here, so only the announcement (SQLite: the polled table; PostgreSQL:
LISTEN/NOTIFY; with Redis: pub/sub) can explain a refusal within 200 ms."""

from __future__ import annotations

import contextlib
import queue
import secrets
import time
from pathlib import Path

import pytest
from coherence_kit import ENV, KINDS, SECRET, SHOP, prepare, propagation, two_servers
from server_proc import ServerProc, database_url, init_vault, running

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


@pytest.mark.timeout(120)
def test_a_revocation_reaches_every_worker_of_one_node(tmp_path: Path) -> None:
    """SQLite, one server with two workers: reads on fresh connections (spread over
    both workers) are all refused right after the revocation, with 30 s caches."""
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url)
    with running(vault, workers=2, extra_env=ENV) as server:
        with server.root() as c:
            assert c.put("/api/v1/policies/shop", json={"text": SHOP}).status_code == 200
            assert c.put(SECRET, json={"value": "postgres://shop"}).status_code == 200
            made = c.post("/api/v1/services", json={"name": "web", "policies": ["shop"]})
            assert made.status_code == 200, made.text
            key = c.post("/api/v1/keys", json={"service": "web"}).json()
        assert _fresh_reads(server, key["key"], 16) == {200}  # cached by both workers
        with server.root() as c:
            assert c.delete(f"/api/v1/keys/{key['id']}").status_code == 204
        time.sleep(WITHIN)
        assert _fresh_reads(server, key["key"], 16) == {401}


def _fresh_reads(server: ServerProc, credential: str, n: int) -> set[int]:
    """Status codes of ``n`` reads on new connections (the kernel spreads them)."""
    codes = set()
    for _ in range(n):
        with server.client(credential) as c:
            codes.add(c.get(SECRET, headers={"Connection": "close"}).status_code)
    return codes
