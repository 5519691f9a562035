"""``keysafe scan --known`` and ``--report`` against a real server (``keysafe up``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault


def test_known_finds_a_formatless_stored_value_in_a_log(vault: Vault, tmp_path: Path) -> None:
    # A random-looking password no rule recognises.
    assert vault.run("secret", "set", "e2e/known/DB_PASSWORD", stdin="Tq7vXw2mLpR9").returncode == 0
    log = tmp_path / "app.log"
    log.write_text(
        "2026-11-23 INFO connecting to db as app\n"
        "2026-11-23 DEBUG retry 3 with Tq7vXw2mLpR9 after timeout\n"
        "2026-11-23 INFO ready\n"
    )
    plain = vault.run("scan", str(log), "--format", "json")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    found = vault.run(
        "scan", str(log), "--known", "--known-prefix", "e2e/known/", "--format", "json"
    )
    assert found.returncode == 1, found.stderr
    findings = json.loads(found.stdout)["findings"]
    assert [(f["rule"], f["line"]) for f in findings] == [("keysafe-known-secret", 2)]
    assert "e2e/known/DB_PASSWORD" in findings[0]["description"]
    assert "Tq7vXw2mLpR9" not in found.stdout  # redacted by default
    sarif = vault.run("scan", str(log), "--known", "--format", "sarif")
    assert sarif.returncode == 1
    rules = json.loads(sarif.stdout)["runs"][0]["tool"]["driver"]["rules"]
    assert "keysafe-known-secret" in {r["id"] for r in rules}


def test_known_without_a_server_is_a_clear_error(vault: Vault, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    result = vault.run(
        "scan", str(tmp_path), "--known", env={"KEYSAFE_ADDR": "https://127.0.0.1:1"}
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_report_revokes_a_leaked_token(vault: Vault, tmp_path: Path) -> None:
    created = vault.run("token", "create", "--prefix", "e2e/leak/", "--ttl", "1h", "--json")
    token = json.loads(created.stdout)["token"]
    (tmp_path / "settings.py").write_text(f'KEYSAFE_TOKEN = "{token}"\n')
    result = vault.run("scan", str(tmp_path), "--report")
    assert result.returncode == 1, result.stderr
    assert "revoked" in result.stderr
    assert token not in result.stderr + result.stdout
    deadline = time.monotonic() + 5
    while True:
        after = vault.run("secret", "list", "e2e/leak/", env={"KEYSAFE_TOKEN": token})
        if after.returncode == 6 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert after.returncode == 6
    again = vault.run("scan", str(tmp_path), "--report")
    assert "already revoked" in again.stderr
