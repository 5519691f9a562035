"""Several ``keysafe server`` nodes started at the same moment on one empty PostgreSQL
database: every node comes up (migrations run under a lock), registers itself, is
listed by ``keysafe operator members``, and names itself in the audit events it writes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from server_proc import KEYSAFE_CLI, ServerProc, Vault, init_vault, start_server
from sqlalchemy import Engine, text

from keysafe.store.engine import make_engine
from keysafe.store.migrate import MIGRATION_LOCK_ID, upgrade
from pgtest import PG_BASE, _pg_problem

NODES = 3


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database ``ks_t_<random>`` on the shared server, dropped
    afterwards (with every connection a node left open)."""
    problem = _pg_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    import psycopg

    name = "ks_t_" + secrets.token_hex(6)
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_BASE.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def _start_all(vault: Vault, count: int) -> list[ServerProc]:
    """Start ``count`` servers at the same moment; each must answer health (503: the
    vault is not initialised yet). Stops the ones that came up if any did not."""
    gate = threading.Barrier(count)

    def one(_: int) -> ServerProc:
        gate.wait()
        return start_server(vault, use_key_file=False, expect_status=503)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(one, i) for i in range(count)]
    started = [f.result() for f in futures if f.exception() is None]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        for server in started:
            server.stop()
        raise AssertionError(f"{len(failed)} of {count} nodes did not come up: {failed[0]}")
    return started


def _cli(server: ServerProc, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    env.update(
        KEYSAFE_HOME=str(server.vault.home.parent / "cli-home"),
        KEYSAFE_ADDR=server.base_url,
        KEYSAFE_TOKEN=token,
        KEYSAFE_CACERT=str(server.vault.tls.ca_cert),
    )
    return subprocess.run(
        [KEYSAFE_CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _wait_members(server: ServerProc, token: str, want: int) -> list[dict[str, Any]]:
    """The member list once ``want`` nodes are up and unsealed (heartbeats every 5 s)."""
    deadline = time.monotonic() + 30
    with server.client(token) as client:
        while True:
            resp = client.get("/api/v1/sys/members")
            assert resp.status_code == 200, resp.text
            found: list[dict[str, Any]] = resp.json()["members"]
            ready = [m for m in found if m["status"] == "up" and not m["sealed"]]
            if len(ready) >= want or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


@pytest.mark.postgres
def test_nodes_started_together_all_come_up_and_are_listed(tmp_path: Path, db_url: str) -> None:
    vault = init_vault("postgres", tmp_path, db_url, embedded=False)
    servers = _start_all(vault, NODES)
    try:
        with servers[0].client() as client:
            resp = client.post("/api/v1/sys/init", json={"shares": 1, "threshold": 1})
            assert resp.status_code == 200, resp.text
            share, root = resp.json()["shares"][0], resp.json()["root_token"]
        for server in servers:  # Shamir: each node is unsealed on its own
            with server.client() as client:
                resp = client.post("/api/v1/sys/unseal", json={"share": share})
                assert resp.status_code == 200, resp.text
                assert resp.json()["sealed"] is False, resp.text

        members = _wait_members(servers[0], root, NODES)
        assert len(members) == NODES, members
        assert {m["status"] for m in members} == {"up"}, members
        assert {m["sealed"] for m in members} == {False}, members
        addresses = {m["address"] for m in members}
        assert addresses == {s.base_url for s in servers}, members
        ids = {m["address"]: m["id"] for m in members}

        # The CLI, as a real process, through any node.
        out = _cli(servers[2], root, "operator", "members", "--json")
        assert out.returncode == 0, out.stderr
        listed = orjson.loads(out.stdout)
        assert sorted(m["id"] for m in listed) == sorted(ids.values())
        out = _cli(servers[1], root, "operator", "members")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].split()[:5] == ["ID", "ADDRESS", "VERSION", "SEALED", "STATUS"]
        assert len(lines) == 1 + NODES, out.stdout
        for node_id in ids.values():
            row = next(line for line in lines if line.startswith(node_id))
            assert row.split()[3:5] == ["no", "up"], row

        # Each node names itself in the events it writes, and the chain still verifies.
        for n, server in enumerate(servers):
            with server.client(root) as client:
                resp = client.put(f"/api/v1/secrets/cluster/node{n}", json={"value": "v"})
                assert resp.status_code in (200, 201), resp.text
        with servers[0].client(root) as client:
            resp = client.get("/api/v1/audit/events", params={"limit": 1000})
            assert resp.status_code == 200, resp.text
            events = resp.json()["events"]
            verified = client.post("/api/v1/audit/verify")
            assert verified.status_code == 200, verified.text
            assert verified.json()["ok"] is True, verified.text
        for n, server in enumerate(servers):
            writes = [e for e in events if e["path"] == f"cluster/node{n}"]
            assert writes, events[-5:]
            assert {e["node"] for e in writes} == {ids[server.base_url]}, writes
        assert all(e["node"] in ids.values() for e in events), events
    finally:
        for server in servers:
            server.stop()


@pytest.mark.postgres
def test_migrations_wait_for_the_lock(db_url: str) -> None:
    """``upgrade`` waits on the migration lock another node holds, then finds the schema
    current. Shown with PostgreSQL's own lock table, not with timing."""
    import psycopg

    engine = make_engine(db_url)
    try:
        with psycopg.connect(db_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
            done = threading.Event()
            errors: list[BaseException] = []

            def migrate() -> None:
                try:
                    upgrade(engine)
                except BaseException as exc:  # reported below
                    errors.append(exc)
                finally:
                    done.set()

            worker = threading.Thread(target=migrate)
            worker.start()
            waiting = 0
            while not waiting and not done.is_set():
                row = holder.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND NOT granted AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ).fetchone()
                waiting = int(row[0]) if row else 0
            assert not done.is_set(), errors  # it did not run past the lock
            tables = holder.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'nodes'"
            ).fetchone()
            assert tables is not None
            assert tables[0] == 0  # nothing migrated meanwhile
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
            worker.join()
            assert not errors, errors
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM nodes")).scalar() == 0
        upgrade(engine)  # a second node afterwards: nothing to do
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_node_with_several_workers_registers_once(tmp_path: Path, db_url: str) -> None:
    """Workers and the job process of one server share its id: one row, and every
    worker's audit events name that node."""
    vault = init_vault("postgres", tmp_path, db_url)
    assert vault.root_token is not None
    server = start_server(vault, workers=2)
    try:
        members = _wait_members(server, vault.root_token, 1)
        assert len(members) == 1, members
        assert members[0]["address"] == server.base_url
        assert members[0]["sealed"] is False
        node_id = members[0]["id"]
        # New connections, so that both workers are likely to serve some of them.
        for n in range(8):
            with server.root() as client:
                resp = client.put(f"/api/v1/secrets/multi/k{n}", json={"value": "v"})
                assert resp.status_code in (200, 201), resp.text
        with server.root() as client:
            events = client.get("/api/v1/audit/events", params={"limit": 1000}).json()["events"]
        assert events
        assert {e["node"] for e in events} == {node_id}, events
        assert len(_wait_members(server, vault.root_token, 1)) == 1
    finally:
        server.stop()


def test_sqlite_upgrades_started_together_serialise(tmp_path: Path) -> None:
    """On SQLite the migration transaction begins with BEGIN IMMEDIATE, which is the
    lock: upgrades started together on a new file all succeed."""
    url = f"sqlite:///{tmp_path / 'keysafe.db'}"
    engines = [make_engine(url) for _ in range(NODES)]
    gate = threading.Barrier(NODES)

    def one(engine: Engine) -> None:
        gate.wait()
        upgrade(engine)

    try:
        with ThreadPoolExecutor(NODES) as pool:
            for future in [pool.submit(one, e) for e in engines]:
                future.result()
        with engines[0].connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM nodes")).scalar() == 0
    finally:
        for engine in engines:
            engine.dispose()
