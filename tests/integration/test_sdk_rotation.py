"""The SDK's cache and refetch, and the postgres/redis rotators driven by a real server.

One ``keysafe server`` process (SQLite) serves every test of the module; each test uses
its own paths and its own target login.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import redis
from psycopg import sql
from server_proc import ServerProc, init_vault, running

from keysafe.client import Client
from pgauth import password_postgres

REDIS_URL = os.environ.get("KEYSAFE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("sdk-rotation")
    db = tmp / "db"
    db.mkdir()
    vault = init_vault("sqlite", tmp, f"sqlite:///{db / 'keysafe.db'}")
    with running(vault) as proc:
        yield proc


@pytest.fixture
def root(server: ServerProc) -> Iterator[httpx.Client]:
    with server.root() as client:
        yield client


def sdk(server: ServerProc, **kw: float) -> Client:
    return Client(server.base_url, server.vault.root_token, server.vault.tls.ca_cert, **kw)


def put(root: httpx.Client, path: str, value: str) -> None:
    reply = root.put(f"/api/v1/secrets/{path}", json={"value": value})
    assert reply.is_success, reply.text


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def test_the_cache_serves_until_refresh(server: ServerProc, root: httpx.Client) -> None:
    path = unique("sdk/cache") + "/TOKEN"
    put(root, path, "v1")
    with sdk(server) as cached, sdk(server, cache_ttl=0) as uncached:
        assert cached.get(path) == "v1"
        put(root, path, "v2")  # written by someone else
        assert cached.get(path) == "v1"
        assert uncached.get(path) == "v2"
        assert cached.refresh(path) == "v2"
        assert cached.get(path) == "v2"
        cached.put_secret(path, "v3")  # its own write drops the cached value
        assert cached.get(path) == "v3"


@pytest.fixture
def redis_user() -> Iterator[str]:
    admin = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        admin.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required in CI but unreachable: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")
    name = unique("ks_rot_api_")
    admin.execute_command("ACL", "SETUSER", name, "on", "+ping")  # type: ignore[no-untyped-call]
    yield name
    admin.acl_deluser(name)
    admin.close()


def can_auth(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return bool(client.ping())
    except redis.AuthenticationError:
        return False
    finally:
        client.close()


def test_redis_rotation_through_the_api_and_the_sdk_retry(
    server: ServerProc, root: httpx.Client, redis_user: str
) -> None:
    folder = unique("sdk/redis")
    path, admin_path = f"{folder}/REDIS_URL", f"{folder}/ADMIN_URL"
    put(root, admin_path, REDIS_URL)
    put(root, path, "unset")
    policy = {
        "rotator": "redis",
        "approve_targets": True,  # root approves the target it names
        "options": {"target-secret": admin_path, "user": redis_user},
        "every_seconds": 3600,
        "grace_seconds": 0,  # the previous password is removed right after promotion
    }
    assert root.put(f"/api/v1/rotation/policies/{path}", json=policy).status_code == 200
    assert root.post(f"/api/v1/rotation/rotate/{path}").status_code == 200
    with sdk(server) as client:
        first = client.get(path)
        assert urlsplit(first).username == redis_user
        assert can_auth(first)
        reply = root.post(f"/api/v1/rotation/rotate/{path}")
        assert reply.status_code == 200, reply.text
        assert not can_auth(first)  # retired at once (grace 0)
        assert client.get(path) == first  # still cached...
        seen: list[str] = []

        def ping(url: str) -> bool:
            seen.append(url)
            conn = redis.Redis.from_url(url, socket_timeout=5)
            try:
                return bool(conn.ping())
            finally:
                conn.close()

        # ...and using() recovers: refused, refetched, retried with the rotated value.
        assert client.using(path, ping, retry_on=redis.AuthenticationError)
        assert len(seen) == 2
        assert seen[0] == first
        assert seen[1] != first


def test_a_wrong_postgres_admin_secret_fails_the_rotation_by_name(root: httpx.Client) -> None:
    with password_postgres() as admin_url:
        role = unique("ks_rot_api_")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        info = psycopg.conninfo.conninfo_to_dict(admin_url)
        wrong = admin_url.replace(str(info["password"]), "not-the-admin-password")
        folder = unique("sdk/pg")
        path, admin_path = f"{folder}/DATABASE_URL", f"{folder}/ADMIN_URL"
        put(root, admin_path, wrong)
        put(root, path, "unset")
        policy = {
            "rotator": "postgres",
            "approve_targets": True,  # root approves the target it names
            "options": {"target-secret": admin_path, "role": role, "mode": "grace"},
            "every_seconds": 3600,
            "grace_seconds": 0,
        }
        assert root.put(f"/api/v1/rotation/policies/{path}", json=policy).status_code == 200
        reply = root.post(f"/api/v1/rotation/rotate/{path}")
        assert reply.status_code == 502, reply.text
        assert "password authentication failed" in reply.text
        assert "not-the-admin-password" not in reply.text
        current = root.get(f"/api/v1/secrets/{path}").json()
        assert current["value"] == "unset"  # a failed rotation never promotes

        put(root, admin_path, admin_url)  # fixed: the next rotation works
        reply = root.post(f"/api/v1/rotation/rotate/{path}")
        assert reply.status_code == 200, reply.text
        value = root.get(f"/api/v1/secrets/{path}").json()["value"]
        with psycopg.connect(value) as conn:
            assert conn.execute("SELECT current_user::text").fetchone() == (role,)
