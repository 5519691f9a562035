"""``keysafe rotation ...``, ``keysafe rotate`` and ``secret get --label`` as processes
against a real ``keysafe up`` server."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

SCRIPT = """\
#!/bin/sh
# A rotation target: keeps the value it was given; refuses when told to.
value=$(cat)
if [ -e "{dir}/refuse" ]; then
    echo "target refused the value $value" >&2
    exit 3
fi
case "$KEYSAFE_ROTATION_STEP" in
    apply) printf '%s' "$value" > "{dir}/accepted" ;;
    verify) [ "$value" = "$(cat {dir}/accepted)" ] || exit 4 ;;
    retire) printf '%s' "$value" > "{dir}/retired" ;;
esac
echo "$KEYSAFE_ROTATION_STEP" >> "{dir}/steps"
"""


def test_random_rotation_and_labels(vault: Vault) -> None:
    path = "e2e/rot/prod/WEBHOOK_SECRET"
    assert vault.run("secret", "set", path, stdin="first-value").returncode == 0
    done = vault.run(
        "rotation", "set", path, "--every", "7d", "--rotator", "random", "--length", "48"
    )
    assert done.returncode == 0, done.stderr
    assert "every 7d" in done.stderr
    rotated = vault.run("rotate", path, "--json")
    assert rotated.returncode == 0, rotated.stderr
    run = json.loads(rotated.stdout)
    assert (run["previous_version"], run["new_version"], run["outcome"]) == (1, 2, "ok")
    current = vault.run("secret", "get", path, "-n")
    assert len(current.stdout) == 48
    previous = vault.run("secret", "get", path, "--label", "previous")
    assert previous.stdout == "first-value\n"
    pending = vault.run("secret", "get", path, "--label", "pending")
    assert pending.returncode == 3
    assert pending.stderr.startswith("keysafe: ")
    bad = vault.run("secret", "get", path, "--label", "next")
    assert bad.returncode == 2
    status = json.loads(vault.run("rotation", "status", "e2e/rot/", "--json").stdout)
    assert [(p["path"], p["last_outcome"]) for p in status] == [(path, "ok")]
    table = vault.run("rotation", "status", env={"COLUMNS": "250"})
    assert path in table.stdout
    assert "ok" in table.stdout
    shown = vault.run("rotation", "show", path, env={"COLUMNS": "250"})
    assert shown.returncode == 0
    assert "manual" in shown.stdout


def test_random_policy_for_a_new_secret_creates_its_first_value(vault: Vault) -> None:
    path = "e2e/rotfirst/prod/SESSION_KEY"
    done = vault.run("rotation", "set", path, "--every", "30d", "--rotator", "random")
    assert done.returncode == 0, done.stderr
    assert "first value" in done.stderr
    assert "version 1" in done.stderr
    value = vault.run("secret", "get", path, "-n")
    assert value.returncode == 0, value.stderr
    assert len(value.stdout) >= 32
    assert value.stdout not in done.stderr + done.stdout
    # A policy for a secret that exists leaves its value alone.
    again = vault.run("rotation", "set", path, "--every", "7d", "--rotator", "random", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["first_run"] is None
    assert vault.run("secret", "get", path, "-n").stdout == value.stdout


def test_command_rotator_and_a_refusing_target(vault: Vault, tmp_path: Path) -> None:
    path = "e2e/rot/prod/DB_PASSWORD"
    script = tmp_path / "rotate.sh"
    script.write_text(SCRIPT.format(dir=tmp_path))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert vault.run("secret", "set", path, stdin="old-password").returncode == 0
    (tmp_path / "accepted").write_text("old-password")
    done = vault.run(
        "rotation", "set", path, "--every", "30d", "--rotator", "command",
        "--command", str(script), "--grace", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert vault.run("rotate", path).returncode == 0
    new = vault.run("secret", "get", path, "-n").stdout
    assert (tmp_path / "accepted").read_text() == new
    # Grace 0: the old value is retired at once.
    assert (tmp_path / "steps").read_text().split() == ["apply", "verify", "retire"]
    assert (tmp_path / "retired").read_text() == "old-password"
    assert vault.run("rotate", path).returncode == 0
    assert (tmp_path / "retired").read_text() == new
    # The target refuses: exit 10, the message names the refusal but not the value,
    # the previous value stays current.
    before = vault.run("secret", "get", path, "-n").stdout
    (tmp_path / "refuse").write_text("")
    refused = vault.run("rotate", path)
    assert refused.returncode == 10, refused.stderr
    assert "target refused the value [redacted]" in refused.stderr
    assert vault.run("secret", "get", path, "-n").stdout == before
    assert before not in refused.stderr
    status = json.loads(vault.run("rotation", "status", "e2e/rot/prod/", "--json").stdout)
    [policy] = [p for p in status if p["path"] == path]
    assert policy["last_outcome"] in ("rolled_back", "rolling_back")
    assert policy["failures"] == 1
    # Restoring failed too (the script refuses everything): retried only after the backoff.
    assert policy["last_outcome"] == "rolling_back"
    time.sleep(3)  # longer than a scheduler poll
    status = json.loads(vault.run("rotation", "status", "e2e/rot/prod/", "--json").stdout)
    assert [p["failures"] for p in status if p["path"] == path] == [1]


def test_bad_input(vault: Vault) -> None:
    assert vault.run("rotate", "e2e/rot/NO_POLICY").returncode == 3
    bad = vault.run("rotation", "set", "e2e/rot/X", "--every", "soon")
    assert bad.returncode == 2
    assert bad.stderr.startswith("keysafe: invalid duration")
    assert (
        vault.run("rotation", "set", "e2e/rot/X", "--every", "1d", "--rotator", "nope").returncode
        == 2
    )
    assert (
        vault.run("rotation", "set", "e2e/rot/X", "--every", "1d", "-o", "novalue").returncode == 2
    )
    assert vault.run("rotation", "delete", "e2e/rot/X").returncode == 3
