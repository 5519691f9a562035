"""Human output when piped: plain unwrapped columns, and no raw Python (None, False, ())."""

from __future__ import annotations

import json
import re
import subprocess
from typing import TYPE_CHECKING

from tests.e2e.conftest import KEYSAFE

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

BOX = set("│┃━─╇┏┓┗┛")
LONG = "e2e/piped/" + "deep-folder-name/" * 6 + "DB_PASSWORD_WITH_A_LONG_NAME"


def _rows(stdout: str) -> list[list[str]]:
    return [re.split(r" {2,}", line) for line in stdout.splitlines()]


def test_piped_tables_are_plain_and_never_cut(vault: Vault) -> None:
    assert len(LONG) > 100
    assert vault.run("secret", "set", LONG, stdin="v").returncode == 0
    description = "a description long enough to be wrapped at eighty columns " * 2
    made = vault.run(
        "token", "create", "--prefix", "e2e/piped/", "--ttl", "1h",
        "--description", description.strip(), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token_id = json.loads(made.stdout)["id"]

    listed = vault.run("secret", "list", "e2e/piped/", env={"COLUMNS": "80"})
    assert listed.returncode == 0, listed.stderr
    assert not BOX & set(listed.stdout)
    rows = _rows(listed.stdout)
    assert rows[0] == ["PATH", "VERSION", "STATE", "UPDATED"]
    assert [r[0] for r in rows[1:]] == [LONG]

    tokens = vault.run("token", "list", env={"COLUMNS": "80"})
    assert tokens.returncode == 0, tokens.stderr
    assert not BOX & set(tokens.stdout)
    mine = [r for r in _rows(tokens.stdout) if r[0] == token_id]
    assert len(mine) == 1
    assert mine[0][-1] == description.strip()
    assert mine[0][3] == "no"  # REVOKED, not False


def test_no_raw_python_in_human_output(vault: Vault) -> None:
    password = "correct horse battery staple 9"
    made = vault.run("user", "create", "rawpy", "--password-stdin", stdin=password)
    assert made.returncode == 0, made.stderr
    shown = vault.run("user", "show", "rawpy")
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split(": ", 1) for line in shown.stdout.splitlines())
    assert fields["mfa"] == "no"
    assert fields["locked_until"] == "-"
    assert not {"None", "False", "True", "()", "[]"} & set(fields.values()), shown.stdout

    assert vault.run("secret", "set", "e2e/piped/meta/KEY", stdin="v").returncode == 0
    meta = vault.run("secret", "metadata", "show", "e2e/piped/meta/KEY")
    assert meta.returncode == 0, meta.stderr
    values = [r[-1] for r in _rows(meta.stdout)[2:]]
    assert not {"None", "False", "True", "()", "[]", ""} & set(values), meta.stdout


def test_version_as_a_process() -> None:
    from keysafe import __version__

    done = subprocess.run(
        [*KEYSAFE, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, f"keysafe {__version__}\n"), done.stderr
