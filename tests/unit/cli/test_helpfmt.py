"""Every command and option of the CLI is described, and usage lines name no Python type."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command

from keysafe.cli import main
from keysafe.cli.app import app
from keysafe.cli.helpfmt import plain_metavars


def walk(command: Any, path: str = "keysafe") -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, f"{path} {name}")


def test_every_command_and_option_has_a_description() -> None:
    root = get_command(app)
    plain_metavars(root)
    undescribed = [
        f"{path} {param.opts or param.name}"
        for path, command in walk(root)
        for param in command.params
        if not param.hidden and not getattr(param, "help", None)
    ]
    assert undescribed == []
    assert [path for path, command in walk(root) if not command.help] == []


@pytest.mark.parametrize(
    "args", [["secret", "undelete"], ["secret", "set"], ["audit", "events"], ["export"]]
)
def test_usage_has_no_python_types(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run([*args, "--help"]) == 0
    shown = capsys.readouterr().out
    assert not re.search(r"<(str|int|float|list\[\w+\]|int range)>", shown)
    assert "[extra]" not in shown
