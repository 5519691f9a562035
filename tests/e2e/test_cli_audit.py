"""``keysafe audit verify`` against a real ``keysafe server``: truncation exits 1."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import KEYSAFE, Cli, clean_env, free_port, stop, wait_healthy


@pytest.fixture
def audited_server(tmp_path: Path) -> Iterator[Cli]:
    """`keysafe server --insecure-http` with an audit file, initialised and unsealed."""
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    env = clean_env(
        KEYSAFE_HOME=str(tmp_path / "home"),
        KEYSAFE_DATABASE_URL=f"sqlite:///{tmp_path / 'vault.db'}",
        KEYSAFE_AUDIT_FILE=str(tmp_path / "audit.jsonl"),
        KEYSAFE_AUDIT_CHECKPOINT_EVENTS="3",
        KEYSAFE_ADDR=addr,
    )
    proc = subprocess.Popen(
        [*KEYSAFE, "server", "--insecure-http", "--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_healthy(f"{addr}/api/v1/sys/health", proc, False, {200, 503})
        cli = Cli(home=tmp_path / "home", env=env)
        init = cli.run("operator", "init", "--shares", "1", "--threshold", "1", "--json")
        assert init.returncode == 0, init.stderr
        doc = json.loads(init.stdout)
        key = doc["shares"][0]
        assert cli.run("operator", "unseal", stdin=f"{key}\n").returncode == 0
        cli.env["KEYSAFE_TOKEN"] = doc["root_token"]
        yield cli
    finally:
        stop(proc)


def _write_some(cli: Cli, n: int) -> None:
    for i in range(n):
        assert cli.run("secret", "set", f"app/K{i}", stdin="v").returncode == 0


def test_cut_tail_with_head_moved_back_exits_1(audited_server: Cli, tmp_path: Path) -> None:
    cli = audited_server
    _write_some(cli, 6)
    assert cli.run("audit", "verify").returncode == 0
    db = sqlite3.connect(tmp_path / "vault.db")
    with db:
        # The chain of the writes: cut after its second event, its head moved back.
        (chain,) = db.execute(
            "SELECT chain FROM audit_events WHERE operation = 'secret:write' LIMIT 1"
        ).fetchone()
        (digest,) = db.execute(
            "SELECT hash FROM audit_events WHERE chain = ? AND chain_seq = 2", (chain,)
        ).fetchone()
        db.execute("DELETE FROM audit_events WHERE chain = ? AND chain_seq > 2", (chain,))
        db.execute("DELETE FROM audit_checkpoints WHERE chain = ?", (chain,))
        db.execute("UPDATE audit_chains SET seq = 2, hash = ? WHERE chain = ?", (digest, chain))
    db.close()
    result = cli.run("audit", "verify")
    assert result.returncode == 1
    assert result.stderr.startswith("keysafe: audit trail broken at event 3")
    assert f"(chain {chain})" in result.stderr
    assert "moved back" in result.stderr
    # Every chain is listed, the cut one as broken.
    assert any(
        line.startswith(chain) and "broken at 3" in line for line in result.stdout.splitlines()
    )
    # The next write finds the cut first and records it (in a new chain).
    _write_some(cli, 1)
    as_json = json.loads(cli.run("audit", "verify", "--json").stdout)
    assert as_json["ok"] is False
    assert "trail was cut" in as_json["reason"]


def test_cut_file_exits_1(audited_server: Cli, tmp_path: Path) -> None:
    cli = audited_server
    _write_some(cli, 6)
    assert cli.run("audit", "verify", "--source", "file").returncode == 0
    path = tmp_path / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]))
    result = cli.run("audit", "verify", "--source", "file")
    assert result.returncode == 1
    assert "keysafe: audit trail broken at event" in result.stderr
    # A node's file by name, from the server's audit directory; a FILE needs --source file.
    cut = b"".join(lines[:3])
    path.write_bytes(b"".join(lines) + path.read_bytes()[len(cut) :])  # put back, and since
    (tmp_path / "other-node.jsonl").write_bytes(path.read_bytes())
    named = cli.run("audit", "verify", "--source", "file", "other-node.jsonl")
    assert named.returncode == 0, named.stderr
    assert "audit trail intact" in named.stdout
    assert cli.run("audit", "verify", "other-node.jsonl").returncode == 2
    outside = cli.run("audit", "verify", "--source", "file", "../vault.db")
    assert outside.returncode == 2, outside.stderr
