"""Which variables secrets may set in ``keysafe run`` / ``export``, and what the program
inherits from the caller."""

from __future__ import annotations

import pytest

from keysafe.cli.env_safety import check_names, inherited_env, refusal_reason
from keysafe.cli.envmap import build_env
from keysafe.errors import InvalidInput


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        # loader and C library
        ("LD_PRELOAD", True),
        ("LD_LIBRARY_PATH", True),
        ("LD_AUDIT", True),
        ("DYLD_INSERT_LIBRARIES", True),
        ("GCONV_PATH", True),
        ("GLIBC_TUNABLES", True),
        ("MALLOC_CHECK_", True),
        ("OPENSSL_CONF", True),
        # shells
        ("BASH_ENV", True),
        ("ENV", True),
        ("BASH_FUNC_ls%%", True),
        ("SHELLOPTS", True),
        ("PS4", True),
        ("PROMPT_COMMAND", True),
        ("IFS", True),
        ("PATH", True),
        ("path", True),  # compared upper-cased
        ("HOME", True),
        # interpreters
        ("PYTHONSTARTUP", True),
        ("PYTHONPATH", True),
        ("PYTHONWARNINGS", True),
        ("PERL5OPT", True),
        ("RUBYOPT", True),
        ("NODE_OPTIONS", True),
        ("JAVA_TOOL_OPTIONS", True),
        ("_JAVA_OPTIONS", True),
        ("DOTNET_STARTUP_HOOKS", True),
        # git and programs run by name
        ("GIT_SSH_COMMAND", True),
        ("GIT_CONFIG_COUNT", True),
        ("GIT_CONFIG_KEY_0", True),
        ("EDITOR", True),
        ("LESSOPEN", True),
        # keysafe itself
        ("KEYSAFE_TOKEN", True),
        ("KEYSAFE_ADDR", True),
        ("KEYSAFE_CACERT", True),
        # ordinary data
        ("DB_PASSWORD", False),
        ("NODE_ENV", False),
        ("GIT_TOKEN", False),
        ("GITHUB_TOKEN", False),
        ("HTTPS_PROXY", False),
        ("STRIPE_KEY", False),
        ("MY_LD_PRELOAD", False),
        ("ENVIRONMENT", False),
        ("API_PATH", False),
    ],
)
def test_refused_names(name: str, refused: bool) -> None:
    assert (refusal_reason(name) is not None) is refused


def test_refusal_names_the_secret_the_variable_and_the_flag() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_names({"DB": "app/DB", "BASH_ENV": "app/BASH_ENV"}, allowed=())
    detail = caught.value.detail
    assert "secret app/BASH_ENV would set BASH_ENV" in detail
    assert "a shell reads it at start-up" in detail
    assert detail.endswith("pass --allow-env BASH_ENV if that is intended")
    assert "\n" not in detail


def test_allowed_names_pass_and_only_them() -> None:
    check_names({"BASH_ENV": "app/BASH_ENV"}, allowed=["BASH_ENV"])
    with pytest.raises(InvalidInput, match="LD_PRELOAD"):
        check_names({"BASH_ENV": "a/BASH_ENV", "LD_PRELOAD": "a/LD_PRELOAD"}, ["BASH_ENV"])


def test_build_env_checks_the_final_names() -> None:
    folders = [("ld", [("ld/PRELOAD", "x")])]
    assert build_env(folders, prefixed=False, allowed=()) == {"PRELOAD": "x"}
    with pytest.raises(InvalidInput, match="secret ld/PRELOAD would set LD_PRELOAD"):
        build_env(folders, prefixed=True, allowed=())


def test_inherited_env_drops_keysafe_credentials() -> None:
    caller = {
        "PATH": "/usr/bin",
        "KEYSAFE_TOKEN": "ks_secret",
        "KEYSAFE_UNSEAL_KEY": "ksu1_secret",
        "KEYSAFE_ADDR": "https://vault:8200",
        "LD_LIBRARY_PATH": "/opt/lib",  # the caller's own settings stay as they are
    }
    assert inherited_env(caller) == {
        "PATH": "/usr/bin",
        "KEYSAFE_ADDR": "https://vault:8200",
        "LD_LIBRARY_PATH": "/opt/lib",
    }
    passed = {"KEYSAFE_TOKEN": "ks_used", "KEYSAFE_ADDR": "https://used:8200"}
    env = inherited_env(caller, passed)
    assert (env["KEYSAFE_TOKEN"], env["KEYSAFE_ADDR"]) == ("ks_used", "https://used:8200")
    assert "KEYSAFE_UNSEAL_KEY" not in env
