"""Unix-tool behaviour of the CLI: list states and whole-folder matching, --yes, a single
``keysafe up`` per home, completion from the server, strict configuration."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import KEYSAFE, Vault, clean_env, free_port


def test_list_shows_state_and_matches_whole_folders(vault: Vault) -> None:
    for path in ("wfpay/A", "wfpay/B", "wfpayments/C"):
        assert vault.run("secret", "set", path, stdin="v").returncode == 0
    assert vault.run("secret", "delete", "wfpay/B").returncode == 0
    rows = json.loads(vault.run("secret", "list", "wfpay", "--json").stdout)
    assert [(r["path"], r["state"]) for r in rows] == [
        ("wfpay/A", "active"),
        ("wfpay/B", "deleted"),
    ]
    active = json.loads(vault.run("secret", "list", "wfpay", "--active", "--json").stdout)
    assert [r["path"] for r in active] == ["wfpay/A"]
    human = vault.run("secret", "list", "wfpay/")
    assert human.stdout.splitlines()[0].split() == ["PATH", "VERSION", "STATE", "UPDATED"]
    assert "wfpayments" not in human.stdout


def test_destructive_user_commands_need_yes_without_a_terminal(vault: Vault) -> None:
    for args in (("user", "delete", "nobody"), ("user", "reset-mfa", "nobody")):
        refused = vault.run(*args)
        assert refused.returncode == 2
        assert "pass --yes" in refused.stderr
        assert vault.run(*args, "--yes").returncode == 3  # asked the server: no such user


def test_a_second_up_on_the_same_home_names_the_running_one(
    tmp_path: Path, up_runner: Callable[[Path], tuple[subprocess.Popen[str], str]]
) -> None:
    home = tmp_path / "home"
    proc, addr = up_runner(home)
    profile = (home / "profile.toml").read_text()
    second = subprocess.run(
        [*KEYSAFE, "up", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=clean_env(KEYSAFE_HOME=str(home)),
        timeout=60,
    )
    assert second.returncode == 4
    assert f"pid {proc.pid} at {addr}" in second.stderr
    assert "Traceback" not in second.stderr
    assert (home / "profile.toml").read_text() == profile  # left alone


def test_completion_of_secret_paths_comes_from_the_server(vault: Vault) -> None:
    vault.run("secret", "set", "wfcomp/dev/DB", stdin="v")
    vault.run("secret", "set", "wfcomp/prod/DB", stdin="v")

    def complete(words: str) -> list[str]:
        env = {"_KEYSAFE_COMPLETE": "complete_bash", "COMP_WORDS": words}
        done = vault.run(env={**env, "COMP_CWORD": str(len(words.split()) - 1)})
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("keysafe secret get wfcomp/") == ["wfcomp/dev/", "wfcomp/prod/"]
    assert complete("keysafe secret get wfcomp/p") == ["wfcomp/prod/"]
    assert complete("keysafe secret history wfcomp/dev/") == ["wfcomp/dev/DB"]
    # No server: no suggestions and no error text in the shell.
    offline = vault.run(
        env={
            "_KEYSAFE_COMPLETE": "complete_bash",
            "COMP_WORDS": "keysafe secret get wf",
            "COMP_CWORD": "3",
            "KEYSAFE_ADDR": f"https://127.0.0.1:{free_port()}",
        }
    )
    assert offline.stdout.strip() == ""
    assert offline.stderr == ""


def test_unknown_configuration_keys_and_smtp_less_email_hooks_are_refused(
    vault: Vault, tmp_path: Path
) -> None:
    config = tmp_path / "keysafe.toml"
    config.write_text('addr = "https://127.0.0.1:1"\nrate_limt = 5\n')
    typo = vault.run("--config", str(config), "secret", "list")
    assert typo.returncode == 2
    assert typo.stderr.strip() == f"keysafe: config file {config}: unknown key 'rate_limt'"
    hook = vault.run("alert", "hook", "add", "--email", "ops@example.org")
    assert hook.returncode == 2
    assert "SMTP" in hook.stderr


def test_help_shows_no_python_types() -> None:
    for args in (["secret", "undelete"], ["secret", "set"], ["export"], ["audit", "events"]):
        shown = subprocess.run(
            [*KEYSAFE, *args, "--help"], capture_output=True, text=True, timeout=60
        ).stdout
        assert not re.search(r"<(str|int|float|list\[\w+\]|int range)>", shown), shown
        assert "[extra]" not in shown
