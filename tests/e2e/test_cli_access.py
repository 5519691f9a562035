"""Policies, services and API keys through the CLI against ``keysafe up``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from keysafe.errors import Unauthenticated

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


def test_policy_bound_token_and_a_team_admin_key(vault: Vault, tmp_path: Path) -> None:
    policy = tmp_path / "team.toml"
    policy.write_text(
        '[[rule]]\npath = "e2e/team/*"\ncapabilities = ["read"]\n\n'
        '[[rule]]\npath = "sys/key/team-*"\ncapabilities = ["manage-keys"]\n'
    )
    assert vault.run("policy", "write", "team", str(policy)).returncode == 0
    assert vault.run("secret", "set", "e2e/team/DB", stdin="team-pw").returncode == 0
    made = vault.run("token", "create", "--policy", "team", "--ttl", "10m", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    assert token["policies"] == ["team"]
    as_token = {"KEYSAFE_TOKEN": token["token"]}
    read = vault.run("secret", "get", "e2e/team/DB", env=as_token)
    assert (read.returncode, read.stdout) == (0, "team-pw\n")
    # Only what the policy grants: no write; keys of its own team's services only.
    assert vault.run("secret", "set", "e2e/team/DB", stdin="x", env=as_token).returncode == 1
    assert vault.run("service", "create", "team-api", "--policy", "team").returncode == 0
    assert vault.run("service", "create", "other-api", "--policy", "team").returncode == 0
    ok = vault.run("key", "create", "--service", "team-api", "--json", env=as_token)
    assert ok.returncode == 0, ok.stderr
    refused = vault.run("key", "create", "--service", "other-api", env=as_token)
    assert refused.returncode == 1
    assert "manage-keys" in refused.stderr
    # A token with more than its creator holds, or a mode token from a non-root: refused.
    assert vault.run("token", "create", "--prefix", "", env=as_token).returncode == 1
    listed = json.loads(vault.run("token", "list", "--json").stdout)
    assert [t["policies"] for t in listed if t["id"] == token["id"]] == [["team"]]
    assert vault.run("token", "create", "--policy", "team", "--prefix", "x/").returncode == 2


def test_sdk_trades_a_key_for_a_short_lived_token(vault: Vault, tmp_path: Path) -> None:
    from keysafe import Client

    policy = tmp_path / "jwt.toml"
    policy.write_text('[[rule]]\npath = "e2e/jwt/*"\ncapabilities = ["read"]\n')
    assert vault.run("policy", "write", "jwt-read", str(policy)).returncode == 0
    assert vault.run("service", "create", "jwt-svc", "--policy", "jwt-read").returncode == 0
    assert vault.run("secret", "set", "e2e/jwt/A", stdin="jwt-value").returncode == 0
    key = json.loads(vault.run("key", "create", "--service", "jwt-svc", "--json").stdout)["key"]
    ca = vault.home / "tls" / "ca.pem"
    with Client(vault.addr, token="", cacert=ca) as anonymous:
        issued = anonymous.exchange_token(key, expires_in=120)
    assert issued["token_type"].lower() == "bearer"
    assert issued["expires_in"] <= 120
    with Client(vault.addr, token=issued["access_token"], cacert=ca) as client:
        assert client.get("e2e/jwt/A") == "jwt-value"
    with (
        Client(vault.addr, token="", cacert=ca) as anonymous,
        pytest.raises(Unauthenticated, match="refused"),
    ):
        anonymous.exchange_token(key[:-1] + ("A" if key[-1] != "A" else "B"))


def test_key_suspend_and_resume(vault: Vault, tmp_path: Path) -> None:
    import ssl

    import httpx

    policy = tmp_path / "sus.toml"
    policy.write_text('[[rule]]\npath = "e2e/sus/*"\ncapabilities = ["read"]\n')
    assert vault.run("policy", "write", "sus-read", str(policy)).returncode == 0
    assert vault.run("service", "create", "sus-svc", "--policy", "sus-read").returncode == 0
    assert vault.run("secret", "set", "e2e/sus/A", stdin="sus-value").returncode == 0
    key = json.loads(vault.run("key", "create", "--service", "sus-svc", "--json").stdout)
    gone = json.loads(vault.run("key", "create", "--service", "sus-svc", "--json").stdout)
    assert vault.run("key", "revoke", gone["id"]).returncode == 0
    as_key = {"KEYSAFE_TOKEN": key["key"]}
    assert vault.run("secret", "get", "e2e/sus/A", env=as_key).returncode == 0

    suspended = vault.run("key", "suspend", key["id"], "--reason", "odd traffic")
    assert suspended.returncode == 0, suspended.stderr
    assert f"keysafe key resume {key['id']}" in suspended.stderr + suspended.stdout
    # `keysafe up` runs two workers, each caching a key for a second: like a revocation,
    # the suspension reaches the other one within that second.
    _eventually(lambda: vault.run("secret", "get", "e2e/sus/A", env=as_key).returncode == 6)
    # Over real HTTP the suspended key gets exactly the revoked key's answer.
    ca = ssl.create_default_context(cafile=str(vault.home / "tls" / "ca.pem"))
    with httpx.Client(base_url=vault.addr, verify=ca) as http:

        def answers() -> list[httpx.Response]:
            return [
                http.get("/api/v1/secrets/e2e/sus/A", headers={"Authorization": f"Bearer {k}"})
                for k in (key["key"], gone["key"])
            ]

        _eventually(lambda: [a.status_code for a in answers()] == [401, 401])
        refusals = [answers() for _ in range(4)]  # both workers, most likely
    assert all([a.status_code for a in pair] == [401, 401] for pair in refusals)
    bodies = [{k: v for k, v in a.json().items() if k != "instance"} for a in refusals[0]]
    assert bodies[0] == bodies[1]
    listed = vault.run("key", "list", "--service", "sus-svc")
    assert listed.returncode == 0
    # Piped: plain columns, one line per key, whatever the width.
    rows = [re.split(r" {2,}", line) for line in listed.stdout.splitlines()[1:]]
    states = {row[0]: row[4] for row in rows}
    assert states == {key["id"]: "suspended", gone["id"]: "revoked"}, listed.stdout
    doc = json.loads(vault.run("key", "show", key["id"], "--json").stdout)
    assert (doc["suspended"], doc["suspended_reason"], doc["revoked"]) == (
        True,
        "odd traffic",
        False,
    )

    # Conflicts exit 4: suspend twice, roll a suspended key, resume a live one.
    assert vault.run("key", "suspend", key["id"]).returncode == 4
    rolled = vault.run("key", "roll", key["id"])
    assert rolled.returncode == 4
    assert "resume it first" in rolled.stderr
    assert vault.run("key", "suspend", "key_0000000000000000").returncode == 3

    resumed = vault.run("key", "resume", key["id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["suspended"] is False
    _eventually(lambda: vault.run("secret", "get", "e2e/sus/A", env=as_key).returncode == 0)
    read = vault.run("secret", "get", "e2e/sus/A", env=as_key)
    assert (read.returncode, read.stdout) == (0, "sus-value\n")
    assert vault.run("key", "resume", key["id"]).returncode == 4
    # A revoked key stays revoked.
    assert vault.run("key", "resume", gone["id"]).returncode == 4
    assert (
        vault.run("secret", "get", "e2e/sus/A", env={"KEYSAFE_TOKEN": gone["key"]}).returncode == 6
    )
    for result in (suspended, resumed, listed):
        assert key["key"] not in result.stdout + result.stderr


def _eventually(check: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the key cache's lifetime"
        time.sleep(0.3)
