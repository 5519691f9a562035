"""Scoped tokens through the CLI: read-only prefix, denied writes, revocation."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault


def test_read_token_reads_but_cannot_write_and_revocation_is_exit_6(vault: Vault) -> None:
    assert vault.run("secret", "set", "e2e/tok/dev/KEY", stdin="v1").returncode == 0
    created = vault.run(
        "token", "create", "--prefix", "e2e/tok/dev/", "--mode", "read", "--ttl", "1h", "--json"
    )
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    as_token = {"KEYSAFE_TOKEN": issued["token"]}

    read = vault.run("secret", "get", "e2e/tok/dev/KEY", env=as_token)
    assert (read.returncode, read.stdout) == (0, "v1\n")
    write = vault.run("secret", "set", "e2e/tok/dev/KEY", stdin="v2", env=as_token)
    assert write.returncode == 1, write.stderr
    outside = vault.run("secret", "get", "e2e/basic/DB_PASSWORD", env=as_token)
    assert outside.returncode == 1

    listed = json.loads(vault.run("token", "list", "--json").stdout)
    assert issued["id"] in {t["id"] for t in listed}
    assert issued["token"] not in json.dumps(listed)

    assert vault.run("token", "revoke", issued["id"]).returncode == 0
    # Other server workers may cache a token lookup for token_cache_seconds (1 s).
    deadline = time.monotonic() + 5
    while True:
        after = vault.run("secret", "get", "e2e/tok/dev/KEY", env=as_token)
        if after.returncode == 6 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert after.returncode == 6, after.stderr


def test_token_create_prints_only_the_token_on_stdout(vault: Vault) -> None:
    created = vault.run("token", "create", "--prefix", "e2e/tok/", "--ttl", "5m")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("ks_")
    assert token not in created.stderr
    assert "shown only this once" in created.stderr


def test_bad_token_is_exit_6(vault: Vault) -> None:
    bogus = {"KEYSAFE_TOKEN": "ks_tok_" + "A" * 38}
    assert vault.run("secret", "list", env=bogus).returncode == 6
