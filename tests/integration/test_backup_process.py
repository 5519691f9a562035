"""``keysafe operator backup`` and ``restore`` as processes, against real servers.

A backup taken through a running server under 8 concurrent writers, restored into the
other engine: every write acknowledged before the backup started is there, the audit
trail verifies and the vault unseals with its own Shamir shares. Bad files and
non-empty targets are refused with one line and nothing written.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_proc import KEYSAFE_CLI, ServerProc, database_url, init_vault, running

from keysafe.access.models import RequestContext
from keysafe.config import load_settings
from keysafe.server.services import build_services
from keysafe.store.engine import make_engine
from keysafe.store.restore import restore

WRITERS = 8
# One direction with real processes (the other runs in process: test_backup_engines.py).
SOURCE, TARGET = "sqlite", "postgres"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    return subprocess.run(
        [KEYSAFE_CLI, *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _init_shamir(server: ServerProc) -> tuple[list[str], str]:
    with server.client() as c:
        done = c.post("/api/v1/sys/init", json={"shares": 3, "threshold": 2})
        assert done.status_code == 200, done.text
        doc = done.json()
    _unseal(server, doc["shares"][1:])
    return list(doc["shares"]), str(doc["root_token"])


def _unseal(server: ServerProc, shares: list[str]) -> None:
    nonce = None
    with server.client() as c:
        for share in shares:
            got = c.post("/api/v1/sys/unseal", json={"share": share, "nonce": nonce})
            assert got.status_code == 200, got.text
            nonce = got.json().get("nonce") or nonce
        assert got.json()["sealed"] is False, got.text
        assert c.get("/api/v1/sys/health").status_code == 200


class Writers:
    """Threads writing new secrets; each acknowledged write is kept with its time."""

    def __init__(self, server: ServerProc, token: str) -> None:
        self.server = server
        self.token = token
        self.stop = threading.Event()
        self.acked: list[tuple[float, str, str]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(WRITERS)]

    def _run(self, worker: int) -> None:
        with self.server.client(self.token) as c:
            n = 0
            while not self.stop.is_set():
                path, value = f"load/w{worker}/k{n}", f"v-{worker}-{n}-{secrets.token_hex(4)}"
                try:
                    got = c.put(f"/api/v1/secrets/{path}", json={"value": value})
                except httpx.TransportError as exc:
                    self.errors.append(repr(exc))
                    continue
                if got.status_code != 200:
                    self.errors.append(f"{got.status_code} {got.text[:200]}")
                    continue
                with self._lock:
                    self.acked.append((time.monotonic(), path, value))
                n += 1

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.acked) >= count, (len(self.acked), self.errors[:3])


@pytest.mark.postgres
def test_backup_under_writers_restores_into_the_other_engine(tmp_path: Path) -> None:
    source, target = SOURCE, TARGET
    backup_file = tmp_path / "vault.backup"
    with (
        database_url(source, tmp_path / "src") as src_url,
        database_url(target, tmp_path / "dst") as dst_url,
    ):
        vault = init_vault(source, tmp_path / "src", src_url, embedded=False)
        with running(vault, use_key_file=False, expect_status=None) as server:
            shares, root = _init_shamir(server)
            env = {
                "KEYSAFE_HOME": str(tmp_path / "cli-home"),
                "KEYSAFE_ADDR": server.base_url,
                "KEYSAFE_TOKEN": root,
                "KEYSAFE_CACERT": str(vault.tls.ca_cert),
            }
            with Writers(server, root) as writers:
                writers.wait_for(80)
                started = time.monotonic()
                done = cli("operator", "backup", str(backup_file), env=env)
                ended = time.monotonic()
                writers.wait_for(len(writers.acked) + 16)  # still writing after it
            assert done.returncode == 0, done.stderr
            assert "Backup written to" in done.stderr
            assert not writers.errors, writers.errors[:3]
        assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
        assert not list(tmp_path.glob(".vault.backup.*")), "the temp file was left"
        before = [(p, v) for t, p, v in writers.acked if t < started]
        during = [a for a in writers.acked if started <= a[0] <= ended]
        assert before, "writers must run before the backup is taken"
        assert during, "writers must run while the backup is taken"

        # The restore runs in process here (its CLI: the test below), into PostgreSQL.
        target_engine = make_engine(dst_url)
        try:
            with backup_file.open("rb") as fh:
                header = restore(target_engine, fh)
        finally:
            target_engine.dispose()
        assert header.engine == source
        asyncio.run(_check_restored(tmp_path, dst_url, shares, root, before))


async def _check_restored(
    tmp_path: Path, url: str, shares: list[str], root: str, before: list[tuple[str, str]]
) -> None:
    """The restored store, served as a node would: sealed, unsealed by the same shares
    (another pair of them), every acknowledged value there, the audit trail intact."""
    settings = load_settings(home=tmp_path / "dst-home", database_url=url)
    svc = build_services(settings)
    try:
        assert svc.system.status()["initialized"] is True
        assert svc.system.status()["sealed"] is True
        status = svc.system.unseal(shares[0])
        status = svc.system.unseal(shares[2], nonce=status["nonce"])
        assert status["sealed"] is False
        svc.audit.start()
        ctx = RequestContext(svc.tokens.authenticate(root), "127.0.0.1", "restore-test")
        lost = [p for p, v in before if (await svc.secrets.read(ctx, p)).value != v]
        assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:5]}"
        verified = svc.audit.verify()
        assert verified.ok, verified
        assert verified.events >= len(before)
    finally:
        svc.close()


def test_bad_files_and_non_empty_targets_are_refused_with_nothing_written(
    tmp_path: Path,
) -> None:
    src_url = f"sqlite:///{tmp_path / 'src' / 'keysafe.db'}"
    (tmp_path / "src").mkdir()
    init_vault("sqlite", tmp_path / "src", src_url)
    good = tmp_path / "good.backup"
    done = cli("operator", "backup", str(good), "--database-url", src_url)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(good.stat().st_mode) == 0o600
    data = good.read_bytes()
    bad = tmp_path / "cut.backup"
    bad.write_bytes(data[: len(data) // 2])
    target = tmp_path / "target.db"
    got = cli("operator", "restore", str(bad), "--database-url", f"sqlite:///{target}")
    assert got.returncode == 8, (got.returncode, got.stderr)
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1, got.stderr
    assert "truncated" in lines[0], got.stderr
    assert _tables(target) == []  # not even the schema

    # A store with anything in it is refused and keeps what it had (other bad files and
    # targets: tests/unit/store/test_backup_format.py).
    rows = _row_counts(tmp_path / "src" / "keysafe.db")
    full = cli("operator", "restore", str(good), "--database-url", src_url)
    assert full.returncode == 4, full.stderr
    assert "not empty" in full.stderr
    assert len(full.stderr.strip().splitlines()) == 1
    assert _row_counts(tmp_path / "src" / "keysafe.db") == rows

    fresh = tmp_path / "fresh.db"
    ok = cli("operator", "restore", str(good), "--database-url", f"sqlite:///{fresh}")
    assert ok.returncode == 0, ok.stderr
    assert _row_counts(fresh) == rows


def _tables(path: Path) -> list[str]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]


def _row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # noqa: S608
            for name in _tables(path)
            if name not in ("nodes", "invalidations", "sqlite_sequence")
        }
