"""The commands scripts run most import nothing heavy (start-up time, issue 15 item 8).

Not a timed test (bench/cli_startup_bench.py measures): each command runs as a real
process against ``keysafe up`` under ``python -X importtime``, and the modules it loaded
are checked. pydantic (typer's coercion), httpx (the CLI talks http.client), rich
(only on a terminal), fastapi, sqlalchemy and uvicorn must stay out.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

HEAVY = ("pydantic", "pydantic_core", "httpx", "rich", "fastapi", "sqlalchemy", "uvicorn")
FOLDER = "e2e/startup"

COMMANDS: list[tuple[tuple[str, ...], str]] = [
    (("--help",), ""),
    (("secret", "get", f"{FOLDER}/DB_PASSWORD"), ""),
    (("secret", "set", f"{FOLDER}/WRITTEN"), "new-value\n"),
    (("secret", "list", "e2e/"), ""),
    (("run", "--path", FOLDER, "--", "true"), ""),
    (("export", "--path", FOLDER, "--format", "json"), ""),
]


def imported(vault: Vault, args: tuple[str, ...], stdin: str) -> set[str]:
    """The top-level packages ``keysafe ARGS`` imported; fails when the command fails."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keysafe.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=vault.env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "keysafe" in names  # the importtime output really was read
    return names


@pytest.fixture(scope="module")
def seeded(vault: Vault) -> Vault:
    for name in ("DB_PASSWORD", "API_KEY"):
        done = vault.run("secret", "set", f"{FOLDER}/{name}", stdin=f"value-of-{name}")
        assert done.returncode == 0, done.stderr
    return vault


@pytest.mark.parametrize(("args", "stdin"), COMMANDS, ids=lambda v: " ".join(v) or "-")
def test_hot_commands_import_nothing_heavy(
    seeded: Vault, args: tuple[str, ...], stdin: str
) -> None:
    heavy = sorted(set(HEAVY) & imported(seeded, args, stdin))
    assert heavy == [], f"keysafe {' '.join(args)} imported {heavy}"


def test_the_slow_path_still_works_for_other_commands(seeded: Vault) -> None:
    # A command outside the hot set still runs (its coercion falls back to typer's own).
    done = seeded.run("audit", "events", "--limit", "0")
    assert done.returncode == 2
    assert "0 is not in the range 1<=x<=10000" in done.stderr
    assert "Traceback" not in done.stderr
