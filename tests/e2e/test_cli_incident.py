"""``keysafe incident ...`` and ``keysafe report`` as processes against ``keysafe up``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

POLICY = '[[rule]]\npath = "e2e/inc/*"\ncapabilities = ["read"]\n'
DB_PASSWORD = "e2e-db-pw-5c1a9e7d3b2f4a60"


def _key(vault: Vault, tmp_path: Path, service: str) -> dict[str, str]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    assert vault.run("policy", "write", "inc-read", str(policy)).returncode == 0
    made = vault.run("service", "create", service, "--policy", "inc-read")
    assert made.returncode == 0, made.stderr
    created = vault.run("key", "create", "--service", service, "--json")
    assert created.returncode == 0, created.stderr
    issued: dict[str, str] = json.loads(created.stdout)
    return issued


def _scan_findings(vault: Vault, tmp_path: Path, key: str) -> Path:
    """Real ``keysafe scan --format json --show-secrets`` output for a leaked key, plus the
    stored database password found next to it (in the scanner's finding shape)."""
    leaked = tmp_path / "repo"
    leaked.mkdir()
    (leaked / "deploy.env").write_text(f"KEYSAFE_TOKEN={key}\n")
    out = tmp_path / "findings.json"
    scanned = vault.run("scan", str(leaked), "--format", "json", "--show-secrets", "-o", str(out))
    assert scanned.returncode == 1, scanned.stderr  # 1: found
    doc = json.loads(out.read_text())
    assert any(f["secret"] == key for f in doc["findings"]), doc
    doc["findings"].append(
        {"rule": "generic-password", "file": "repo/settings.py", "line": 4, "secret": DB_PASSWORD}
    )
    out.write_text(json.dumps(doc))
    return out


def test_incident_from_scan_findings(vault: Vault, tmp_path: Path) -> None:
    key = _key(vault, tmp_path, "inc-web")
    assert vault.run("secret", "set", "e2e/inc/DB_PASSWORD", stdin=DB_PASSWORD).returncode == 0
    findings = _scan_findings(vault, tmp_path, key["key"])
    as_key = {"KEYSAFE_TOKEN": key["key"]}

    plan = vault.run("incident", "open", "--from-scan", str(findings), "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert {s["outcome"] for s in planned["plan"]} == {"planned"}
    assert vault.run("secret", "get", "e2e/inc/DB_PASSWORD", env=as_key).returncode == 0

    opened = vault.run("incident", "open", "--from-scan", str(findings), "--title", "e2e leak")
    assert opened.returncode == 0, opened.stderr
    assert "incident inc_" in opened.stderr
    assert key["key"] not in opened.stdout + opened.stderr
    assert DB_PASSWORD not in opened.stdout + opened.stderr
    # The key is revoked for real: refused by every worker once its key cache (about a
    # second, KEYSAFE_TOKEN_CACHE_SECONDS) has expired.
    deadline = time.monotonic() + 5
    dead = vault.run("secret", "get", "e2e/inc/DB_PASSWORD", env=as_key)
    while dead.returncode != 6 and time.monotonic() < deadline:
        time.sleep(0.3)
        dead = vault.run("secret", "get", "e2e/inc/DB_PASSWORD", env=as_key)
    assert dead.returncode == 6, dead.stderr

    listed = json.loads(vault.run("incident", "list", "--json").stdout)
    incident = next(i for i in listed if i["title"] == "e2e leak")
    shown = json.loads(vault.run("incident", "show", incident["id"], "--json").stdout)
    assert {(i["kind"], i["ref"]) for i in shown["items"]} == {
        ("key", key["id"]),
        ("secret", "e2e/inc/DB_PASSWORD"),
    }
    rotate = next(s for s in shown["steps"] if s["action"] == "rotate-secret")
    assert rotate["outcome"] in ("done", "manual")

    report = tmp_path / "report.md"
    written = vault.run("incident", "report", incident["id"], "--format", "md", "-o", str(report))
    assert written.returncode == 0, written.stderr
    text = report.read_text()
    for step in shown["steps"]:
        assert step["time"] in text
    as_json = vault.run("incident", "report", incident["id"], "--format", "json")
    assert json.loads(as_json.stdout)["id"] == incident["id"]

    assert vault.run("incident", "close", incident["id"]).returncode == 0
    again = vault.run("incident", "close", incident["id"])
    assert again.returncode == 4
    assert again.stderr.startswith("keysafe: ")


def test_incident_on_a_revoked_key_and_bad_input(vault: Vault, tmp_path: Path) -> None:
    key = _key(vault, tmp_path, "inc-old")
    assert vault.run("key", "revoke", key["id"]).returncode == 0
    done = vault.run("incident", "open", "--key", key["id"], "--json")
    assert done.returncode == 0, done.stderr
    contain = next(s for s in json.loads(done.stdout)["steps"] if s["phase"] == "contain")
    assert contain["outcome"] == "already"

    masked = tmp_path / "masked.json"
    masked.write_text(json.dumps({"findings": [{"rule": "r", "secret": "ks_l****************"}]}))
    refused = vault.run("incident", "open", "--from-scan", str(masked))
    assert refused.returncode == 2
    assert "--show-secrets" in refused.stderr
    assert vault.run("incident", "open").returncode == 2  # nothing named
    assert vault.run("incident", "show", "inc_missing").returncode == 3
    assert vault.run("incident", "report", "x", "--format", "pdf").returncode == 2


def test_compliance_report(vault: Vault, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = vault.run("report", "--format", "html", "-o", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html
    as_json = vault.run("report", "--format", "json", "--unused-days", "7")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["unused_days"] == 7
    assert "summary" in doc
    md = vault.run("report")
    assert md.returncode == 0
    assert md.stdout.startswith("# keysafe compliance report")
