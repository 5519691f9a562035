"""Applications keep working while their database password rotates.

A real ``keysafe server`` process rotates a PostgreSQL credential (postgres rotator,
``alternate`` mode) through the API every two seconds for a minute, while loader
threads open database connections in a loop with the credential the SDK hands them
(``Client.using`` with the default 30 s cache: cached credentials go stale within two
rotations, so the refetch path is exercised many times). Not one connection may fail.

The target is this machine's PostgreSQL started privately with password checking
(tests/pgauth.py): the shared server trusts every local login, so a stale password
would not fail there and the test would prove nothing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from server_proc import ServerProc, init_vault, running

from keysafe.client import Client
from pgauth import password_postgres

DURATION = 60.0
EVERY = 2.0
LOADERS = 2
APP_PATH = "app/db/DATABASE_URL"
ADMIN_PATH = "ops/pg/ADMIN_URL"
ROLE = "ks_load_app"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def admin_url() -> Iterator[str]:
    with password_postgres() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(ROLE)))
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(ROLE + "_b"), sql.Identifier(ROLE)
                )
            )
        yield url  # the whole cluster goes away afterwards, roles included


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    db = tmp_path / "db"
    db.mkdir()
    vault = init_vault("sqlite", tmp_path, f"sqlite:///{db / 'keysafe.db'}")
    with running(vault) as proc:
        yield proc


class Loader(threading.Thread):
    """Opens a connection with the SDK's credential, runs a query, closes; repeatedly."""

    def __init__(self, client: Client, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = stop
        self.connections = 0
        self.refused: Counter[str] = Counter()  # stale credentials refused, then retried
        self.users: Counter[str] = Counter()
        self.failures: list[str] = []

    def connect(self, url: str) -> str:
        try:
            with psycopg.connect(url, connect_timeout=10) as conn:
                row = conn.execute("SELECT current_user::text").fetchone()
        except psycopg.OperationalError as exc:
            self.refused[str(exc).rsplit(":", 1)[-1].strip()[:60]] += 1
            raise
        assert row is not None
        return str(row[0])

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                user = self.client.using(APP_PATH, self.connect, retry_on=psycopg.OperationalError)
            except Exception as exc:  # any failure reaching the application counts
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            self.connections += 1
            self.users[user] += 1


def test_connections_never_fail_while_the_password_rotates_every_two_seconds(
    admin_url: str, server: ServerProc
) -> None:
    with server.root() as root:
        assert root.put(f"/api/v1/secrets/{ADMIN_PATH}", json={"value": admin_url}).is_success
        assert root.put(f"/api/v1/secrets/{APP_PATH}", json={"value": "unset"}).is_success
        policy = {
            "rotator": "postgres",
            "approve_targets": True,  # root approves the target it names
            "options": {"target-secret": ADMIN_PATH, "role": ROLE, "dbname": "postgres"},
            "every_seconds": 3600,  # the schedule stays out of the way: we rotate by hand
            "grace_seconds": 60,
        }
        reply = root.put(f"/api/v1/rotation/policies/{APP_PATH}", json=policy)
        assert reply.status_code == 200, reply.text
        first = root.post(f"/api/v1/rotation/rotate/{APP_PATH}")
        assert first.status_code == 200, first.text
        # The application holds a token that reads its own folder and nothing else.
        token = root.post(
            "/api/v1/tokens", json={"prefix": "app/db/", "mode": "read", "description": "app"}
        )
        assert token.is_success, token.text
        app_token = token.json()["token"]

        client = Client(server.base_url, app_token, cacert=server.vault.tls.ca_cert)
        stop = threading.Event()
        loaders = [Loader(client, stop) for _ in range(LOADERS)]
        for loader in loaders:
            loader.start()
        outcomes: Counter[int] = Counter()
        errors: list[str] = []
        try:
            deadline = time.monotonic() + DURATION
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                next_at += EVERY
                reply = root.post(f"/api/v1/rotation/rotate/{APP_PATH}")
                outcomes[reply.status_code] += 1
                if reply.status_code != 200:
                    errors.append(reply.text[:300])
                time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            stop.set()
            for loader in loaders:
                loader.join(30)
            client.close()
        status = root.get(f"/api/v1/rotation/policies/{APP_PATH}")

    connections = sum(loader.connections for loader in loaders)
    refused = sum((loader.refused for loader in loaders), Counter[str]())
    users = sum((loader.users for loader in loaders), Counter[str]())
    failures = [f for loader in loaders for f in loader.failures]
    summary = (
        f"{connections} connections, {len(failures)} failed, rotations {dict(outcomes)}, "
        f"stale credentials refused then retried: {dict(refused)}, users {dict(users)}"
    )
    print(summary)
    assert failures == [], summary
    assert errors == [], errors
    assert outcomes[200] >= int(DURATION / EVERY) - 3, summary  # ~30 rotations landed
    assert connections > 100, summary
    # Both logins of the pair served, and stale cached credentials really were refused
    # by PostgreSQL and recovered by the refetch: the test is not vacuous.
    assert set(users) == {ROLE, ROLE + "_b"}, summary
    assert sum(refused.values()) > 0, summary
    assert status.status_code == 200, status.text
