"""``keysafe server`` as a real process: private database files, audit checkpoints in
the server log, and lockouts that do not tell real names from made-up ones across
workers."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from server_proc import ServerProc, database_url, init_vault, running


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _login_statuses(server: ServerProc, name: str, attempts: int) -> list[int]:
    """Each attempt on a fresh connection, so that the workers share them."""
    out = []
    for _ in range(attempts):
        with server.client() as c:
            resp = c.post(
                "/api/v1/auth/login",
                json={"name": name, "password": "not the password at all"},
                headers={"Connection": "close"},
            )
            out.append(resp.status_code)
    return out


@pytest.mark.timeout(120)
def test_sqlite_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"  # nothing exists yet: the server creates it
    db = data / "keysafe.db"
    vault = init_vault("sqlite", tmp_path, f"sqlite:///{db}")
    checkpoints = {"KEYSAFE_AUDIT_CHECKPOINT_EVENTS": "2"}
    with running(vault, extra_env=checkpoints) as server, server.root() as c:
        # Two writes: two events in the writer thread's audit chain, one checkpoint.
        assert c.put("/api/v1/secrets/app/KEY", json={"value": "v"}).status_code == 200
        assert c.put("/api/v1/secrets/app/KEY", json={"value": "w"}).status_code == 200
        assert c.get("/api/v1/secrets/app/KEY").status_code == 200
        # The signed checkpoint is copied to the server log too.
        with sqlite3.connect(db) as conn:
            mac = conn.execute(
                "SELECT mac FROM audit_checkpoints WHERE n = 1 AND seq = 2"
            ).fetchone()[0]
        assert "audit checkpoint 1: seq=2 " in server.log()
        assert f"mac={mac.hex()}" in server.log()
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert {f.name: _mode(f) for f in files if f.exists()} == {
            f.name: 0o600 for f in files if f.exists()
        }
        assert Path(f"{db}-wal").exists()
        assert _mode(data) == 0o700
        assert _mode(data.parent) == 0o700


@pytest.mark.timeout(180)
@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_unknown_and_real_names_lock_alike_across_two_workers(tmp_path: Path, engine: str) -> None:
    with database_url(engine, tmp_path) as url:
        vault = init_vault(engine, tmp_path, url)
        with running(vault, workers=2) as server:
            _lock_alike(server)


def _lock_alike(server: ServerProc) -> None:
    with server.root() as c:
        created = c.post(
            "/api/v1/users", json={"name": "alice", "password": "a long enough passphrase"}
        )
        assert created.status_code == 200, created.text
    real = _login_statuses(server, "alice", 7)
    made_up = _login_statuses(server, "mallory-not-a-user", 7)
    # The default threshold is 5 consecutive failures.
    assert real == [401] * 5 + [429] * 2
    assert made_up == real
