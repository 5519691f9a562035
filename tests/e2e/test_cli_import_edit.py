"""``keysafe secret import`` and ``secret edit`` as processes against a real server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import Vault


def test_import_dry_run_then_write_then_nothing_to_do(vault: Vault, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("export DB_USER=app\nDB_PASSWORD='s3cr3t-imp'\n# note\nPORT=5432\n")
    dry = vault.run("secret", "import", str(env_file), "--path", "wfimp/dev", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ wfimp/dev/DB_PASSWORD (create)" in dry.stderr
    assert "would write 3 of 3" in dry.stderr
    assert vault.run("secret", "get", "wfimp/dev/DB_USER").returncode == 3  # nothing written

    done = vault.run("secret", "import", str(env_file), "--path", "wfimp/dev")
    assert done.returncode == 0, done.stderr
    assert vault.run("secret", "get", "wfimp/dev/DB_PASSWORD").stdout == "s3cr3t-imp\n"

    yaml_file = tmp_path / "values.yaml"
    yaml_file.write_text("DB_USER: app\nDB_PASSWORD: s3cr3t-two\nNEW: 'x'\n")
    again = vault.run("secret", "import", str(yaml_file), "--path", "wfimp/dev", "--json")
    assert again.returncode == 0, again.stderr
    actions = {r["path"]: r["action"] for r in json.loads(again.stdout)["secrets"]}
    assert actions == {
        "wfimp/dev/DB_USER": "unchanged",
        "wfimp/dev/DB_PASSWORD": "update",
        "wfimp/dev/NEW": "create",
    }
    for out in (dry, done, again):
        assert "s3cr3t" not in out.stdout + out.stderr  # values are never printed


def test_a_malformed_file_names_the_line_and_writes_nothing(vault: Vault, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"GOOD": "v-never-written",\n "NESTED": {"a": 1}}\n')
    done = vault.run("secret", "import", str(bad), "--path", "wfimp/bad")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"keysafe: {bad}:2: NESTED must be a string or number, not a list or map"
    )
    assert "v-never-written" not in done.stderr
    assert vault.run("secret", "list", "wfimp/bad/", "--json").stdout.strip() == "[]"


def editor(tmp_path: Path, body: str) -> str:
    """An $EDITOR that records the file's mode and name, then runs ``body`` on it."""
    script = tmp_path / "editor.sh"
    script.write_text(
        f'#!/bin/sh\nstat -c %a "$1" > {tmp_path}/mode\necho "$1" > {tmp_path}/name\n{body}\n'
    )
    script.chmod(0o700)
    return str(script)


def test_edit_writes_only_on_change_and_leaves_no_file(vault: Vault, tmp_path: Path) -> None:
    vault.run("secret", "set", "wfedit/dev/TOKEN", stdin="before")
    changed = editor(tmp_path, 'printf "after\\n" > "$1"')
    done = vault.run("secret", "edit", "wfedit/dev/TOKEN", env={"EDITOR": changed})
    assert done.returncode == 0, done.stderr
    assert "version 2 written" in done.stderr
    assert (tmp_path / "mode").read_text().strip() == "600"
    edited = Path((tmp_path / "name").read_text().strip())
    assert not edited.exists()
    assert not edited.parent.exists()
    # The editor's final newline is not part of the value.
    assert vault.run("secret", "get", "wfedit/dev/TOKEN").stdout == "after\n"

    same = vault.run("secret", "edit", "wfedit/dev/TOKEN", env={"EDITOR": editor(tmp_path, ":")})
    assert same.returncode == 0
    assert "unchanged, nothing written" in same.stderr

    failing = editor(tmp_path, 'printf "half-typed" > "$1"; exit 3')
    fail = vault.run("secret", "edit", "wfedit/dev/TOKEN", env={"EDITOR": failing})
    assert fail.returncode == 2
    assert "editor exited with status 3; nothing written" in fail.stderr
    assert not Path((tmp_path / "name").read_text().strip()).exists()
    history = json.loads(vault.run("secret", "history", "wfedit/dev/TOKEN", "--json").stdout)
    assert history["current_version"] == 2


def test_edit_of_a_new_secret_creates_it_with_cas(vault: Vault, tmp_path: Path) -> None:
    done = vault.run(
        "secret", "edit", "wfedit/dev/FRESH", env={"EDITOR": editor(tmp_path, 'echo v > "$1"')}
    )
    assert done.returncode == 0, done.stderr
    assert "version 1 written" in done.stderr
