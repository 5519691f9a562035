"""The README's "Running a cluster" section stays true: every setting it names exists,
every `keysafe ...` command and option it shows is accepted, and its backup and restore
lines run as written (the ones that need no server, against SQLite)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from server_proc import init_vault
from typer.testing import CliRunner

from keysafe.cli.app import app
from keysafe.config import Settings
from keysafe.store.backup_format import check_file

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("### Running a cluster")
    end = text.index("\n### ", start + 1)
    return text[start:end]


def _shell_lines(section: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line.split("  #")[0].strip() for b in blocks for line in b.splitlines() if line]


def test_every_setting_named_exists() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in set(re.findall(r"KEYSAFE_([A-Z_]*[A-Z])(_\*)?", _section())):
        stem, wildcard = name
        if wildcard:
            assert any(f.startswith(stem) for f in fields), stem
        else:
            assert stem in fields, f"KEYSAFE_{stem} is not a setting"


def test_every_command_and_option_shown_is_accepted() -> None:
    section = _section()
    commands = list(re.findall(r"`(keysafe [^`]+)`", section))
    commands += [line for line in _shell_lines(section) if line.startswith("keysafe ")]
    runner = CliRunner()
    for command in commands:
        words = command.split()[1:]
        path = [w for w in words if re.fullmatch(r"[a-z][a-z-]*", w)][:2]
        helped = runner.invoke(app, [*path, "--help"])
        assert helped.exit_code == 0, (command, helped.output)
        for option in re.findall(r"(--[a-z][a-z-]*)", command):
            assert option in helped.output, (command, option)


def test_the_backup_and_restore_lines_run_as_written(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    src_url = f"sqlite:///{src / 'keysafe.db'}"
    init_vault("sqlite", src, src_url)
    lines = [line for line in _shell_lines(_section()) if "--database-url" in line]
    assert any("backup" in line for line in lines)
    assert any("restore" in line for line in lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        KEYSAFE_HOME=str(tmp_path / "home"),
        KEYSAFE_DATABASE_URL=src_url,
        NEW_DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}",
    )
    done = subprocess.run(
        ["bash", "-euc", "\n".join(lines)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with (tmp_path / "vault.backup").open("rb") as fh:
        assert check_file(fh).tables["sys_state"] > 0
    assert "Restored" in done.stderr
