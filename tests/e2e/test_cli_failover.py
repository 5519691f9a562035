"""The CLI as a process with several server addresses: dead or sealed nodes are skipped."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen
from typing import TYPE_CHECKING

from tests.e2e.conftest import Cli, clean_env, free_port

from keysafe.cli.profile import read_profile, write_profile

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

PASSWORD = "e2e failover passphrase"
UpRunner = Callable[[Path], tuple[Popen[str], str]]


def test_profile_listing_a_dead_node_first(tmp_path: Path, up_runner: UpRunner) -> None:
    home = tmp_path / "home"
    _, addr = up_runner(home)
    dead = f"https://127.0.0.1:{free_port()}"
    profile = home / "profile.toml"
    text = profile.read_text()
    # The profile's token and CA apply to every address of its list.
    profile.write_text(text.replace(f'addr = "{addr}"', f'addr = "{dead},{addr}"'))
    cli = Cli(home=home, env=clean_env(KEYSAFE_HOME=str(home)))
    put = cli.run("secret", "set", "fo/DB_PASSWORD", stdin="s3cret-value")
    assert put.returncode == 0, put.stderr
    got = cli.run("secret", "get", "fo/DB_PASSWORD")  # the stdlib fast path
    assert (got.returncode, got.stdout) == (0, "s3cret-value\n"), got.stderr
    listed = cli.run("secret", "list", "fo/")  # the SDK
    assert listed.returncode == 0, listed.stderr
    assert "fo/DB_PASSWORD" in listed.stdout
    assert "s3cret-value" not in listed.stdout + listed.stderr


def test_env_addr_skips_an_uninitialised_node(
    tmp_path: Path, up_runner: UpRunner, prod_server: Cli
) -> None:
    home = tmp_path / "up-home"
    _, addr = up_runner(home)
    profile = tomllib.loads((home / "profile.toml").read_text())
    sealed = prod_server.env["KEYSAFE_ADDR"]  # answers 503 not_initialized to everything
    cli = Cli(
        home=tmp_path / "other",
        env=clean_env(
            KEYSAFE_HOME=str(tmp_path / "other"),
            KEYSAFE_ADDR=f"{sealed}, {addr}",
            KEYSAFE_TOKEN=profile["token"],
            KEYSAFE_CACERT=profile["cacert"],
        ),
    )
    put = cli.run("secret", "set", "fo/API_KEY", stdin="k-123")
    assert put.returncode == 0, put.stderr
    got = cli.run("secret", "get", "fo/API_KEY")
    assert (got.returncode, got.stdout) == (0, "k-123\n"), got.stderr


def test_no_node_reachable_names_each(cli: Cli) -> None:
    one, two = (f"https://127.0.0.1:{free_port()}" for _ in range(2))
    for args in (("secret", "get", "a/b"), ("secret", "list")):
        result = cli.run(*args, env={"KEYSAFE_ADDR": f"{one},{two}", "KEYSAFE_TOKEN": "t"})
        assert result.returncode != 0
        assert one in result.stderr
        assert two in result.stderr


def test_login_through_a_list_keeps_the_list(vault: Vault, tmp_path: Path) -> None:
    made = vault.run("user", "create", "fay", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    ca = read_profile(vault.home / "profile.toml")["cacert"]
    home = tmp_path / "fay"
    nodes = f"https://127.0.0.1:{free_port()},{vault.addr}"
    write_profile(home / "profile.toml", {"addr": nodes, "cacert": ca})
    fay = Cli(home=home, env=clean_env(KEYSAFE_HOME=str(home)))
    done = fay.run("login", "fay", "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 0, done.stderr
    profile = read_profile(home / "profile.toml")
    assert profile["addr"] == nodes  # a session is good on every node
    assert profile["cacert"] == ca
    assert profile["token"].startswith("ks_sess_")
    assert fay.run("logout").returncode == 0
