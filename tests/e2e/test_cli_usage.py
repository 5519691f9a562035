"""``keysafe key show`` with usage, and a key's own rate limit, through the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

POLICY = '[[rule]]\npath = "e2e/usage/*"\ncapabilities = ["read"]\n'


def test_key_show_prints_usage_and_the_rate_limit_holds(vault: Vault, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    assert vault.run("policy", "write", "usage-read", str(policy)).returncode == 0
    assert vault.run("service", "create", "usage-worker", "--policy", "usage-read").returncode == 0
    assert vault.run("secret", "set", "e2e/usage/DB", stdin="db-value").returncode == 0
    created = vault.run("key", "create", "--service", "usage-worker", "--rate", "3/hour", "--json")
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    as_key = {"KEYSAFE_TOKEN": issued["key"]}
    for _ in range(3):
        read = vault.run("secret", "get", "e2e/usage/DB", env=as_key)
        assert (read.returncode, read.stdout) == (0, "db-value\n"), read.stderr
    limited = vault.run("secret", "get", "e2e/usage/DB", env=as_key)
    assert limited.returncode == 9, (limited.returncode, limited.stderr)
    assert limited.stderr.startswith("keysafe: ")
    assert "rate limit" in limited.stderr
    assert "Traceback" not in limited.stderr
    assert "db-value" not in limited.stdout + limited.stderr

    # Two workers serve `keysafe up`; each flushes its counts every 5 s.
    deadline = time.monotonic() + 15
    while True:
        shown = vault.run("key", "show", issued["id"])
        assert shown.returncode == 0, shown.stderr
        if "4 requests" in shown.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "4 requests, 3 ok, 0 denied, 1 rate limited" in shown.stdout, shown.stdout
    assert "127.0.0.1" in shown.stdout
    assert "e2e/usage/DB" in shown.stdout
    assert "rate limit  3/hour" in shown.stdout
    assert issued["key"] not in shown.stdout

    as_json = vault.run("key", "show", issued["id"], "--json", "--days", "2")
    doc = json.loads(as_json.stdout)
    assert doc["id"] == issued["id"]
    assert doc["usage"]["days"] == 2
    assert doc["usage"]["totals"]["ok"] == 3
    assert doc["usage"]["totals"]["limited"] == 1
    assert doc["usage"]["per_day"][0]["requests"] == 4
    assert doc["usage"]["paths"] == ["e2e/usage/DB"]
    assert doc["usage"]["last_used_at"] is not None

    assert vault.run("key", "show", "key_nosuch").returncode == 3
    assert vault.run("key", "show", issued["id"], "--days", "0").returncode == 2
