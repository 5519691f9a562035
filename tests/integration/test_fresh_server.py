"""A fresh production server (issue 11, item 10), as a real ``keysafe server`` process on
SQLite and PostgreSQL: init needs the one-time init token when one is configured, and
unseal progress belongs to the attempt whose nonce the first share holder received.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_proc import ServerProc, database_url, init_vault, running

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
PROBLEM_JSON = "application/problem+json"
Sealed = tuple[ServerProc, list[str]]  # a sealed server and its unseal shares


def problem(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    doc: dict[str, Any] = resp.json()
    assert doc["code"] == code, doc
    return doc


@pytest.fixture(params=ENGINES)
def sealed_fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProc]:
    """An uninitialised server started with ``--init-token-file`` (through the setting)."""
    engine: str = request.param
    with database_url(engine, tmp_path) as url:
        vault = init_vault(engine, tmp_path, url, embedded=False)
        token_file = tmp_path / "init-token"
        env = {"KEYSAFE_INIT_TOKEN_FILE": str(token_file)}
        with running(vault, use_key_file=False, expect_status=503, extra_env=env) as server:
            yield server


def token_file(server: ServerProc) -> Path:
    return Path(server.extra_env["KEYSAFE_INIT_TOKEN_FILE"])


def test_init_needs_the_one_time_token_and_consumes_it(sealed_fresh: ServerProc) -> None:
    path = token_file(sealed_fresh)
    # The server wrote the token, private to its owner.
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) >= 32
    body = {"shares": 3, "threshold": 2}
    with sealed_fresh.client() as c:
        problem(c.post("/api/v1/sys/init", json=body), 401, "unauthenticated")
        wrong = {**body, "init_token": token[:-1] + ("A" if token[-1] != "A" else "B")}
        doc = problem(c.post("/api/v1/sys/init", json=wrong), 401, "unauthenticated")
        assert token not in str(doc)
        assert c.get("/api/v1/sys/seal-status").json()["initialized"] is False
        ok = c.post("/api/v1/sys/init", json=body, headers={"X-Keysafe-Init-Token": token})
        assert ok.status_code == 200, ok.text
        assert len(ok.json()["shares"]) == 3
        assert not path.exists()  # consumed
        again = c.post("/api/v1/sys/init", json={**body, "init_token": token})
        problem(again, 409, "already_initialized")


def test_init_token_in_the_body_works_too(sealed_fresh: ServerProc) -> None:
    token = token_file(sealed_fresh).read_text().strip()
    with sealed_fresh.client() as c:
        r = c.post("/api/v1/sys/init", json={"shares": 1, "threshold": 1, "init_token": token})
        assert r.status_code == 200, r.text


def test_server_refuses_an_init_token_file_others_can_read(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url, embedded=False)
    path = tmp_path / "init-token"
    path.write_text("a-long-enough-operator-token\n")
    path.chmod(0o644)
    with (
        pytest.raises(AssertionError, match="chmod 600"),
        running(
            vault,
            use_key_file=False,
            expect_status=503,
            extra_env={"KEYSAFE_INIT_TOKEN_FILE": str(path)},
        ),
    ):
        pass


@pytest.fixture(params=ENGINES)
def shamir(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServerProc, list[str]]]:
    """A server initialised with 5 shares, threshold 3, sealed."""
    engine: str = request.param
    with database_url(engine, tmp_path) as url:
        vault = init_vault(engine, tmp_path, url, embedded=False)
        with running(vault, use_key_file=False, expect_status=503) as server:
            with server.client() as c:
                r = c.post("/api/v1/sys/init", json={"shares": 5, "threshold": 3})
                assert r.status_code == 200, r.text
            yield server, r.json()["shares"]


def test_unseal_progress_is_bound_to_the_first_holders_nonce(
    shamir: Sealed,
) -> None:
    server, shares = shamir
    with server.client() as holder, server.client() as stranger:
        first = holder.post("/api/v1/sys/unseal", json={"share": shares[0]})
        assert first.status_code == 200, first.text
        nonce = first.json()["nonce"]
        assert len(nonce) >= 32
        # The public status shows progress, never the nonce.
        status = stranger.get("/api/v1/sys/seal-status").json()
        assert status["progress"] == 1
        assert nonce not in str(status)
        # Without the nonce: no reset, no share (a wrong one would spoil the attempt).
        problem(stranger.post("/api/v1/sys/unseal", json={"reset": True}), 409, "conflict")
        problem(
            stranger.post("/api/v1/sys/unseal", json={"reset": True, "nonce": "0" * 32}),
            409,
            "conflict",
        )
        problem(stranger.post("/api/v1/sys/unseal", json={"share": shares[4]}), 409, "conflict")
        assert stranger.get("/api/v1/sys/seal-status").json()["progress"] == 1
        second = holder.post("/api/v1/sys/unseal", json={"share": shares[1], "nonce": nonce})
        assert second.json()["progress"] == 2, second.text
        assert second.json()["nonce"] == nonce
        # The holder may reset; then anyone may start a new attempt with a new nonce.
        reset = holder.post("/api/v1/sys/unseal", json={"reset": True, "nonce": nonce})
        assert reset.json()["progress"] == 0, reset.text
        again = stranger.post("/api/v1/sys/unseal", json={"share": shares[2]})
        renewed = again.json()["nonce"]
        assert renewed
        assert renewed != nonce
        problem(
            holder.post("/api/v1/sys/unseal", json={"share": shares[3], "nonce": nonce}),
            409,
            "conflict",
        )
        for share in shares[3:5]:
            last = holder.post("/api/v1/sys/unseal", json={"share": share, "nonce": renewed})
            assert last.status_code == 200, last.text
        assert last.json()["sealed"] is False
        assert last.json()["nonce"] == ""
        health = holder.get("/api/v1/sys/health")
        assert health.status_code == 200, health.text
