"""``keysafe operator unseal-migrate``: Shamir -> PKCS#11 (SoftHSM2) -> Shamir, each step
followed by a restart; a failed migration changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from server_proc import database_url, init_vault, running
from unsealkit import cli, root_token_in, shares_in, softhsm

pytestmark = pytest.mark.timeout(150)

SECRET = "/api/v1/secrets/m/TOKEN"


def _wait_health(client: httpx.Client, status: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        code = client.get("/api/v1/sys/health").status_code
        if code == status or time.monotonic() > deadline:
            return code
        time.sleep(0.2)


def test_migrate_both_ways_then_restart(tmp_path: Path) -> None:
    hsm = softhsm(tmp_path)
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url, embedded=False)
    # A Shamir vault (initialised on a node without the source).
    with running(vault, expect_status=503) as server:
        done = cli(server, "operator", "init", "--shares", "3", "--threshold", "2")
        assert done.returncode == 0, done.stderr
        old_shares = shares_in(done.stdout, "Unseal")
        root = root_token_in(done.stdout)
    port = server.port

    with running(vault, extra_env=hsm.env(), expect_status=503, port=port) as server:
        assert cli(server, "operator", "unseal", stdin="\n".join(old_shares[:2])).returncode == 0
        with server.client(root) as c:
            assert _wait_health(c, 200) == 200
            assert c.put(SECRET, json={"value": "v1"}).status_code == 200

            # Failures change nothing: too few shares, then the token gone.
            few = cli(
                server,
                "operator",
                "unseal-migrate",
                "--to",
                "source",
                stdin=old_shares[0],
                token=root,
            )
            assert few.returncode == 2, few.stderr
            aside = hsm.remove_token()
            down = cli(
                server,
                "operator",
                "unseal-migrate",
                "--to",
                "source",
                stdin="\n".join(old_shares[1:]),
                token=root,
            )
            assert down.returncode == 5, down.stderr
            assert "token not found" in down.stderr
            hsm.put_back(aside)
            assert c.get("/api/v1/sys/seal-status").json()["unseal_mode"] == "shamir"

            moved = cli(
                server,
                "operator",
                "unseal-migrate",
                "--to",
                "source",
                "--shares",
                "3",
                "--threshold",
                "2",
                stdin="\n".join(old_shares[:2]),
                token=root,
            )
            assert moved.returncode == 0, moved.stderr
            recovery = shares_in(moved.stdout, "Recovery")
            assert len(recovery) == 3
            status = c.get("/api/v1/sys/seal-status").json()
            assert (status["unseal_mode"], status["sealed"]) == ("pkcs11", False)

    # Restart: unsealed by the HSM; the old shares open nothing any more.
    with running(vault, extra_env=hsm.env(), port=port) as server, server.client(root) as c:
        assert c.get(SECRET).json()["value"] == "v1"
        stale = c.post("/api/v1/sys/generate-root", json={"shares": old_shares[:2]})
        assert stale.status_code == 400
        back = cli(
            server,
            "operator",
            "unseal-migrate",
            "--to",
            "shamir",
            "--shares",
            "2",
            "--threshold",
            "2",
            stdin="\n".join(recovery[1:]),
            token=root,
        )
        assert back.returncode == 0, back.stderr
        new_shares = shares_in(back.stdout, "Unseal")
        assert len(new_shares) == 2
        assert c.get("/api/v1/sys/seal-status").json()["unseal_mode"] == "shamir"

    # Restart without the HSM: sealed until the new shares are given.
    with running(vault, expect_status=503, port=port) as server:
        assert cli(server, "operator", "unseal", stdin="\n".join(old_shares[:2])).returncode != 0
        done = cli(server, "operator", "unseal", stdin="\n".join(new_shares))
        assert done.returncode == 0, done.stderr
        with server.client(root) as c:
            assert _wait_health(c, 200) == 200
            assert c.get(SECRET).json()["value"] == "v1"
