"""A fresh production server from the CLI: ``keysafe server --init-token-file`` makes init
need the one-time token (``keysafe operator init --init-token-file``), and ``keysafe
operator unseal`` carries the unseal attempt's nonce from one share to the next."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import KEYSAFE, Cli, clean_env, free_port, stop, wait_healthy


@pytest.fixture
def guarded_server(tmp_path: Path) -> Iterator[tuple[Cli, Path]]:
    """``keysafe server --insecure-http --init-token-file`` on its own SQLite file."""
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    token_file = tmp_path / "init-token"
    env = clean_env(
        KEYSAFE_HOME=str(tmp_path / "home"),
        KEYSAFE_DATABASE_URL=f"sqlite:///{tmp_path / 'vault.db'}",
        KEYSAFE_ADDR=addr,
    )
    args = ["server", "--insecure-http", "--port", str(port), "--init-token-file", str(token_file)]
    proc = subprocess.Popen(
        [*KEYSAFE, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_healthy(f"{addr}/api/v1/sys/health", proc, False, {503})
        yield Cli(home=tmp_path / "home", env=env), token_file
    finally:
        _out, err = stop(proc)
        token = token_file.read_text().strip() if token_file.exists() else None
        if token:
            assert token not in err  # the server says where the token is, never what


def test_init_needs_the_token_file(guarded_server: tuple[Cli, Path]) -> None:
    cli, token_file = guarded_server
    assert token_file.exists()
    refused = cli.run("operator", "init", "--shares", "1", "--threshold", "1")
    assert refused.returncode == 6, refused.stderr
    assert "init token" in refused.stderr
    assert json.loads(cli.run("operator", "status", "--json").stdout)["initialized"] is False
    done = cli.run(
        "operator",
        "init",
        "--shares",
        "1",
        "--threshold",
        "1",
        "--init-token-file",
        str(token_file),
    )
    assert done.returncode == 0, done.stderr
    assert not token_file.exists()
    assert json.loads(cli.run("operator", "status", "--json").stdout)["initialized"] is True


def test_unseal_nonce_is_carried_and_shared(prod_server: Cli, tmp_path: Path) -> None:
    init = prod_server.run("operator", "init", "--shares", "5", "--threshold", "3", "--json")
    assert init.returncode == 0, init.stderr
    shares = json.loads(init.stdout)["shares"]

    first = prod_server.run("operator", "unseal", stdin=shares[0] + "\n")
    assert first.returncode == 0, first.stderr
    assert "1/3" in first.stderr
    nonce = next(
        line.split("Unseal nonce: ", 1)[1].split()[0]
        for line in first.stderr.splitlines()
        if "Unseal nonce: " in line
    )
    # Another machine (another KEYSAFE_HOME) without the nonce changes nothing...
    elsewhere = {"KEYSAFE_HOME": str(tmp_path / "elsewhere")}
    stranger = prod_server.run("operator", "unseal", stdin=shares[1] + "\n", env=elsewhere)
    assert stranger.returncode == 4, stranger.stderr
    assert "nonce" in stranger.stderr
    reset = prod_server.run("operator", "unseal", "--reset", env=elsewhere)
    assert reset.returncode == 4, reset.stderr
    status = json.loads(prod_server.run("operator", "status", "--json").stdout)
    assert status["progress"] == 1
    assert status["nonce"] == ""  # never shown in the public status
    # ... with it (flag or environment), its share counts.
    shared = prod_server.run(
        "operator", "unseal", "--nonce", nonce, stdin=shares[1] + "\n", env=elsewhere
    )
    assert shared.returncode == 0, shared.stderr
    assert "2/3" in shared.stderr
    # The first machine remembered the nonce: its next share just works.
    last = prod_server.run("operator", "unseal", stdin=shares[2] + "\n")
    assert last.returncode == 0, last.stderr
    assert "unsealed" in last.stderr.lower()
