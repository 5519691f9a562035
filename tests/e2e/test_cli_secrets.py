"""``keysafe up`` then ``keysafe secret ...`` as separate processes, like a user would."""

from __future__ import annotations

import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault


def test_up_wrote_a_private_profile_and_dev_key(vault: Vault) -> None:
    profile = vault.home / "profile.toml"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert stat.S_IMODE((vault.home / "tls" / "server-key.pem").stat().st_mode) == 0o600
    text = profile.read_text()
    assert f'addr = "{vault.addr}"' in text
    assert "ks_root_" in text
    assert vault.proc is not None


def test_set_then_get_prints_the_exact_value(vault: Vault) -> None:
    value = "hunter2-but-long"
    result = vault.run("secret", "set", "e2e/basic/DB_PASSWORD", stdin=value)
    assert result.returncode == 0, result.stderr
    assert value not in result.stdout + result.stderr
    got = vault.run("secret", "get", "e2e/basic/DB_PASSWORD")
    assert (got.returncode, got.stdout) == (0, value + "\n")
    raw = vault.run("secret", "get", "--no-newline", "e2e/basic/DB_PASSWORD")
    assert raw.stdout == value


def test_values_with_awkward_bytes_survive(vault: Vault, tmp_path: object) -> None:
    value = 'line1\nit\'s $HOME \\ "q" é\n'
    path = vault.home / "value.txt"
    path.write_text(value, encoding="utf-8")
    assert vault.run("secret", "set", "e2e/basic/PEM", "--file", str(path)).returncode == 0
    assert vault.run("secret", "get", "-n", "e2e/basic/PEM").stdout == value


def test_list_shows_paths_and_versions_never_values(vault: Vault) -> None:
    vault.run("secret", "set", "e2e/list/A", stdin="value-a-secret")
    vault.run("secret", "set", "e2e/list/sub/B", stdin="value-b-secret")
    human = vault.run("secret", "list", "e2e/list/")
    assert human.returncode == 0, human.stderr
    assert "e2e/list/A" in human.stdout
    assert "e2e/list/sub/B" in human.stdout
    assert "value-" not in human.stdout
    machine = vault.run("secret", "list", "e2e/list/", "--json")
    import json

    rows = json.loads(machine.stdout)
    assert {r["path"] for r in rows} == {"e2e/list/A", "e2e/list/sub/B"}
    assert all("value" not in r for r in rows)


def test_versions_history_rollback_delete_undelete_destroy(vault: Vault) -> None:
    import json

    path = "e2e/versions/KEY"
    for value in ("one", "two"):
        assert vault.run("secret", "set", path, stdin=value).returncode == 0
    hist = json.loads(vault.run("secret", "history", path, "--json").stdout)
    assert [v["version"] for v in hist["versions"]][-2:] == [1, 2] or len(hist["versions"]) == 2
    assert vault.run("secret", "history", path).returncode == 0

    rb = vault.run("secret", "rollback", path, "--version", "1")
    assert rb.returncode == 0, rb.stderr
    assert vault.run("secret", "get", path).stdout == "one\n"
    assert vault.run("secret", "get", path, "--version", "2").stdout == "two\n"

    assert vault.run("secret", "delete", path).returncode == 0
    assert vault.run("secret", "get", path).returncode == 3
    assert vault.run("secret", "undelete", path).returncode == 0
    assert vault.run("secret", "get", path).stdout == "one\n"

    destroyed = vault.run("secret", "destroy", path, "--version", "2", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    assert vault.run("secret", "get", path, "--version", "2").returncode != 0
    refused = vault.run("secret", "destroy", path, "--version", "1")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr


def test_metadata_show_and_set(vault: Vault) -> None:
    import json

    path = "e2e/meta/KEY"
    vault.run("secret", "set", path, stdin="v")
    result = vault.run(
        "secret", "metadata", "set", path, "--owner", "payments-team", "--tag", "env=dev",
        "--description", "test key", "--max-versions", "5", "--expires", "2030-01-01",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    meta = json.loads(vault.run("secret", "metadata", "show", path, "--json").stdout)
    assert meta["owner"] == "payments-team"
    assert meta["tags"] == {"env": "dev"}
    assert meta["max_versions"] == 5
    assert meta["expires_at"].startswith("2030-01-01")


def test_cas_conflict_is_exit_4(vault: Vault) -> None:
    path = "e2e/cas/KEY"
    assert vault.run("secret", "set", path, "--cas", "0", stdin="first").returncode == 0
    stale = vault.run("secret", "set", path, "--cas", "0", stdin="second")
    assert stale.returncode == 4
    assert stale.stderr.startswith("keysafe: ")
    assert vault.run("secret", "set", path, "--cas", "1", stdin="second").returncode == 0


def test_malformed_path_is_exit_2_with_one_line(vault: Vault) -> None:
    for bad in ("a/../b", "bad path", "a//b"):
        result = vault.run("secret", "get", bad)
        assert result.returncode == 2, bad
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith("keysafe: ")
        assert "Traceback" not in result.stderr


def test_missing_secret_is_exit_3(vault: Vault) -> None:
    result = vault.run("secret", "get", "e2e/nothing/HERE")
    assert result.returncode == 3
    assert result.stderr.startswith("keysafe: ")
    assert result.stderr.count("\n") == 1


def test_value_as_an_argument_is_impossible(vault: Vault) -> None:
    result = vault.run("secret", "set", "e2e/argv/KEY", "hunter2-in-argv")
    assert result.returncode == 2
    assert "hunter2-in-argv" not in result.stderr
    assert vault.run("secret", "get", "e2e/argv/KEY").returncode == 3


def test_audit_verify_is_exit_0(vault: Vault) -> None:
    result = vault.run("audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "intact" in result.stdout


def test_server_down_is_exit_7(vault: Vault, unused_port: Callable[[], int]) -> None:
    down = {"KEYSAFE_ADDR": f"https://127.0.0.1:{unused_port()}"}
    for args in (("secret", "get", "a/b"), ("secret", "list")):
        result = vault.run(*args, env=down)
        assert result.returncode == 7
        assert result.stderr.count("\n") == 1


def test_untrusted_certificate_is_exit_7_on_every_path(vault: Vault) -> None:
    import certifi

    wrong_ca = {"KEYSAFE_CACERT": certifi.where()}
    for env in (wrong_ca,):
        for args in (("secret", "get", "a/b"), ("secret", "list")):
            result = vault.run(*args, env=env)
            assert result.returncode == 7, (env, args, result.stderr)
            assert "TLS" in result.stderr
    # localhost and 127.0.0.1 are one `keysafe up`: the profile's CA and token apply.
    other_name = {"KEYSAFE_ADDR": vault.addr.replace("127.0.0.1", "localhost")}
    assert vault.run("secret", "get", "a/b", env=other_name).returncode == 3  # not found
    assert vault.run("secret", "list", env=other_name).returncode == 0
