"""Policies, services and API keys through the CLI against ``keysafe up``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

POLICY = """\
[[rule]]
path = "e2e/acc/prod/*"
capabilities = ["read", "list"]

[[rule]]
path = "e2e/acc/prod/ROOT_*"
deny = true
"""


def test_service_key_reads_only_what_its_policy_grants(vault: Vault, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    assert vault.run("policy", "write", "acc-read", str(policy)).returncode == 0
    assert vault.run("service", "create", "acc-worker", "--policy", "acc-read").returncode == 0
    for path, value in (("e2e/acc/prod/API", "api-value"), ("e2e/acc/prod/ROOT_PW", "root")):
        assert vault.run("secret", "set", path, stdin=value).returncode == 0
    created = vault.run(
        "key",
        "create",
        "--service",
        "acc-worker",
        "--expires",
        "30d",
        "--cidr",
        "127.0.0.0/8",
        "--rate",
        "600/min",
        "--description",
        "e2e",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    as_key = {"KEYSAFE_TOKEN": issued["key"]}
    read = vault.run("secret", "get", "e2e/acc/prod/API", env=as_key)
    assert (read.returncode, read.stdout) == (0, "api-value\n")
    assert vault.run("secret", "get", "e2e/acc/prod/ROOT_PW", env=as_key).returncode == 1
    assert vault.run("secret", "set", "e2e/acc/prod/API", stdin="x", env=as_key).returncode == 1
    env_run = vault.run(
        "run",
        "--path",
        "e2e/acc/prod",
        "--",
        "python",
        "-c",
        "import os; print(os.environ.get('API'), os.environ.get('ROOT_PW'))",
        env=as_key,
    )
    assert env_run.stdout.strip() == "api-value None", env_run.stderr

    denied = vault.run("policy", "check", "--key", issued["id"], "--path", "e2e/acc/prod/ROOT_PW")
    assert denied.returncode == 1
    assert "DENIED" in denied.stdout
    assert "rule 2" in denied.stdout
    allowed = vault.run("policy", "check", "--key", issued["id"], "--path", "e2e/acc/prod/API")
    assert allowed.returncode == 0

    listed = json.loads(vault.run("key", "list", "--service", "acc-worker", "--json").stdout)
    assert [k["id"] for k in listed] == [issued["id"]]
    assert issued["key"] not in json.dumps(listed)

    rolled = json.loads(vault.run("key", "roll", issued["id"], "--grace", "0s", "--json").stdout)
    assert (
        vault.run(
            "secret", "get", "e2e/acc/prod/API", env={"KEYSAFE_TOKEN": rolled["key"]}
        ).returncode
        == 0
    )
    deadline = time.monotonic() + 5
    while vault.run("secret", "get", "e2e/acc/prod/API", env=as_key).returncode != 6:
        assert time.monotonic() < deadline, "the rolled-out key still works after its grace"
        time.sleep(0.3)
    assert vault.run("key", "revoke", rolled["id"]).returncode == 0


def test_bad_policy_file_names_the_line(vault: Vault, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\npath = "a/*"\ncapabilities = ["read", "teleport"]\n')
    result = vault.run("policy", "write", "bad", str(bad))
    assert result.returncode == 2
    assert "line 3" in result.stderr
    assert result.stderr.count("\n") == 1
