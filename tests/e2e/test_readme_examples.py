"""The README's main shell blocks, run line by line against a real ``keysafe up``.

Placeholders are filled (a project folder, an editor, a tiny app); lines that only list
alternatives (``delete | undelete | destroy ...``) or need an id printed earlier are
skipped by the table below, so that a README edit that breaks a command fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.e2e.conftest import Vault

README = Path(__file__).resolve().parents[2] / "README.md"
# Lines shown as a menu of choices, or needing an id the block does not print.
SKIP = ("| undelete |", "TOKEN_ID", "--source file", "--report", "--known")
# Exit statuses the README documents for a line (everything else must exit 0).
EXPECTED = {"keysafe env diff dev prod": 1}


def shell_block(heading: str) -> list[str]:
    """The command lines of the first ```sh block after ``heading``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading + "\n")
    body = re.search(r"```sh\n(.*?)```", text[start:], re.DOTALL)
    assert body is not None, heading
    lines = []
    for raw in body.group(1).splitlines():
        line = re.sub(r"\s{2,}#.*$", "", raw).strip()  # drop the aligned comments
        if line and not line.startswith("#") and not any(s in line for s in SKIP):
            lines.append(line)
    return lines


def run_lines(vault: Vault, cwd: Path, lines: list[str]) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **vault.env,
        "PATH": f"{bin_dir}:{vault.env.get('PATH', '/usr/bin:/bin')}",
        "EDITOR": "true",  # `secret edit` leaves the value unchanged
    }
    for line in lines:
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        want = EXPECTED.get(line, 0)
        assert done.returncode == want, f"{line!r} exited {done.returncode}: {done.stderr}"
        assert "Traceback" not in done.stderr


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "key.txt").write_text("readme-api-key")
    (tmp_path / "app.py").write_text("import os\nassert os.environ['DB_PASSWORD']\n")
    # `keysafe scan --git .` reads a repository's history: one commit of the app.
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "app.py"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "app"], cwd=tmp_path, check=True)
    return tmp_path


def test_main_tasks_run_as_written(vault: Vault, workdir: Path) -> None:
    lines = shell_block("## Main tasks")
    assert any(line.startswith("keysafe run --path payments/dev") for line in lines)
    run_lines(vault, workdir, lines)


def test_project_workflow_runs_as_written(vault: Vault, workdir: Path) -> None:
    project = workdir / "src" / "payments"
    project.mkdir(parents=True)
    (project / ".git").mkdir()
    (project / ".env").write_text("DB_PASSWORD=readme-pw\nDB_HOST=db.internal\n")
    (project / "app.py").write_text("import os\nassert os.environ['DB_PASSWORD']\n")
    lines = shell_block("### Projects, environments, import, references")
    # `cd ~/src/payments && ...`: the same, in this test's folder.
    lines = [re.sub(r"^cd ~/src/payments && ", "", line) for line in lines]
    run_lines(vault, project, [line for line in lines if "staging" not in line])
    # The staging environment exists once something is written there.
    run_lines(vault, project, ["printf x | keysafe secret set DB_PASSWORD --env staging"])
    run_lines(vault, project, [line for line in lines if "staging" in line])
