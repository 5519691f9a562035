"""``keysafe init`` projects: commands anywhere below .keysafe.toml, --env, env list/diff."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from pathlib import Path

from tests.e2e.conftest import KEYSAFE, Vault


def run_in(
    vault: Vault, cwd: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KEYSAFE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**vault.env, **env},
        timeout=60,
    )


def make_project(vault: Vault, tmp_path: Path, prefix: str) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    deep = repo / "src" / "pkg"
    deep.mkdir(parents=True)
    (repo / ".git").mkdir()
    (repo / ".gitignore").write_text("build/")  # no trailing newline: init must add one
    done = run_in(vault, deep, "init", "--path", prefix)
    assert done.returncode == 0, done.stderr
    return repo, deep


def test_init_then_everything_works_from_a_subfolder(vault: Vault, tmp_path: Path) -> None:
    repo, deep = make_project(vault, tmp_path, "wfproj")
    config = (repo / ".keysafe.toml").read_text()
    assert 'path = "wfproj"' in config
    assert 'env = "dev"' in config
    assert vault.addr in config
    ignored = (repo / ".gitignore").read_text().splitlines()
    assert ignored[0] == "build/"
    assert ".env" in ignored

    for env, value in (("dev", "dev-pw"), ("staging", "stg-pw")):
        done = run_in(vault, deep, "secret", "set", "DB_PASSWORD", "--env", env, stdin=value)
        assert done.returncode == 0, done.stderr
        assert f"wfproj/{env}/DB_PASSWORD" in done.stderr
    run_in(vault, deep, "secret", "set", "wfproj/prod/API_KEY", stdin="p1")

    # The fast path of `secret get` and the Typer one (--env) agree.
    assert run_in(vault, deep, "secret", "get", "DB_PASSWORD").stdout == "dev-pw\n"
    got = run_in(vault, deep, "secret", "get", "DB_PASSWORD", "--env", "staging")
    assert got.stdout == "stg-pw\n", got.stderr
    child = run_in(vault, deep, "run", "--", "sh", "-c", 'printf %s "$DB_PASSWORD"')
    assert child.returncode == 0, child.stderr
    assert child.stdout == "dev-pw"
    child = run_in(
        vault, deep, "run", "-e", "staging", "--", "sh", "-c", 'printf %s "$DB_PASSWORD"'
    )
    assert child.stdout == "stg-pw"
    assert run_in(vault, deep, "export", "--env", "prod").stdout == "API_KEY='p1'\n"

    listed = run_in(vault, deep, "env", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split() for line in listed.stdout.splitlines()] == [
        ["ENV", "SECRETS"],
        ["dev", "1"],
        ["prod", "1"],
        ["staging", "1"],
    ]
    diff = run_in(vault, deep, "env", "diff", "dev", "prod")
    assert diff.returncode == 1  # they differ, like diff(1)
    assert "only dev" in diff.stdout
    assert "only prod" in diff.stdout
    assert "dev-pw" not in diff.stdout + diff.stderr
    assert "p1" not in diff.stdout
    same = run_in(vault, deep, "env", "diff", "dev", "staging", "--json")
    assert same.returncode == 0, same.stderr
    assert '"DB_PASSWORD"' in same.stdout
    assert "pw" not in same.stdout


def test_outside_a_project_a_path_is_still_required(vault: Vault, tmp_path: Path) -> None:
    done = run_in(vault, tmp_path, "run", "--", "true")
    assert done.returncode == 2
    assert "--path is required outside a project" in done.stderr
    done = run_in(vault, tmp_path, "secret", "get", "X", "--env", "prod")
    assert done.returncode == 2
    assert "--env needs a project" in done.stderr


def test_init_refuses_to_overwrite_and_rejects_unknown_keys(vault: Vault, tmp_path: Path) -> None:
    repo, deep = make_project(vault, tmp_path, "wfproj2")
    again = run_in(vault, deep, "init", "--path", "other")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    (repo / ".keysafe.toml").write_text('path = "wfproj2"\nenvironment = "prod"\n')
    typo = run_in(vault, deep, "export")
    assert typo.returncode == 2
    assert "unknown key 'environment'" in typo.stderr


def test_a_project_cannot_send_credentials_to_another_server(vault: Vault, tmp_path: Path) -> None:
    """A cloned repository (or a pull request) names a server of its own: neither the
    profile's token nor KEYSAFE_TOKEN may be sent there."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    received.append(conn.recv(4096))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        repo = tmp_path / "evil"
        repo.mkdir()
        evil = f"http://127.0.0.1:{listener.getsockname()[1]}"
        (repo / ".keysafe.toml").write_text(f'path = "wfproj"\naddr = "{evil}"\n')
        for args in (("secret", "get", "DB_PASSWORD"), ("export",), ("run", "--", "true")):
            for extra in ({}, {"KEYSAFE_TOKEN": "ks-test-token-not-for-you"}):
                done = run_in(vault, repo, *args, **extra)
                assert done.returncode == 2, done.stderr
                assert f"names server {evil}" in done.stderr
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    assert received == []
