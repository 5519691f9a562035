"""The production flow: ``keysafe server`` starts sealed; init, unseal, use, seal."""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Cli


def test_init_unseal_use_seal(prod_server: Cli) -> None:
    status = json.loads(prod_server.run("operator", "status", "--json").stdout)
    assert status["initialized"] is False

    init = prod_server.run("operator", "init", "--shares", "5", "--threshold", "3")
    assert init.returncode == 0, init.stderr
    lines = init.stdout.splitlines()
    shares = [line.split(": ", 1)[1] for line in lines if line.startswith("Unseal share")]
    root = next(line.split(": ", 1)[1] for line in lines if line.startswith("Root token"))
    assert len(shares) == 5
    assert root.startswith("ks_root_")
    again = prod_server.run("operator", "init", "--shares", "5", "--threshold", "3")
    assert again.returncode == 4

    as_root = {"KEYSAFE_TOKEN": root}
    assert prod_server.run("secret", "get", "ops/KEY", env=as_root).returncode == 5

    one = prod_server.run("operator", "unseal", stdin=shares[0] + "\n")
    assert one.returncode == 0, one.stderr
    assert "1/3" in one.stderr
    rest = prod_server.run("operator", "unseal", stdin="\n".join(shares[3:5]) + "\n")
    assert rest.returncode == 0, rest.stderr
    assert "unsealed" in rest.stderr.lower()

    assert (
        prod_server.run("secret", "set", "ops/KEY", stdin="prod-value", env=as_root).returncode == 0
    )
    got = prod_server.run("secret", "get", "ops/KEY", env=as_root)
    assert (got.returncode, got.stdout) == (0, "prod-value\n")

    rotated = prod_server.run("operator", "rotate-key", env=as_root)
    assert rotated.returncode == 0, rotated.stderr
    rewrap = prod_server.run("operator", "rewrap", "--batch", "1", env=as_root)
    assert rewrap.returncode == 0, rewrap.stderr
    assert prod_server.run("secret", "get", "ops/KEY", env=as_root).stdout == "prod-value\n"
    assert prod_server.run("audit", "verify", env=as_root).returncode == 0

    sealed = prod_server.run("operator", "seal", env=as_root)
    assert sealed.returncode == 0, sealed.stderr
    after = prod_server.run("secret", "get", "ops/KEY", env=as_root)
    assert after.returncode == 5
    assert after.stderr.startswith("keysafe: ")


def test_bad_share_is_exit_2(prod_server: Cli) -> None:
    assert prod_server.run("operator", "init", "--shares", "3", "--threshold", "2").returncode == 0
    bad = prod_server.run("operator", "unseal", stdin="not a real share\n")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") <= 2


def test_insecure_http_needs_loopback(cli: Cli) -> None:
    result = cli.run("server", "--insecure-http", "--host", "0.0.0.0", "--port", "1")  # noqa: S104
    assert result.returncode == 2
    assert "loopback" in result.stderr
    no_tls = cli.run("server", "--port", "1")
    assert no_tls.returncode == 2


def test_server_over_tls_starts_sealed(tls_server: Cli) -> None:
    status = tls_server.run("operator", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["sealed"] is True
    init = tls_server.run("operator", "init", "--shares", "1", "--threshold", "1", "--json")
    assert init.returncode == 0, init.stderr
    share = json.loads(init.stdout)["shares"][0]
    assert tls_server.run("operator", "unseal", stdin=share + "\n").returncode == 0
    assert json.loads(tls_server.run("operator", "status", "--json").stdout)["sealed"] is False


def test_generate_root_after_the_root_token_leaked(
    up_runner: Callable[[Path], tuple[subprocess.Popen[str], str]], cli: Cli, tmp_path: Path
) -> None:
    home = cli.home  # the `cli` fixture's empty KEYSAFE_HOME, now served by `keysafe up`
    _proc, _addr = up_runner(home)
    old = tomllib.loads((home / "profile.toml").read_text())["token"]
    leaked = tmp_path.parent / f"{tmp_path.name}-leak"
    leaked.mkdir()
    (leaked / "notes.txt").write_text(f"root token: {old}\n")
    assert cli.run("scan", str(leaked), "--report").returncode == 1
    assert cli.run("token", "list").returncode == 6
    wrong = cli.run("operator", "generate-root", stdin="ksu1_AAAA.00000000\n")
    assert wrong.returncode == 2
    fresh = cli.run("operator", "generate-root", stdin=(home / "unseal.key").read_text())
    assert fresh.returncode == 0, fresh.stderr
    token = fresh.stdout.strip()
    assert token.startswith("ks_root_")
    assert cli.run("token", "list", env={"KEYSAFE_TOKEN": token}).returncode == 0
