"""The pieces behind a fast start-up: pydantic-free coercion and the pruned Typer app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.models import OptionInfo

from keysafe.cli import coercion
from keysafe.cli.app import app
from keysafe.cli.lazy import command_word, only_command


def info(**kwargs: Any) -> OptionInfo:
    return OptionInfo(**kwargs)


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (str, "payments/dev", "payments/dev"),
        (int, "42", 42),
        (float, "1.5", 1.5),
        (bool, True, True),
        (Path, "a/b.txt", Path("a/b.txt")),
        (list[str], ("a", "b"), ["a", "b"]),
        (list[int], ["1", "2"], [1, 2]),
    ],
)
def test_plain_values_convert(annotation: Any, value: Any, expected: Any) -> None:
    assert coercion.is_plain(annotation, info())
    assert coercion.convert(annotation, info(), value) == expected


@pytest.mark.parametrize(
    ("annotation", "opts", "value", "message"),
    [
        (int, {}, "x", "'x' is not a valid integer."),
        (int, {"min": 1, "max": 16}, "0", "0 is not in the range 1<=x<=16."),
        (int, {"min": 1}, "-3", "-3 is not in the range x>=1."),
        (float, {}, "fast", "'fast' is not a valid number."),
    ],
)
def test_bad_numbers_are_one_line_reasons(
    annotation: Any, opts: dict[str, Any], value: str, message: str
) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.") + "$"):
        coercion.convert(annotation, info(**opts), value)


def test_shapes_typer_must_handle_are_not_plain() -> None:
    from enum import StrEnum

    class Colour(StrEnum):
        RED = "red"

    assert not coercion.is_plain(Colour, info())
    assert not coercion.is_plain(int, info(parser=int))
    assert not coercion.is_plain(int, info(clamp=True, min=1))
    assert not coercion.is_plain(str, info(exists=True))
    assert not coercion.is_plain(list[list[str]], info())


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["secret", "list"], "secret"),
        (["--addr", "https://x", "secret", "get", "a"], "secret"),
        (["--addr=https://x", "--cacert", "ca.pem", "run", "--", "x"], "run"),
        (["--help"], None),
        (["--version", "secret"], None),
        ([], None),
    ],
)
def test_command_word(args: list[str], word: str | None) -> None:
    assert command_word(args) == word


def test_only_the_named_group_is_built() -> None:
    pruned = only_command(app, ["secret", "list"])
    assert [g.name for g in pruned.registered_groups] == ["secret"]
    assert pruned.registered_commands == []
    assert len(app.registered_groups) > 1  # the app itself is untouched
    run = only_command(app, ["run", "--path", "a", "--", "true"])
    assert [c.name for c in run.registered_commands] == ["run"]
    assert only_command(app, ["no-such-command"]) is app  # click lists and suggests
