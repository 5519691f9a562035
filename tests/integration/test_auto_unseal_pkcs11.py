"""Auto-unseal through a PKCS#11 HSM (SoftHSM2), with real server processes.

init prints recovery shares and the node unseals itself; a restart unseals again; with
the token removed the node stays sealed, says why, and unseals by itself once the token
is back; a wrong PIN is one clear line and is never retried.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import server_proc
from server_proc import database_url, init_vault, running, start_server
from unsealkit import cli, root_token_in, shares_in, softhsm

from keysafe.crypto import rootkey
from keysafe.crypto.envelope import DecryptionFailed
from keysafe.crypto.keyring import Keyring

pytestmark = pytest.mark.timeout(120)

SECRET = "/api/v1/secrets/app/DB_PASSWORD"


def _wait_health(client: httpx.Client, status: int, timeout: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get("/api/v1/sys/health")
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.2)


def test_init_recovery_shares_restart_and_token_removed(tmp_path: Path) -> None:
    hsm = softhsm(tmp_path)
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url, embedded=False)
    with running(vault, extra_env=hsm.env(), expect_status=503) as server:
        done = cli(server, "operator", "init", "--shares", "3", "--threshold", "2")
        assert done.returncode == 0, done.stderr
        recovery = shares_in(done.stdout, "Recovery")
        assert len(recovery) == 3
        assert "Unseal share" not in done.stdout
        assert "cannot unseal without the source" in done.stderr
        root = root_token_in(done.stdout)
        with server.client(root) as c:
            assert _wait_health(c, 200).status_code == 200  # unsealed by itself
            status = c.get("/api/v1/sys/seal-status").json()
            assert status["unseal_mode"] == "pkcs11"
            assert status["recovery"] is True
            assert c.put(SECRET, json={"value": "s3cr3t"}).status_code == 200
            # Recovery shares are not the root key: on their own they open nothing.
            blob = Path(url.removeprefix("sqlite:///"))
            assert blob.exists()

    # A restart: unsealed by itself, the secret is there.
    port = server.port
    with running(vault, extra_env=hsm.env(), port=port) as server, server.client(root) as c:
        assert c.get(SECRET).json()["value"] == "s3cr3t"

    # The token removed: the node starts, stays sealed and says why (log, health, status).
    aside = hsm.remove_token()
    server = start_server(vault, extra_env=hsm.env(), expect_status=503, port=port)
    try:
        with server.client(root) as c:
            health = c.get("/api/v1/sys/health")
            assert health.status_code == 503
            assert "token not found" in health.json()["reason"], health.text
            assert "token not found" in c.get("/api/v1/sys/seal-status").json()["reason"]
            assert c.get(SECRET).status_code == 503
            assert "auto-unseal failed, staying sealed" in server.log()
            assert "Traceback" not in server.log()
            # Back in the slot: the retry (bounded backoff) unseals without a restart.
            hsm.put_back(aside)
            assert _wait_health(c, 200, timeout=15).status_code == 200
            assert c.get(SECRET).json()["value"] == "s3cr3t"

            # After an operator's seal the source alone does not unseal (not even on a
            # restart); the recovery shares authorise it.
            assert c.post("/api/v1/sys/seal").json()["sealed"] is True
            time.sleep(1.5)
            resp = c.get("/api/v1/sys/health")
            assert resp.status_code == 503
            assert "sealed by an operator" in resp.json()["reason"]
            first = c.post("/api/v1/sys/unseal", json={"share": recovery[0]}).json()
            assert first["sealed"] is True
            second = c.post(
                "/api/v1/sys/unseal", json={"share": recovery[2], "nonce": first["nonce"]}
            )
            assert second.status_code == 200, second.text
            assert second.json()["sealed"] is False
    finally:
        server.stop()

    # Abuse: the recovery shares rebuild a key that does not open the keyring.
    recovery_key = rootkey.combine(recovery[:2])
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        keyring_blob = conn.execute(
            text("SELECT value FROM sys_state WHERE key = 'keyring'")
        ).scalar_one()
    engine.dispose()
    with pytest.raises(DecryptionFailed):
        Keyring.open_with(recovery_key, bytes(keyring_blob))


def test_wrong_pin_is_one_clear_line(tmp_path: Path) -> None:
    hsm = softhsm(tmp_path)
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url, embedded=False)
    # init against a node with a wrong PIN: one line, exit 5, nothing initialised.
    with running(vault, extra_env=hsm.env(pin="0000"), expect_status=503) as server:
        done = cli(server, "operator", "init")
        assert done.returncode == 5, (done.stdout, done.stderr)
        assert "wrong PIN" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
        with server.client() as c:
            assert c.get("/api/v1/sys/seal-status").json()["initialized"] is False
        # The right PIN: init works (nothing half-written by the failed attempt).
    with running(vault, extra_env=hsm.env(), expect_status=503) as server:
        done = cli(server, "operator", "init", "--shares", "1", "--threshold", "1")
        assert done.returncode == 0, done.stderr
        with server.client() as c:
            assert _wait_health(c, 200).status_code == 200
    # A restart with a wrong PIN: sealed, says so, and does not try again (HSMs lock).
    with running(vault, extra_env=hsm.env(pin="0000"), expect_status=503) as server:
        with server.client() as c:
            reason = c.get("/api/v1/sys/health").json()["reason"]
            assert "wrong PIN" in reason
            assert "restart" in reason
        time.sleep(2.5)
        log = server.log()
        assert log.count("wrong PIN") == 1, log
        assert "Traceback" not in log


def test_several_workers_unseal_themselves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two workers and the job process start slowly on a loaded 2-core machine.
    monkeypatch.setattr(server_proc, "START_TIMEOUT", 90.0)
    hsm = softhsm(tmp_path)
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url, embedded=False)
    with running(vault, extra_env=hsm.env(), expect_status=503) as server:
        done = cli(server, "operator", "init", "--shares", "1", "--threshold", "1")
        assert done.returncode == 0, done.stderr
        root = root_token_in(done.stdout)
    with running(vault, extra_env=hsm.env(), workers=2) as server:
        codes = set()
        for _ in range(12):
            with server.client(root) as c:
                resp = c.get("/api/v1/sys/seal-status", headers={"Connection": "close"})
                codes.add(resp.json()["sealed"])
        assert codes == {False}


def test_several_workers_are_refused_under_shamir(tmp_path: Path) -> None:
    """Without an unseal source each worker would need its own shares: refused, one line."""
    import os
    import subprocess

    from server_proc import KEYSAFE_CLI

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    env["KEYSAFE_HOME"] = str(tmp_path / "home")
    env["KEYSAFE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'k.db'}"
    done = subprocess.run(
        [KEYSAFE_CLI, "server", "--workers", "2", "--insecure-http", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "several workers need an unseal source" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
