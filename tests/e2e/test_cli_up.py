"""``keysafe up`` twice on one home: the second run reuses the vault, key and profile."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.conftest import Cli

UpRunner = Callable[["Path"], tuple[subprocess.Popen[str], str]]


def test_second_up_reuses_everything(cli: Cli, up_runner: UpRunner) -> None:
    first, _ = up_runner(cli.home)
    profile = cli.home / "profile.toml"
    token_line = next(line for line in profile.read_text().splitlines() if "token" in line)
    assert cli.run("secret", "set", "up/KEY", stdin="kept").returncode == 0
    first.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = first.communicate(timeout=20)
    assert first.returncode == 0, err
    assert "root token was saved to the profile" in err
    assert "DEV key" in err
    assert "ks_root_" not in err

    second, addr = up_runner(cli.home)
    assert token_line in profile.read_text()
    assert f'addr = "{addr}"' in profile.read_text()
    got = cli.run("secret", "get", "up/KEY")
    assert (got.returncode, got.stdout) == (0, "kept\n"), got.stderr
    second.send_signal(signal.SIGINT)
    _, err = second.communicate(timeout=20)
    assert "initialised" not in err
    assert "ks_root_" not in err
