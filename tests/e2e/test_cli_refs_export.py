"""References expanded under the reader's own token, and the k8s/docker/github exports."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml
from tests.e2e.conftest import Vault


@pytest.fixture(scope="module")
def seeded(vault: Vault) -> Vault:
    for path, value in (
        ("wfref/prod/DB_HOST", "db.internal"),
        ("wfref/prod/DB_URL", "postgres://app@${DB_HOST}:5432/${wfref/shared/DB_NAME}"),
        ("wfref/shared/DB_NAME", "orders"),
        ("wfref/prod/LITERAL", "cost $${not_a_ref}"),
        ("wfref/vault/ROOT_PW", "root-pw-never-shown"),
        ("wfref/leaky/STEAL", "x${wfref/vault/ROOT_PW}"),
        ("wfref/loop/A", "${B}"),
        ("wfref/loop/B", "${wfref/loop/A}"),
        ("wfref/missing/X", "${NOPE}"),
    ):
        done = vault.run("secret", "set", path, stdin=value)
        assert done.returncode == 0, done.stderr
    return vault


def test_references_are_expanded_by_get_run_and_export(seeded: Vault) -> None:
    vault = seeded
    url = "postgres://app@db.internal:5432/orders"
    # The fast path (plain `secret get`) and the full one (--json) expand alike.
    assert vault.run("secret", "get", "wfref/prod/DB_URL").stdout == url + "\n"
    as_json = json.loads(vault.run("secret", "get", "wfref/prod/DB_URL", "--json").stdout)
    assert as_json["value"] == url
    raw = vault.run("secret", "get", "wfref/prod/DB_URL", "--raw")
    assert raw.stdout.startswith("postgres://app@${DB_HOST}")
    assert vault.run("secret", "get", "wfref/prod/LITERAL").stdout == "cost ${not_a_ref}\n"

    child = vault.run("run", "-p", "wfref/prod", "--", "sh", "-c", 'printf %s "$DB_URL"')
    assert child.returncode == 0, child.stderr
    assert child.stdout == url
    exported = vault.run("export", "-p", "wfref/prod", "-f", "json")
    assert json.loads(exported.stdout)["DB_URL"] == url
    stored = vault.run("export", "-p", "wfref/prod", "-f", "json", "--raw")
    assert "${DB_HOST}" in json.loads(stored.stdout)["DB_URL"]


def test_bad_references_are_one_clear_line_naming_the_paths(seeded: Vault) -> None:
    vault = seeded
    cycle = vault.run("secret", "get", "wfref/loop/A")
    assert cycle.returncode == 2
    assert cycle.stderr == (
        "keysafe: reference cycle: wfref/loop/A -> wfref/loop/B -> wfref/loop/A\n"
    )
    missing = vault.run("run", "-p", "wfref/missing", "--", "true")
    assert missing.returncode == 3
    assert "wfref/missing/X references wfref/missing/NOPE, which does not exist" in missing.stderr


def test_a_reference_never_reads_past_the_readers_policy(seeded: Vault, tmp_path: Path) -> None:
    vault = seeded
    policy = tmp_path / "leaky.toml"
    policy.write_text('[[rule]]\npath = "wfref/leaky/*"\ncapabilities = ["read", "list"]\n')
    assert vault.run("policy", "write", "wfref-leaky", str(policy)).returncode == 0
    made = vault.run("token", "create", "--policy", "wfref-leaky", "--ttl", "10m", "--json")
    assert made.returncode == 0, made.stderr
    as_reader = {"KEYSAFE_TOKEN": json.loads(made.stdout)["token"]}
    for args in (
        ("secret", "get", "wfref/leaky/STEAL"),
        ("secret", "get", "wfref/leaky/STEAL", "--json"),
        ("export", "-p", "wfref/leaky"),
        ("run", "-p", "wfref/leaky", "--", "env"),
    ):
        done = vault.run(*args, env=as_reader)
        assert done.returncode == 1, (args, done.stderr)
        assert "wfref/leaky/STEAL references wfref/vault/ROOT_PW, which you may not read" in (
            done.stderr
        )
        assert "root-pw" not in done.stdout + done.stderr
    # --raw shows what the reader may read: the stored text, not the referenced value.
    raw = vault.run("secret", "get", "wfref/leaky/STEAL", "--raw", env=as_reader)
    assert raw.stdout == "x${wfref/vault/ROOT_PW}\n"


def test_export_k8s_docker_and_github(seeded: Vault, tmp_path: Path) -> None:
    vault = seeded
    vault.run("secret", "set", "wfref/multi/CERT", "-f", "-", stdin="line one\nline two\n")
    manifest = vault.run("export", "-p", "wfref/prod", "-f", "k8s", "--name", "app-secrets")
    assert manifest.returncode == 0, manifest.stderr
    doc = yaml.safe_load(manifest.stdout)
    assert (doc["apiVersion"], doc["kind"], doc["type"]) == ("v1", "Secret", "Opaque")
    assert doc["metadata"]["name"] == "app-secrets"
    assert doc["metadata"]["labels"]["keysafe.dev/folder"] == "wfref.prod"
    sources = json.loads(doc["metadata"]["annotations"]["keysafe.dev/sources"])
    assert re.fullmatch(r"wfref/prod/DB_URL@\d+", sources["DB_URL"])
    decoded = {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
    assert decoded["DB_URL"] == "postgres://app@db.internal:5432/orders"
    bad_name = vault.run("export", "-p", "wfref/prod", "-f", "k8s", "--name", "App_Secrets")
    assert bad_name.returncode == 2
    assert "not a Kubernetes name" in bad_name.stderr

    docker = vault.run("export", "-p", "wfref/prod", "-f", "docker")
    assert "DB_HOST=db.internal\n" in docker.stdout
    multi = vault.run("export", "-p", "wfref/multi", "-f", "docker")
    assert multi.returncode == 2
    assert "CERT holds several lines" in multi.stderr

    github_env = tmp_path / "github_env"
    github_env.write_text("EARLIER=1\n")
    gh = vault.run(
        "export", "-p", "wfref/multi", "-f", "github", env={"GITHUB_ENV": str(github_env)}
    )
    assert gh.returncode == 0, gh.stderr
    assert gh.stdout == "::add-mask::line one\n::add-mask::line two\n"
    lines = github_env.read_text().split("\n")
    assert lines[0] == "EARLIER=1"
    delimiter = lines[1].removeprefix("CERT<<")
    # `-f -` from a pipe drops one final newline, as `secret set` documents.
    assert lines[1:5] == [f"CERT<<{delimiter}", "line one", "line two", delimiter]
    nowhere = vault.run("export", "-p", "wfref/multi", "-f", "github")
    assert nowhere.returncode == 2
    assert "line one" not in nowhere.stdout  # never a value in a job log
