"""The vault server as a real process (``keysafe server``) over HTTPS, on SQLite and PostgreSQL.

Each engine gets one shared server (module scope) for the read-mostly tests; tests that
stop, kill, seal across workers or tamper with the database start their own.

Token revocation: the server caches token lookups for up to ``token_cache_seconds`` (1 s)
per process, but revocation is immediate on the process that revoked. The shared servers
run one worker, so there the revoked-token check is made at once on the same process; the
two-worker test checks that every worker refuses a revoked token 1.1 s after revocation.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_proc import (
    KEYSAFE_CLI,
    ServerProc,
    Vault,
    database_url,
    free_port,
    init_vault,
    pg_connect,
    running,
    start_server,
)

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
PROBLEM_JSON = "application/problem+json"
MARKER = "PLAINTEXT-MARKER"
PUBLIC_HOST = "0.0.0.0"  # noqa: S104 - only to check that the CLI refuses it


def assert_problem(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith(PROBLEM_JSON), resp.headers
    doc: dict[str, Any] = resp.json()
    assert doc["status"] == status
    assert doc["code"] == code, doc
    assert doc["type"] == f"urn:keysafe:problem:{code}", doc
    return doc


def uid() -> str:
    return uuid.uuid4().hex[:12]


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def shared(engine_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    """One server per engine for the tests that leave the vault as they found it."""
    tmp = tmp_path_factory.mktemp(f"shared-{engine_name}")
    with database_url(engine_name, tmp) as url:
        vault = init_vault(engine_name, tmp, url)
        with running(vault) as server:
            yield server


@pytest.fixture
def fresh(engine_name: str, tmp_path: Path) -> Iterator[Vault]:
    """A freshly initialised vault (not yet served) on its own database."""
    with database_url(engine_name, tmp_path) as url:
        yield init_vault(engine_name, tmp_path, url)


def mint(root: httpx.Client, prefix: str, mode: str, ttl: int = 3600) -> dict[str, Any]:
    resp = root.post("/api/v1/tokens", json={"prefix": prefix, "mode": mode, "ttl_seconds": ttl})
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


# -- the secrets API over HTTPS ------------------------------------------------------------


@pytest.mark.timeout(60)
def test_secret_lifecycle_round_trip(shared: ServerProc) -> None:
    base = f"rt/{uid()}"
    path = f"{base}/DB_PASSWORD"
    url = f"/api/v1/secrets/{path}"
    with shared.root() as c:
        r = c.put(url, json={"value": "v1"})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 1
        assert r.json()["path"] == path
        r = c.put(url, json={"value": "v2", "cas": 1})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2, r.text
        assert_problem(c.put(url, json={"value": "v3", "cas": 1}), 409, "cas_mismatch")

        doc = c.get(url).json()
        assert (doc["path"], doc["version"], doc["value"]) == (path, 2, "v2")
        assert doc["metadata"]["current_version"] == 2
        assert c.get(url, params={"version": 1}).json()["value"] == "v1"

        listed = c.get("/api/v1/secrets", params={"prefix": f"{base}/"}).json()["secrets"]
        assert [item["path"] for item in listed] == [path]
        assert "value" not in listed[0]
        assert listed[0]["version"] == 2

        hist = c.get(f"{url}:history").json()
        assert hist["current_version"] == 2
        assert [v["version"] for v in hist["versions"]] == [1, 2]

        r = c.post(f"{url}:rollback", json={"version": 1})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 3, r.text
        assert c.get(url).json()["value"] == "v1"

        assert c.delete(url).status_code == 204
        assert_problem(c.get(url), 404, "not_found")
        assert c.get(url, params={"version": 2}).json()["value"] == "v2"
        assert c.post(f"{url}:undelete", json={"versions": [3]}).status_code == 204
        assert c.get(url).json()["value"] == "v1"

        assert c.post(f"{url}:destroy", json={"versions": [2]}).status_code == 204
        assert_problem(c.get(url, params={"version": 2}), 404, "not_found")
        hist = c.get(f"{url}:history").json()
        destroyed = {v["version"]: v["destroyed"] for v in hist["versions"]}
        assert destroyed == {1: False, 2: True, 3: False}
        assert c.get(url).json()["value"] == "v1"


@pytest.mark.timeout(60)
def test_problem_documents(shared: ServerProc) -> None:
    path = f"errs/{uid()}/K"
    with shared.root() as c:
        assert c.put(f"/api/v1/secrets/{path}", json={"value": "x"}).status_code == 200
        for bad in ("errs/has space/K", "errs/bad$name", "errs//double"):
            assert_problem(c.get(f"/api/v1/secrets/{bad}"), 400, "invalid_input")
            assert_problem(
                c.put(f"/api/v1/secrets/{bad}", json={"value": "x"}), 400, "invalid_input"
            )
        big = "x" * (64 * 1024 + 1)
        assert_problem(
            c.put(f"/api/v1/secrets/{path}", json={"value": big}), 413, "value_too_large"
        )
        assert c.get(f"/api/v1/secrets/{path}").json()["version"] == 1
        assert_problem(c.get(f"/api/v1/secrets/{path}", params={"version": 9}), 404, "not_found")
    with shared.client("ks_root_not-a-real-token") as c:
        assert_problem(c.get(f"/api/v1/secrets/{path}"), 401, "unauthenticated")
    with shared.client() as c:
        assert_problem(c.get(f"/api/v1/secrets/{path}"), 401, "unauthenticated")


@pytest.mark.timeout(60)
def test_scoped_expired_and_revoked_tokens(shared: ServerProc) -> None:
    base = f"scoped/{uid()}"
    with shared.root() as root:
        assert root.put(f"/api/v1/secrets/{base}/A", json={"value": "a"}).status_code == 200
        assert root.put("/api/v1/secrets/elsewhere/B", json={"value": "b"}).status_code == 200
        reader = mint(root, f"{base}/", "read")
        writer = mint(root, f"{base}/", "write")
        short = mint(root, f"{base}/", "read", ttl=1)
        doomed = mint(root, f"{base}/", "read")

        with shared.client(reader["token"]) as c:
            assert c.get(f"/api/v1/secrets/{base}/A").json()["value"] == "a"
            assert_problem(
                c.put(f"/api/v1/secrets/{base}/A", json={"value": "z"}), 403, "forbidden"
            )
        with shared.client(writer["token"]) as c:
            assert c.put(f"/api/v1/secrets/{base}/C", json={"value": "c"}).status_code == 200
            assert_problem(c.get("/api/v1/secrets/elsewhere/B"), 403, "forbidden")
            assert_problem(
                c.put("/api/v1/secrets/elsewhere/B", json={"value": "z"}), 403, "forbidden"
            )
        with shared.client(short["token"]) as c:
            assert c.get(f"/api/v1/secrets/{base}/A").status_code == 200

        # Revocation: used once (so the lookup is cached), revoked, refused at once on the
        # same (single-worker) process.
        with shared.client(doomed["token"]) as c:
            assert c.get(f"/api/v1/secrets/{base}/A").status_code == 200
            assert root.delete(f"/api/v1/tokens/{doomed['id']}").status_code == 204
            assert_problem(c.get(f"/api/v1/secrets/{base}/A"), 401, "unauthenticated")

        time.sleep(2.1)
        with shared.client(short["token"]) as c:
            assert_problem(c.get(f"/api/v1/secrets/{base}/A"), 401, "unauthenticated")
        with shared.client(doomed["token"]) as c:
            assert_problem(c.get(f"/api/v1/secrets/{base}/A"), 401, "unauthenticated")


@pytest.mark.timeout(30)
def test_openapi_document(shared: ServerProc) -> None:
    with shared.client() as c:
        r = c.get("/api/v1/openapi.json")
    assert r.status_code == 200
    assert "/api/v1/secrets/{path}" in r.json()["paths"]


@pytest.mark.timeout(60)
def test_seal_and_unseal(shared: ServerProc) -> None:
    path = f"/api/v1/secrets/seal/{uid()}"
    with shared.root() as root, shared.client() as anon:
        assert root.put(path, json={"value": "s"}).status_code == 200
        r = root.post("/api/v1/sys/seal")
        assert r.status_code == 200, r.text
        assert r.json()["sealed"] is True, r.text
        try:
            assert_problem(root.get(path), 503, "sealed")
            assert_problem(root.get("/api/v1/secrets", params={"prefix": "seal/"}), 503, "sealed")
            assert anon.get("/api/v1/sys/health").status_code == 503
        finally:
            r = anon.post("/api/v1/sys/unseal", json={"key": shared.vault.unseal_key})
            assert r.status_code == 200, r.text
            assert r.json()["sealed"] is False, r.text
        assert anon.get("/api/v1/sys/health").status_code == 200
        assert root.get(path).json()["value"] == "s"


@pytest.mark.timeout(60)
def test_plain_http_to_https_port_fails(shared: ServerProc) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{shared.port}/api/v1/sys/health", timeout=5)
    with shared.client() as c:  # and the server is still fine
        assert c.get("/api/v1/sys/health").status_code == 200


# -- the Vault-compatible subset with hvac -------------------------------------------------


@pytest.mark.timeout(60)
def test_hvac_kv_v2(shared: ServerProc) -> None:
    import hvac

    folder = f"hv{uid()}"
    client = hvac.Client(
        url=shared.base_url, token=shared.vault.root_token, verify=str(shared.vault.tls.ca_cert)
    )
    try:
        assert client.is_authenticated()
        health = client.sys.read_health_status(method="GET")
        assert health["initialized"] is True, health
        assert health["sealed"] is False, health

        kv = client.secrets.kv.v2
        written = kv.create_or_update_secret(
            path=f"{folder}/db", secret={"password": "x"}, mount_point="secret"
        )
        assert written["data"]["version"] == 1
        kv.create_or_update_secret(
            path=f"{folder}/db", secret={"password": "y", "user": "app"}, mount_point="secret"
        )
        kv.create_or_update_secret(
            path=f"{folder}/sub/api", secret={"k": "v"}, mount_point="secret"
        )
        read = kv.read_secret_version(
            path=f"{folder}/db", mount_point="secret", raise_on_deleted_version=True
        )
        assert read["data"]["data"] == {"password": "y", "user": "app"}
        assert read["data"]["metadata"]["version"] == 2
        old = kv.read_secret_version(
            path=f"{folder}/db", version=1, mount_point="secret", raise_on_deleted_version=True
        )
        assert old["data"]["data"] == {"password": "x"}
        listed = kv.list_secrets(path=folder, mount_point="secret")  # the LIST verb
        assert sorted(listed["data"]["keys"]) == ["db", "sub/"]
        # The same listing through GET ?list=true.
        with shared.client() as c:
            r = c.get(
                f"/v1/secret/metadata/{folder}",
                params={"list": "true"},
                headers={"X-Vault-Token": str(shared.vault.root_token)},
            )
            assert sorted(r.json()["data"]["keys"]) == ["db", "sub/"], r.text
        # The native API sees the same secret.
        with shared.root() as c:
            assert c.get(f"/api/v1/secrets/{folder}/db").json()["version"] == 2
    finally:
        client.adapter.close()


@pytest.mark.timeout(60)
def test_hvac_approle_login_trades_a_key_for_a_short_lived_token(shared: ServerProc) -> None:
    import hvac
    from hvac.exceptions import Forbidden as HvacForbidden
    from hvac.exceptions import InvalidRequest, Unauthorized

    folder = f"ar{uid()}"
    policy = f'[[rule]]\npath = "{folder}/*"\ncapabilities = ["read"]\n'
    with shared.root() as c:
        assert c.put(f"/api/v1/policies/{folder}", json={"text": policy}).status_code == 200
        made = c.post("/api/v1/services", json={"name": folder, "policies": [folder]})
        assert made.status_code == 200, made.text
        key = c.post("/api/v1/keys", json={"service": folder}).json()
        c.put(f"/api/v1/secrets/{folder}/db", json={"value": '{"password": "p"}'})
        c.put(f"/api/v1/secrets/other{folder}/db", json={"value": "no"})
    client = hvac.Client(url=shared.base_url, verify=str(shared.vault.tls.ca_cert))
    try:
        login = client.auth.approle.login(role_id=key["id"], secret_id=key["key"])
        assert login["auth"]["policies"] == [folder]
        assert 0 < login["auth"]["lease_duration"] <= 900
        assert client.token == login["auth"]["client_token"]
        assert client.token.count(".") == 2  # a signed JWT, not the key
        kv = client.secrets.kv.v2
        read = kv.read_secret_version(
            path=f"{folder}/db", mount_point="secret", raise_on_deleted_version=True
        )
        assert read["data"]["data"] == {"password": "p"}
        with pytest.raises(HvacForbidden):
            kv.read_secret_version(
                path=f"other{folder}/db", mount_point="secret", raise_on_deleted_version=True
            )
        # Another key's id, or a forged key: refused.
        with pytest.raises((Unauthorized, InvalidRequest)):
            client.auth.approle.login(role_id="key_other", secret_id=key["key"])
        forged = key["key"][:-1] + ("A" if key["key"][-1] != "A" else "B")
        with pytest.raises((Unauthorized, InvalidRequest)):
            client.auth.approle.login(role_id=key["id"], secret_id=forged)
    finally:
        client.adapter.close()


# -- at rest -------------------------------------------------------------------------------


def _assert_no_marker(tmp: Path, vault: Vault, audit_file: Path) -> None:
    files = [p for p in tmp.rglob("*") if p.is_file()]
    assert audit_file in files
    if vault.engine == "sqlite":
        assert vault.sqlite_file in files
    contents = {p: p.read_bytes() for p in files}
    # The scan does see the data: paths (not secret) are stored in clear.
    seen = b"np/s199" in contents[audit_file]
    if vault.engine == "sqlite":
        seen = seen and any(b"np/s199" in body for p, body in contents.items() if p != audit_file)
    assert seen
    for p, body in contents.items():
        assert MARKER.encode() not in body, f"plaintext in {p}"


@pytest.mark.timeout(120)
def test_no_plaintext_at_rest(fresh: Vault, tmp_path: Path) -> None:
    audit_file = tmp_path / "audit.jsonl"
    values = [f"{MARKER}-{uuid.uuid4()}" for _ in range(200)]
    with running(fresh, extra_env={"KEYSAFE_AUDIT_FILE": str(audit_file)}) as server:
        with server.root() as c:
            for i, value in enumerate(values):
                r = c.put(f"/api/v1/secrets/np/s{i:03d}", json={"value": value})
                assert r.status_code == 200, r.text
            for i in (0, 99, 199):
                assert c.get(f"/api/v1/secrets/np/s{i:03d}").json()["value"] == values[i]
            listed = c.get("/api/v1/secrets", params={"prefix": "np/", "values": "true"})
            assert len(listed.json()["secrets"]) == 200
        # While live (the -wal and -shm files exist now) and again after a clean stop.
        _assert_no_marker(tmp_path, fresh, audit_file)
        assert server.stop() in (0, -signal.SIGTERM)
    _assert_no_marker(tmp_path, fresh, audit_file)
    if fresh.engine == "postgres":
        with pg_connect(fresh.db_url) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE position("
                "convert_to(%s, 'UTF8') in ciphertext) > 0) FROM secret_versions",
                (MARKER,),
            ).fetchone()
            assert row == (200, 0), row
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE a::text LIKE %s) FROM audit_events a",
                (f"%{MARKER}%",),
            ).fetchone()
            assert row is not None, row
            assert row[0] > 200, row
            assert row[1] == 0, row


# -- crash durability ----------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_acknowledged_writes_survive_kill_9(fresh: Vault) -> None:
    server = start_server(fresh)
    acked: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    cut_off: list[int] = []

    def writer(n: int) -> None:
        try:
            with server.root() as c:
                j = 0
                while not stop.is_set():
                    path = f"crash/t{n}/k{j // 3}"
                    value = f"v-{n}-{j}-{uuid.uuid4().hex}"
                    j += 1
                    try:
                        r = c.put(f"/api/v1/secrets/{path}", json={"value": value})
                    except httpx.TransportError:
                        with lock:
                            cut_off.append(n)
                        return
                    if r.status_code == 200:
                        with lock:
                            acked.append((path, r.json()["version"], value))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        server.kill9()  # mid-flight: writers are still sending
        assert server.proc.returncode == -signal.SIGKILL
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.stop()
    assert not errors, errors
    assert sorted(cut_off) == list(range(8)), "every writer was still writing at the kill"
    assert len(acked) > 50, len(acked)

    with running(fresh) as again, again.root() as c:
        for path, version, value in acked:
            r = c.get(f"/api/v1/secrets/{path}", params={"version": version})
            assert r.status_code == 200, (path, version, r.text)
            assert r.json()["value"] == value, (path, version)
        r = c.post("/api/v1/audit/verify")
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True, r.text


# -- tampering through the database --------------------------------------------------------


def _sql(vault: Vault, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement directly on the vault's database (sqlite3 or psycopg)."""
    if vault.engine == "sqlite":
        conn = sqlite3.connect(vault.sqlite_file, timeout=10)
        try:
            with conn:
                return conn.execute(statement.replace("%s", "?"), params).fetchall()
        finally:
            conn.close()
    with pg_connect(vault.db_url) as conn:
        cur = conn.execute(statement, params)
        return list(cur.fetchall()) if cur.description else []


@pytest.mark.timeout(90)
def test_tampering_is_detected(fresh: Vault) -> None:
    with running(fresh) as server, server.root() as c:
        assert c.put("/api/v1/secrets/tamper/a", json={"value": "ALPHA-VALUE"}).status_code == 200
        assert c.put("/api/v1/secrets/tamper/b", json={"value": "BRAVO-VALUE"}).status_code == 200
        assert c.get("/api/v1/secrets/tamper/b").json()["value"] == "BRAVO-VALUE"

        # Move secret a's envelope onto secret b's row, with the server live.
        ids = dict(_sql(fresh, "SELECT path, id FROM secrets WHERE path LIKE 'tamper/%%'"))
        src = _sql(
            fresh,
            "SELECT format, kek_version, wrapped_dek, ciphertext FROM secret_versions "
            "WHERE secret_id = %s AND version = 1",
            (ids["tamper/a"],),
        )[0]
        _sql(
            fresh,
            "UPDATE secret_versions SET format = %s, kek_version = %s, wrapped_dek = %s, "
            "ciphertext = %s WHERE secret_id = %s AND version = 1",
            (*src, ids["tamper/b"]),
        )
        r = c.get("/api/v1/secrets/tamper/b")
        doc = assert_problem(r, 500, "integrity_error")
        assert "integrity" in doc["detail"], doc
        assert "tamper/b" in doc["detail"], doc
        assert "ALPHA-VALUE" not in r.text
        assert "BRAVO-VALUE" not in r.text
        assert c.get("/api/v1/secrets/tamper/a").json()["value"] == "ALPHA-VALUE"

        verify = c.post("/api/v1/audit/verify").json()
        assert verify["ok"] is True, verify

        # Edit one audit event's detail.
        seq = 3
        (detail,) = _sql(fresh, "SELECT detail FROM audit_events WHERE seq = %s", (seq,))[0]
        _sql(fresh, "UPDATE audit_events SET detail = %s WHERE seq = %s", (detail + "!", seq))
        verify = c.post("/api/v1/audit/verify").json()
        assert verify["ok"] is False, verify
        assert verify["first_bad"] == seq, verify
        _sql(fresh, "UPDATE audit_events SET detail = %s WHERE seq = %s", (detail, seq))
        assert c.post("/api/v1/audit/verify").json()["ok"] is True

        # Delete one audit event: the first write's (its chain holds the second one too).
        ((gone,),) = _sql(
            fresh,
            "SELECT MIN(seq) FROM audit_events WHERE operation = 'secret:write'",
        )
        _sql(fresh, "DELETE FROM audit_events WHERE seq = %s", (gone,))
        verify = c.post("/api/v1/audit/verify").json()
        assert verify["ok"] is False, verify
        assert "missing" in verify["reason"], verify


# -- fail closed ---------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_audit_failure_fails_closed(fresh: Vault) -> None:
    value = f"FAILCLOSED-{uid()}"
    with running(fresh) as server, server.root() as c:
        assert c.put("/api/v1/secrets/fc/x", json={"value": value}).status_code == 200
    # /dev/full: every write fails with ENOSPC (we run as root, so permissions would not).
    with (
        running(fresh, extra_env={"KEYSAFE_AUDIT_FILE": "/dev/full"}) as server,
        server.root() as c,
    ):
        r = c.get("/api/v1/secrets/fc/x")
        assert_problem(r, 503, "audit_unavailable")
        assert value not in r.text
        r = c.get("/api/v1/secrets", params={"prefix": "fc/", "values": "true"})
        assert r.status_code == 503, r.text
        assert value not in r.text, r.text
        r = c.put("/api/v1/secrets/fc/x", json={"value": "other"})
        assert_problem(r, 503, "audit_unavailable")
    with running(fresh) as server, server.root() as c:
        assert c.get("/api/v1/secrets/fc/x").json() | {"metadata": None} == {
            "path": "fc/x",
            "version": 1,
            "value": value,
            "metadata": None,
        }


# -- SQLite only: several workers, Shamir ---------------------------------------------------


def _all_reads(server: ServerProc, path: str, n: int = 12, token: str | None = None) -> set[int]:
    """Status codes of ``n`` reads on fresh connections (spread over the workers)."""
    codes = set()
    for _ in range(n):
        with server.client(token or server.vault.root_token) as c:
            codes.add(c.get(path, headers={"Connection": "close"}).status_code)
    return codes


def _eventually(check: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


@pytest.mark.timeout(90)
def test_seal_across_two_workers_sqlite(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url)
    path = "/api/v1/secrets/multi/x"
    with running(vault, workers=2) as server:
        # Seal as soon as the first worker answers: the second may still be starting, and
        # must then start sealed rather than unseal from the key file.
        with server.root() as c:
            assert c.put(path, json={"value": "m"}).status_code == 200
            assert c.post("/api/v1/sys/seal").json()["sealed"] is True
        assert _eventually(lambda: len(server.processes_with_open(vault.sqlite_file)) >= 2, 20)
        assert _eventually(lambda: _all_reads(server, path) == {503}, 10)
        time.sleep(0.6)
        assert _all_reads(server, path, 20) == {503}

        # Both workers up: unsealing and sealing through one reaches the other within ~1 s
        # (each polls the shared seal flag every 0.5 s).
        with server.client() as anon:
            r = anon.post("/api/v1/sys/unseal", json={"key": vault.unseal_key})
            assert r.status_code == 200, r.text
            assert r.json()["sealed"] is False, r.text
        unsealed_at = time.monotonic()
        assert _eventually(lambda: _all_reads(server, path) == {200})
        assert time.monotonic() - unsealed_at < 2.0
        with server.root() as c:
            assert c.post("/api/v1/sys/seal").json()["sealed"] is True
        sealed_at = time.monotonic()
        assert _eventually(lambda: _all_reads(server, path) == {503})
        assert time.monotonic() - sealed_at < 2.0
        time.sleep(0.6)
        assert _all_reads(server, path, 20) == {503}
        with server.client() as anon:
            statuses = {
                anon.get("/api/v1/sys/health", headers={"Connection": "close"}).status_code
                for _ in range(10)
            }
            assert statuses == {503}
            r = anon.post("/api/v1/sys/unseal", json={"key": vault.unseal_key})
            assert r.json()["sealed"] is False, r.text
        assert _eventually(lambda: _all_reads(server, path) == {200})

        # Revocation reaches the other worker once its token cache (1 s) expires.
        with server.root() as c:
            token = mint(c, "multi/", "read")
        assert _all_reads(server, path, token=token["token"]) == {200}  # now cached by the workers
        with server.root() as c:
            assert c.delete(f"/api/v1/tokens/{token['id']}").status_code == 204
        time.sleep(1.1)
        assert _all_reads(server, path, 20, token=token["token"]) == {401}


@pytest.mark.timeout(90)
def test_starting_process_keeps_operator_seal(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url)
    path = "/api/v1/secrets/late/x"
    with running(vault) as first:
        with first.root() as c:
            assert c.put(path, json={"value": "v"}).status_code == 200
            assert c.post("/api/v1/sys/seal").json()["sealed"] is True
        # A second process with the unseal key file starts on the same database (a restarted
        # worker, another node): it must not undo the seal, for itself or for the first.
        with running(vault, expect_status=None) as second:
            time.sleep(1.2)  # more than two poll intervals of the first process
            with first.root() as c1, second.root() as c2:
                assert_problem(c1.get(path), 503, "sealed")
                assert_problem(c2.get(path), 503, "sealed")


def _typo(share: str, others: list[str]) -> str:
    words = share.split()
    pos = len(words) - 4
    replacement = next(
        w for other in others for w in other.split() if w != words[pos] and w.isalpha()
    )
    words[pos] = replacement
    return " ".join(words)


@pytest.mark.timeout(90)
def test_shamir_init_and_unseal_sqlite(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url, embedded=False)
    with running(vault, use_key_file=False, expect_status=503) as server, server.client() as c:
        status = c.get("/api/v1/sys/seal-status").json()
        assert status["initialized"] is False
        r = c.post("/api/v1/sys/init", json={"shares": 5, "threshold": 3})
        assert r.status_code == 200, r.text
        init = r.json()
        shares, root_token = init["shares"], init["root_token"]
        assert len(shares) == 5
        assert len(set(shares)) == 5
        assert_problem(
            c.post("/api/v1/sys/init", json={"shares": 5, "threshold": 3}),
            409,
            "already_initialized",
        )
        assert c.get("/api/v1/sys/health").status_code == 503

        r = c.post("/api/v1/sys/unseal", json={"share": shares[0]})
        assert r.status_code == 200, r.text
        assert r.json()["progress"] == 1, r.text
        nonce = r.json()["nonce"]  # the unseal attempt's: further shares give it
        bad = _typo(shares[1], shares[2:])
        r = assert_problem(
            c.post("/api/v1/sys/unseal", json={"share": bad, "nonce": nonce}), 400, "invalid_input"
        )
        assert bad not in str(r)
        status = c.get("/api/v1/sys/seal-status").json()
        assert status["sealed"] is True, status
        assert status["progress"] == 1, status
        r = c.post("/api/v1/sys/unseal", json={"share": shares[1], "nonce": nonce})
        assert r.json()["progress"] == 2, r.text
        assert r.json()["sealed"] is True, r.text
        r = c.post("/api/v1/sys/unseal", json={"share": shares[2], "nonce": nonce})
        assert r.status_code == 200, r.text
        assert r.json()["sealed"] is False, r.text
        assert c.get("/api/v1/sys/health").status_code == 200

        auth = {"Authorization": f"Bearer {root_token}"}
        r = c.put("/api/v1/secrets/shamir/k", json={"value": "sv"}, headers=auth)
        assert r.status_code == 200, r.text
        assert c.get("/api/v1/secrets/shamir/k", headers=auth).json()["value"] == "sv"


# -- CLI refusals --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_insecure_http_on_public_host_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    env["KEYSAFE_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [
            KEYSAFE_CLI,
            "server",
            "--insecure-http",
            "--host",
            PUBLIC_HOST,
            "--port",
            str(free_port()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    out = (proc.stdout + proc.stderr).strip()
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    assert "insecure-http" in out
    assert PUBLIC_HOST in out
