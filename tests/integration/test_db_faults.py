"""A hung or restarted PostgreSQL never freezes a node and never gives 500.

Each test starts its own throwaway PostgreSQL cluster (tests/pgauth.py) and a real
``keysafe server`` on it with short database timeouts, then stops every process of the
cluster (SIGSTOP: sockets stay open, nothing answers) or restarts it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pgfreeze import Frozen
from server_proc import ServerProc, init_vault, pg_connect, running

from pgauth import password_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SHORT_TIMEOUTS = {
    "KEYSAFE_DATABASE_STATEMENT_TIMEOUT_SECONDS": "2",
    "KEYSAFE_DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
    "KEYSAFE_DATABASE_POOL_TIMEOUT_SECONDS": "2",
}
PATH = "/api/v1/secrets/app/DB_FAULT"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProc, str]]:
    with password_postgres() as url:
        vault = init_vault("postgres", tmp_path, url)
        with running(vault, extra_env=SHORT_TIMEOUTS) as server:
            with server.root() as root:
                resp = root.put(PATH, json={"value": "v1"})
                assert resp.status_code in (200, 201), resp.text
                assert root.get(PATH).status_code == 200
            yield server, url


def _until(server: ServerProc, predicate_status: int, seconds: float) -> list[int]:
    """GET the secret and health until both answer ``predicate_status``."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    with server.root() as root:
        while time.monotonic() < deadline:
            read = root.get(PATH, timeout=10).status_code
            health = root.get("/api/v1/sys/health", timeout=2).status_code
            seen += [read, health]
            if read == health == predicate_status:
                return seen
            time.sleep(0.1)
    raise AssertionError(f"not {predicate_status} within {seconds}s: {seen}\n{server.log()}")


def test_hung_postgres_gives_503_fast_and_the_node_recovers(
    served: tuple[ServerProc, str],
) -> None:
    server, url = served
    statuses: list[int] = []
    reads: list[int | str] = []

    def read_once() -> None:
        with server.root() as root:
            try:
                reads.append(root.get(PATH, timeout=15).status_code)
            except httpx.TransportError as exc:
                reads.append(type(exc).__name__)

    with Frozen(url):
        # Token lookups and the cached health answer expire; then everything needs the
        # database, which does not answer at all.
        time.sleep(1.2)
        reader = threading.Thread(target=read_once)
        reader.start()
        health: list[int] = []
        waits: list[float] = []
        frozen_until = time.monotonic() + 6
        with server.client() as anon:
            while time.monotonic() < frozen_until:
                # Answered at all within 2 s (a client timeout, not a timing assertion).
                asked = time.monotonic()
                resp = anon.get("/api/v1/sys/health", timeout=2)
                waits.append(time.monotonic() - asked)
                health.append(resp.status_code)
                if resp.status_code == 503:
                    assert "database" in resp.json()["reason"], resp.text
                time.sleep(0.2)
            head = anon.head("/v1/sys/health", timeout=2)
            assert head.status_code == 503
        print(f"health while frozen: {health}, slowest answer {max(waits):.2f} s")
        reader.join(20)
        assert not reader.is_alive()
        statuses += health
        # The read ended with 503 (statement timeout 2 s plus margins), not a hang.
        assert reads == [503], reads
        assert health[-1] == 503, health
    statuses += _until(server, 200, 15)
    assert 500 not in statuses, statuses


def test_postgres_restart_under_read_load_gives_no_500(
    served: tuple[ServerProc, str],
) -> None:
    server, url = served
    with pg_connect(url) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    data = row[0]
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with server.root() as root:
            while not stop.is_set():
                try:
                    statuses.append(root.get(PATH, timeout=15).status_code)
                except httpx.TransportError:
                    statuses.append(-1)

    readers = [threading.Thread(target=load) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        time.sleep(1)
        bindir = Path(
            subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=False
            ).stdout.strip()
            or "/usr/lib/postgresql/15/bin"
        )
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", data, "-l", f"{data}/restart.log"]
        subprocess.run(
            [*pg_ctl, "-m", "fast", "-w", "-t", "60", "restart"],
            check=True,
            # Not a pipe: the new server would hold it open for as long as it runs.
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3)
    finally:
        stop.set()
        for reader in readers:
            reader.join(30)
    assert statuses, "no reads were made"
    assert 500 not in statuses, statuses
    assert -1 not in statuses, statuses
    print(f"reads during the restart: {sorted(set(statuses))}, {len(statuses)} in all")
    assert statuses[-1] == 200, statuses[-20:]
