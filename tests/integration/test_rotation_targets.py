"""Issue 11 item 4: rotators reach only admin-approved targets; the apikey rotator needs
``manage-keys``, never revives a key and never extends one. Item 5: a silent target
does not stop the writer. Over HTTP (in-process ASGI), both databases; the real
PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are the approved targets.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy import select, update
from vaultkit import Vault

from keysafe.audit.models import OUTCOME_OK
from keysafe.server.app import create_app, with_fast_paths
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables import api_keys, audit_events
from pgtest import PG_BASE

pytestmark = pytest.mark.anyio

PG = urlsplit(PG_BASE)
PG_HOST, PG_PORT, PG_DB = PG.hostname or "127.0.0.1", PG.port or 5432, PG.path.strip("/")
REDIS_URL = "redis://127.0.0.1:6379/0"
ADMIN = "team/db/ADMIN_URL"
SECRET = "team/db/APP_URL"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    headers = {"Authorization": f"Bearer {vault.root_token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers=headers, timeout=60
    ) as c:
        yield c


async def _key(client: httpx.AsyncClient, name: str, rules: str) -> dict[str, str]:
    """A service key with the policy ``rules``: its Authorization header."""
    resp = await client.put(f"/api/v1/policies/{name}", json={"text": rules})
    assert resp.status_code == 200, resp.text
    await client.post("/api/v1/services", json={"name": name, "policies": [name]})
    key = (await client.post("/api/v1/keys", json={"service": name})).json()["key"]
    return {"Authorization": f"Bearer {key}"}


TEAM = '[[rule]]\npath = "team/**"\ncapabilities = ["read", "write", "list", "rotate"]\n'


@pytest.fixture
def pg_role() -> Iterator[str]:
    """A login and its partner on the shared PostgreSQL (trust auth: the point here is
    where the rotator may connect, not the password check)."""
    name = f"ks_tgt_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(name + "_b"), sql.Identifier(name)
            )
        )
    yield name
    with psycopg.connect(PG_BASE, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP ROLE IF EXISTS {}, {}").format(
                sql.Identifier(name + "_b"), sql.Identifier(name)
            )
        )


@pytest.fixture
def redis_user() -> Iterator[str]:
    conn = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        conn.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable: {exc}")
    name = f"ks_tgt_{secrets.token_hex(4)}"
    conn.execute_command("ACL", "SETUSER", name, "on", "#" + "0" * 64, "+ping")  # type: ignore[no-untyped-call]
    yield name
    conn.acl_deluser(name)
    conn.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) and never
    says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _approve(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/rotation/targets", json=body)
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


def _pg_policy(role: str, **options: str) -> dict[str, Any]:
    return {
        "rotator": "postgres",
        "every_seconds": 86400,
        "options": {"target-secret": ADMIN, "role": role, **options},
    }


def _ops(vault: Vault, prefix: str) -> list[tuple[str, str]]:
    with read_conn(vault.svc.engine) as conn:
        rows = conn.execute(
            select(audit_events.c.operation, audit_events.c.outcome)
            .where(audit_events.c.operation.like(prefix + "%"))
            .order_by(audit_events.c.seq)
        )
        return [(r.operation, r.outcome) for r in rows]


# -- the list ------------------------------------------------------------------------------


async def test_only_an_admin_manages_targets(vault: Vault, client: httpx.AsyncClient) -> None:
    team = await _key(client, "team", TEAM)
    body = {"kind": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test"}
    assert (
        await client.post("/api/v1/rotation/targets", json=body, headers=team)
    ).status_code == 403
    assert (await client.get("/api/v1/rotation/targets", headers=team)).status_code == 403
    admin = await _key(
        client,
        "rotadmin",
        '[[rule]]\npath = "sys/rotation"\ncapabilities = ["admin"]\n',
    )
    doc = await _approve(client, **body, roles=["app"])
    assert (doc["kind"], doc["host"], doc["port"], doc["database"]) == (
        "postgres",
        "127.0.0.1",
        5432,
        "test",
    )
    assert doc["roles"] == ["app"]
    listed = (await client.get("/api/v1/rotation/targets", headers=admin)).json()["targets"]
    assert [t["id"] for t in listed] == [doc["id"]]
    # Hosts are stored normalised; a bad kind, host or database is refused.
    odd = await _approve(client, kind="redis", host="[::FFFF:127.0.0.1]", database="")
    assert (odd["host"], odd["port"], odd["database"]) == ("127.0.0.1", 6379, "0")
    for bad in (
        {"kind": "mysql", "host": "db"},
        {"kind": "postgres", "host": "db", "database": ""},
        {"kind": "postgres", "host": "fe80::1%eth0", "database": "x"},
        {"kind": "postgres", "host": "db/../x", "database": "x"},
        {"kind": "redis", "host": "db", "database": "x"},
    ):
        resp = await client.post("/api/v1/rotation/targets", json=bad)
        assert resp.status_code in (400, 422), (bad, resp.text)
    gone = await client.delete(f"/api/v1/rotation/targets/{doc['id']}", headers=admin)
    assert gone.status_code == 204
    assert (await client.delete(f"/api/v1/rotation/targets/{doc['id']}")).status_code == 404
    ops = _ops(vault, "rotation:target-")
    assert ("rotation:target-add", "denied") in ops
    assert ("rotation:target-add", OUTCOME_OK) in ops
    assert ("rotation:target-remove", OUTCOME_OK) in ops
    assert ("rotation:target-list", OUTCOME_OK) in ops


# -- set time ------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_unapproved_targets_are_refused_when_set(
    client: httpx.AsyncClient, pg_role: str
) -> None:
    team = await _key(client, "team", TEAM)
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{PG_DB}"
    assert (await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": url})).status_code == 200
    put = f"/api/v1/rotation/policies/{SECRET}"
    refused = await client.put(put, json=_pg_policy(pg_role), headers=team)
    assert refused.status_code == 403, refused.text
    assert "not an approved rotation target" in refused.json()["detail"]
    await _approve(client, kind="postgres", host=PG_HOST, port=PG_PORT, database=PG_DB)
    ok = await client.put(put, json=_pg_policy(pg_role), headers=team)
    assert ok.status_code == 200, ok.text
    # Another port, database or host spelling for the admin URL or the applications.
    for options in ({"port": "6379"}, {"dbname": "postgres"}, {"host": "localhost"}):
        resp = await client.put(put, json=_pg_policy(pg_role, **options), headers=team)
        assert resp.status_code == 403, (options, resp.text)
    # Parameters that would redirect the connection or read server files.
    for query in (
        "host=10.0.0.1",
        "hostaddr=10.0.0.1",
        "service=evil",
        "sslrootcert=/etc/shadow",
        "passfile=/etc/shadow",
        "sslcert=/etc/shadow",
    ):
        rewritten = await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": f"{url}?{query}"})
        assert rewritten.status_code == 200
        resp = await client.put(put, json=_pg_policy(pg_role), headers=team)
        assert resp.status_code == 400, (query, resp.text)
        assert "is not allowed" in resp.json()["detail"]
    for other in (
        f"postgresql://postgres@{PG_HOST},10.0.0.1:{PG_PORT}/{PG_DB}",
        f"postgresql://postgres@%2Ftmp:{PG_PORT}/{PG_DB}",
    ):
        await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": other})
        resp = await client.put(put, json=_pg_policy(pg_role), headers=team)
        assert resp.status_code == 400, (other, resp.text)


@pytest.mark.postgres
async def test_roles_limit_what_an_approval_allows(client: httpx.AsyncClient, pg_role: str) -> None:
    team = await _key(client, "team", TEAM)
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{PG_DB}"
    await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": url})
    await _approve(
        client, kind="postgres", host=PG_HOST, port=PG_PORT, database=PG_DB, roles=[pg_role]
    )
    put = f"/api/v1/rotation/policies/{SECRET}"
    # alternate mode also changes <role>_b, which the approval does not name.
    refused = await client.put(put, json=_pg_policy(pg_role), headers=team)
    assert refused.status_code == 403
    assert f"not approved for the login {pg_role}_b" in refused.json()["detail"]
    ok = await client.put(put, json=_pg_policy(pg_role, mode="grace"), headers=team)
    assert ok.status_code == 200, ok.text


@pytest.mark.postgres
async def test_an_admin_may_approve_while_setting(client: httpx.AsyncClient, pg_role: str) -> None:
    team = await _key(client, "team", TEAM)
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{PG_DB}"
    await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": url})
    body = {**_pg_policy(pg_role), "approve_targets": True}
    put = f"/api/v1/rotation/policies/{SECRET}"
    assert (await client.put(put, json=body, headers=team)).status_code == 403
    assert (await client.put(put, json=body)).status_code == 200  # root
    listed = (await client.get("/api/v1/rotation/targets")).json()["targets"]
    assert [(t["host"], t["port"], t["roles"]) for t in listed] == [
        (PG_HOST, PG_PORT, sorted([pg_role, pg_role + "_b"]))
    ]


# -- run time ------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_approved_postgres_rotates_and_a_rewritten_secret_is_refused_at_run(
    vault: Vault, client: httpx.AsyncClient, pg_role: str
) -> None:
    team = await _key(client, "team", TEAM)
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{PG_DB}"
    await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": url})
    await _approve(client, kind="postgres", host=PG_HOST, port=PG_PORT, database=PG_DB)
    put = f"/api/v1/rotation/policies/{SECRET}"
    assert (await client.put(put, json=_pg_policy(pg_role), headers=team)).status_code == 200
    done = await client.post(f"/api/v1/rotation/rotate/{SECRET}", headers=team)
    assert done.status_code == 200, done.text
    # The admin secret is rewritten after the policy was accepted: the run refuses it
    # before connecting anywhere.
    for elsewhere in (
        f"postgresql://postgres@{PG_HOST}:6379/{PG_DB}",
        f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres",
        f"postgresql://postgres@localhost:{PG_PORT}/{PG_DB}",
    ):
        await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": elsewhere})
        failed = await client.post(f"/api/v1/rotation/rotate/{SECRET}", headers=team)
        assert failed.status_code == 502, failed.text
        assert "not an approved rotation target" in failed.json()["detail"], elsewhere
    # An approval withdrawn stops the next run too.
    await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": url})
    target_id = (await client.get("/api/v1/rotation/targets")).json()["targets"][0]["id"]
    assert (await client.delete(f"/api/v1/rotation/targets/{target_id}")).status_code == 204
    failed = await client.post(f"/api/v1/rotation/rotate/{SECRET}", headers=team)
    assert failed.status_code == 502
    assert "not an approved rotation target" in failed.json()["detail"]


async def test_approved_redis_rotates(client: httpx.AsyncClient, redis_user: str) -> None:
    team = await _key(client, "team", TEAM)
    await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": REDIS_URL})
    body = {
        "rotator": "redis",
        "every_seconds": 86400,
        "options": {"target-secret": ADMIN, "user": redis_user},
    }
    put = f"/api/v1/rotation/policies/{SECRET}"
    assert (await client.put(put, json=body, headers=team)).status_code == 403
    await _approve(client, kind="redis", host="127.0.0.1", port=6379, database="0")
    assert (await client.put(put, json=body, headers=team)).status_code == 200
    done = await client.post(f"/api/v1/rotation/rotate/{SECRET}", headers=team)
    assert done.status_code == 200, done.text
    await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": "redis://127.0.0.1:6380/0"})
    failed = await client.post(f"/api/v1/rotation/rotate/{SECRET}", headers=team)
    assert failed.status_code == 502
    assert "not an approved rotation target" in failed.json()["detail"]
    query = "redis://127.0.0.1:6379/0?unix_socket_path=/tmp/x"
    await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": query})
    failed = await client.post(f"/api/v1/rotation/rotate/{SECRET}", headers=team)
    assert failed.status_code == 502
    assert "no query parameters" in failed.json()["detail"]


# -- no port fingerprinting; a silent port does not stop the writer ------------------------


async def _failure_text(
    client: httpx.AsyncClient, kind: str, port: int, options: dict[str, str]
) -> str:
    url = (
        f"postgresql://x@127.0.0.1:{port}/x"
        if kind == "postgres"
        else f"redis://127.0.0.1:{port}/0"
    )
    await client.put(f"/api/v1/secrets/{ADMIN}", json={"value": url})
    await _approve(
        client, kind=kind, host="127.0.0.1", port=port, database="x" if kind == "postgres" else "0"
    )
    body = {"rotator": kind, "every_seconds": 86400, "options": {"target-secret": ADMIN, **options}}
    put = await client.put(f"/api/v1/rotation/policies/{SECRET}", json=body)
    assert put.status_code == 200, put.text
    resp = await client.post(f"/api/v1/rotation/rotate/{SECRET}")
    assert resp.status_code == 502, resp.text
    detail: str = resp.json()["detail"]
    return detail.replace(str(port), "PORT")


@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_closed_silent_and_foreign_ports_look_alike(
    vault: Vault, client: httpx.AsyncClient, silent_port: int, kind: str
) -> None:
    options = {"role": "app"} if kind == "postgres" else {"user": "app"}
    foreign = 6379 if kind == "postgres" else PG_PORT  # the postgres -> Redis case
    texts = {
        name: await _failure_text(client, kind, port, options)
        for name, port in (
            ("closed", _closed_port()),
            ("silent", silent_port),
            ("foreign", foreign),
        )
    }
    assert texts["closed"] == texts["silent"] == texts["foreign"], texts
    assert "target refused or unreachable" in texts["closed"]
    # The silent port outlived claim renewals: the writer still serves and health is 200.
    assert (await client.get("/api/v1/sys/health")).status_code == 200
    assert vault.svc.rotation.writer_alive
    again = await client.put(
        f"/api/v1/rotation/policies/{SECRET}",
        json={"rotator": "random", "every_seconds": 86400},
    )
    assert again.status_code == 200, again.text
    assert (await client.post(f"/api/v1/rotation/rotate/{SECRET}")).status_code == 200


# -- the apikey rotator --------------------------------------------------------------------


async def _service_key(client: httpx.AsyncClient, service: str) -> tuple[str, str]:
    await client.post("/api/v1/services", json={"name": service, "policies": []})
    doc = (await client.post("/api/v1/keys", json={"service": service})).json()
    return doc["key"], doc["id"]


def _record(vault: Vault, key: str) -> dict[str, Any]:
    with read_conn(vault.svc.engine) as conn:
        found = vault.svc.keys.find(key, conn)
    assert found is not None
    return found


async def test_apikey_rotation_needs_manage_keys_and_keeps_the_expiry(
    vault: Vault, client: httpx.AsyncClient
) -> None:
    path = "team/worker/API_KEY"
    key, _ = await _service_key(client, "worker")
    await client.put(f"/api/v1/secrets/{path}", json={"value": key})
    body = {"rotator": "apikey", "every_seconds": 86400, "grace_seconds": 60}
    team = await _key(client, "team", TEAM)
    put = f"/api/v1/rotation/policies/{path}"
    refused = await client.put(put, json=body, headers=team)
    assert refused.status_code == 403, refused.text
    keeper = await _key(
        client,
        "keeper",
        TEAM + '[[rule]]\npath = "sys/key/worker"\ncapabilities = ["manage-keys"]\n',
    )
    ok = await client.put(put, json=body, headers=keeper)
    assert ok.status_code == 200, ok.text
    assert ok.json()["options"]["service"] == "worker"
    # A caller cannot pin the policy to a service of its choosing.
    forged = {**body, "options": {"service": "team"}}
    assert (await client.put(put, json=forged, headers=team)).status_code == 403
    expires = _record(vault, key)["expires_at"]
    done = await client.post(f"/api/v1/rotation/rotate/{path}", headers=keeper)
    assert done.status_code == 200, done.text
    new = (await client.get(f"/api/v1/secrets/{path}")).json()["value"]
    assert new != key
    assert _record(vault, new)["expires_at"] == expires  # not a fresh lifetime

    # Another service's key written into the secret is not rolled.
    other, _ = await _service_key(client, "payments")
    await client.put(f"/api/v1/secrets/{path}", json={"value": other})
    failed = await client.post(f"/api/v1/rotation/rotate/{path}", headers=keeper)
    assert failed.status_code == 502
    assert "another service" in failed.json()["detail"]
    assert _record(vault, other)["replaced_by"] is None


@pytest.mark.parametrize("ending", ["expired", "revoked", "suspended"])
async def test_apikey_rotation_never_revives_a_dead_key(
    vault: Vault, client: httpx.AsyncClient, ending: str
) -> None:
    path = "team/worker/API_KEY"
    key, key_id = await _service_key(client, "worker")
    await client.put(f"/api/v1/secrets/{path}", json={"value": key})
    body = {"rotator": "apikey", "every_seconds": 86400, "grace_seconds": 60}
    put = f"/api/v1/rotation/policies/{path}"
    assert (await client.put(put, json=body)).status_code == 200
    if ending == "expired":
        with write_txn(vault.svc.engine) as conn:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(expires_at=1))
    elif ending == "revoked":
        assert (await client.delete(f"/api/v1/keys/{key_id}")).status_code in (200, 204)
    else:
        resp = await client.post(f"/api/v1/keys/{key_id}:suspend", json={"reason": "test"})
        assert resp.status_code == 200, resp.text
    vault.svc.keys.forget(key_id)
    failed = await client.post(f"/api/v1/rotation/rotate/{path}")
    assert failed.status_code == 502, failed.text
    assert "not a live keysafe API key" in failed.json()["detail"]
    assert _record(vault, key)["replaced_by"] is None
    # Nor may a policy be set on a dead key.
    refused = await client.put(put, json=body)
    assert refused.status_code == 400, refused.text
