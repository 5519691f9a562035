"""Temporary database logins through the real CLI against ``keysafe up``, with the real
PostgreSQL of this machine as the target (its server-side sweep included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest

from pgtest import PG_BASE, pg_schema_url

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault


@pytest.fixture
def target() -> Iterator[tuple[str, str]]:
    """(admin URL on a fresh schema, role slug); every login of the slug dropped after."""
    slug = "e2e" + os.urandom(4).hex()
    with pg_schema_url("ks_ce_") as url:
        try:
            yield url, slug
        finally:
            with psycopg.connect(PG_BASE, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"ks_{slug}%",)
                ).fetchall()
                for (name,) in rows:
                    conn.execute(f'DROP OWNED BY "{name}"')
                    conn.execute(f'DROP ROLE "{name}"')


def _exists(username: str) -> bool:
    with psycopg.connect(PG_BASE) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)).fetchone()
            is not None
        )


def test_creds_lifecycle_through_the_cli(vault: Vault, target: tuple[str, str]) -> None:
    url, slug = target
    schema = url.rsplit("%3D", 1)[1]
    assert vault.run("secret", "set", f"{slug}/db/admin", stdin=url).returncode == 0
    # Reaching the network is an admin decision: approve the database first.
    added = vault.run("rotation", "target", "add", "postgres", "127.0.0.1", "--port", "5432",
                      "--database", "test", "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr
    target_id = json.loads(added.stdout)["id"]
    listed = vault.run("rotation", "target", "list", "--json")
    assert [t["id"] for t in json.loads(listed.stdout)] == [target_id]
    role = f"{slug}/reporting"
    wrote = vault.run(
        "creds", "role", "write", role,
        "--connection-secret", f"{slug}/db/admin",
        "--grant", f"GRANT USAGE ON SCHEMA {schema} TO {{{{name}}}}",
        "--ttl", "1h", "--max-ttl", "2h",
    )  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    assert role in vault.run("creds", "role", "list").stdout

    got = vault.run("creds", role, "--json")
    assert got.returncode == 0, got.stderr
    issued = json.loads(got.stdout)
    assert _exists(issued["username"])
    login = f"postgresql://{issued['username']}:{issued['password']}@127.0.0.1:5432/test"
    with psycopg.connect(login) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (issued["username"],)

    env = vault.run("creds", role, "--format", "env")
    assert env.returncode == 0, env.stderr
    assert all(line.startswith("export PG") for line in env.stdout.splitlines()), env.stdout
    assert "admin" not in env.stdout  # where to connect, never the admin's login
    # eval "$(keysafe creds ...)": a child program of the shell connects with libpq's
    # variables alone.
    child = (
        "import psycopg, os; c = psycopg.connect(''); "
        "print(os.environ['PGHOST'], os.environ['PGPORT'], os.environ['PGDATABASE'], "
        "c.execute('SELECT current_user').fetchone()[0])"
    )
    script = 'eval "$1"; exec "$2" -c "$3"'
    ran = subprocess.run(
        ["sh", "-c", script, "sh", env.stdout, sys.executable, child],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    host, port, database, user = ran.stdout.split()
    assert (host, port, database) == ("127.0.0.1", "5432", "test")
    assert _exists(user)

    listed = json.loads(vault.run("lease", "list", "--prefix", slug, "--json").stdout)
    assert {x["lease_id"] for x in listed} >= {issued["lease_id"]}
    assert issued["password"] not in json.dumps(listed)

    renewed = vault.run("lease", "renew", issued["lease_id"], "--increment", "10h")
    assert renewed.returncode == 0, renewed.stderr
    assert "maximum TTL" in renewed.stderr  # capped, and said so

    assert vault.run("lease", "revoke", issued["lease_id"]).returncode == 0
    assert not _exists(issued["username"])
    again = vault.run("lease", "revoke", issued["lease_id"])
    assert again.returncode == 0
    assert "already revoked" in again.stderr

    busy = vault.run("creds", "role", "delete", role)
    assert busy.returncode == 4  # the env login still lives
    assert "revoke them first" in busy.stderr
    prefix = vault.run("lease", "revoke", "--prefix", f"{slug}/")
    assert prefix.returncode == 0, prefix.stderr
    assert "revoked 1 lease(s)" in prefix.stderr
    assert not _exists(user)
    assert vault.run("creds", "role", "delete", role).returncode == 0


def test_the_server_sweep_drops_expired_logins(vault: Vault, target: tuple[str, str]) -> None:
    url, slug = target
    assert vault.run("secret", "set", f"{slug}/db/admin", stdin=url).returncode == 0
    role = f"{slug}/short"
    assert (
        vault.run(
            "creds", "role", "write", role, "--connection-secret", f"{slug}/db/admin"
        ).returncode
        == 0
    )
    issued = json.loads(vault.run("creds", role, "--ttl", "1s", "--json").stdout)
    assert _exists(issued["username"])
    deadline = time.monotonic() + 20  # the sweep runs every 5 s
    while _exists(issued["username"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _exists(issued["username"])
    [lease] = json.loads(vault.run("lease", "list", "--prefix", role, "--json").stdout)
    assert lease["state"] == "expired"


def test_bad_input_is_one_line_with_its_exit_code(vault: Vault, target: tuple[str, str]) -> None:
    _, slug = target
    missing = vault.run("creds", f"{slug}/nothing")
    assert (missing.returncode, missing.stderr.count("\n")) == (3, 1)
    assert vault.run("creds", "role", "write", f"{slug}/x", "--connection-secret",
                     "a/b", "--grant", "{{password}}").returncode == 2  # fmt: skip
    down = "postgresql://postgres:pw-never-shown@127.0.0.1:1/test"
    assert vault.run("secret", "set", f"{slug}/db/down", stdin=down).returncode == 0
    assert (
        vault.run(
            "creds", "role", "write", f"{slug}/down", "--connection-secret", f"{slug}/db/down"
        ).returncode
        == 0
    )
    refused = vault.run("creds", f"{slug}/down")
    assert refused.returncode == 10
    assert "not an approved rotation target" in refused.stderr
    added = vault.run("rotation", "target", "add", "postgres", "127.0.0.1", "--port", "1",
                      "--database", "test", "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr
    failed = vault.run("creds", f"{slug}/down")
    assert failed.returncode == 10
    assert failed.stderr.startswith("keysafe: cannot connect")
    assert "target refused or unreachable" in failed.stderr
    assert "pw-never-shown" not in failed.stderr
    removed = vault.run("rotation", "target", "remove", json.loads(added.stdout)["id"])
    assert removed.returncode == 0, removed.stderr
    assert "not an approved" in vault.run("creds", f"{slug}/down").stderr
    assert vault.run("lease", "revoke").returncode == 2
    assert vault.run("lease", "revoke", "lease_nope").returncode == 3
