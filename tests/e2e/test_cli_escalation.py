"""Nobody hands out more than they hold, through the CLI as a real process: a key that
administers policies cannot widen its own policy, nor create a broader service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

DELEGATE = """\
[[rule]]
path = "sys/policy"
capabilities = ["admin"]

[[rule]]
path = "sys/service"
capabilities = ["admin"]

[[rule]]
path = "e2e/esc/*"
capabilities = ["read"]
"""

GRAB = '[[rule]]\npath = "**"\ncapabilities = ["read", "write", "admin"]\n'


def test_a_delegated_policy_admin_cannot_grant_itself_more(vault: Vault, tmp_path: Path) -> None:
    delegate, grab = tmp_path / "delegate.toml", tmp_path / "grab.toml"
    delegate.write_text(DELEGATE)
    grab.write_text(GRAB)
    assert vault.run("policy", "write", "esc-delegate", str(delegate)).returncode == 0
    assert vault.run("policy", "write", "esc-grab", str(grab)).returncode == 0
    made = vault.run("service", "create", "esc-admin", "--policy", "esc-delegate")
    assert made.returncode == 0, made.stderr
    created = vault.run("key", "create", "--service", "esc-admin", "--json")
    assert created.returncode == 0, created.stderr
    as_key = {"KEYSAFE_TOKEN": json.loads(created.stdout)["key"]}

    widened = vault.run("policy", "write", "esc-delegate", str(grab), env=as_key)
    assert widened.returncode == 1
    assert "nobody hands out more than they hold" in widened.stderr
    assert "'**'" in widened.stderr
    assert vault.run("policy", "read", "esc-delegate").stdout.strip() == DELEGATE.strip()

    broader = vault.run("service", "create", "esc-x", "--policy", "esc-grab", env=as_key)
    assert broader.returncode == 1
    assert "esc-grab" in broader.stderr
    listed = vault.run("service", "list", "--json")
    assert "esc-x" not in listed.stdout

    # What it holds it may still hand out.
    narrow = tmp_path / "narrow.toml"
    narrow.write_text('[[rule]]\npath = "e2e/esc/DB"\ncapabilities = ["read"]\n')
    ok = vault.run("policy", "write", "esc-narrow", str(narrow), env=as_key)
    assert ok.returncode == 0, ok.stderr
