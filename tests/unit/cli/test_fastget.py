"""The fast ``secret get`` path takes exactly the plain forms, and nothing else."""

from __future__ import annotations

import pytest

from keysafe.cli.fastget import GetArgs, parse


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["secret", "get", "a/b"], GetArgs(path="a/b")),
        (["secret", "get", "-n", "a/b"], GetArgs(path="a/b", newline=False)),
        (["secret", "get", "a/b", "--no-newline"], GetArgs(path="a/b", newline=False)),
        (["secret", "get", "a/b", "--json"], GetArgs(path="a/b", as_json=True)),
        (["secret", "get", "a/b", "--version", "3"], GetArgs(path="a/b", version=3)),
        (["secret", "get", "--version=3", "a/b"], GetArgs(path="a/b", version=3)),
        (["secret", "get", "-v", "2", "a/b"], GetArgs(path="a/b", version=2)),
        (
            ["--addr", "https://h:1", "--cacert=/ca.pem", "secret", "get", "a/b"],
            GetArgs(path="a/b", addr="https://h:1", cacert="/ca.pem"),
        ),
    ],
)
def test_plain_forms(argv: list[str], expected: GetArgs) -> None:
    assert parse(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["secret"],
        ["secret", "get"],
        ["secret", "get", "--help"],
        ["secret", "get", "a/b", "c/d"],
        ["secret", "get", "--version", "x", "a/b"],
        ["secret", "get", "--bogus", "a/b"],
        ["secret", "get", "--", "a/b"],
        ["--config", "k.toml", "secret", "get", "a/b"],
        ["secret", "list"],
        ["secret", "set", "a/b"],
    ],
)
def test_everything_else_goes_to_typer(argv: list[str]) -> None:
    assert parse(argv) is None
