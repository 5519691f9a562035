"""Folders of secrets as environment variables: names and clashes."""

from __future__ import annotations

import pytest

from keysafe.cli.envmap import build_env, env_name, folder_prefix, is_env_name
from keysafe.errors import InvalidInput


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("DB_PASSWORD", True),
        ("_private", True),
        ("a1", True),
        ("1abc", False),
        ("with-dash", False),
        ("with.dot", False),
        ("", False),
        ("ÜNICODE", False),
    ],
)
def test_is_env_name(name: str, valid: bool) -> None:
    assert is_env_name(name) is valid


def test_env_name_is_last_segment() -> None:
    assert env_name("payments/dev/DB_PASSWORD", "payments/dev", prefixed=False) == "DB_PASSWORD"


def test_env_name_with_prefix() -> None:
    assert (
        env_name("payments/dev-eu/KEY", "payments/dev-eu", prefixed=True) == "PAYMENTS_DEV_EU_KEY"
    )
    assert folder_prefix("a/b.c") == "A_B_C_"


def test_invalid_name_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="not a valid name"):
        env_name("payments/dev/db-password", "payments/dev", prefixed=False)


def test_clash_between_folders_is_an_error() -> None:
    folders = [
        ("payments/dev", [("payments/dev/TOKEN", "a")]),
        ("shipping/dev", [("shipping/dev/TOKEN", "b")]),
    ]
    with pytest.raises(InvalidInput, match=r"both set TOKEN.*--prefix"):
        build_env(folders, prefixed=False, allowed=())


def test_prefix_resolves_the_clash() -> None:
    folders = [
        ("payments/dev", [("payments/dev/TOKEN", "a")]),
        ("shipping/dev", [("shipping/dev/TOKEN", "b")]),
    ]
    assert build_env(folders, prefixed=True, allowed=()) == {
        "PAYMENTS_DEV_TOKEN": "a",
        "SHIPPING_DEV_TOKEN": "b",
    }


def test_values_are_kept_exactly() -> None:
    folders = [("f", [("f/A", "x\n$y'z")])]
    assert build_env(folders, prefixed=False, allowed=()) == {"A": "x\n$y'z"}


def test_invalid_name_is_skipped_with_one_warning_unless_strict() -> None:
    folders = [("f", [("f/my-key.v2", "x"), ("f/GOOD", "g")])]
    warnings: list[str] = []
    got = build_env(folders, prefixed=False, allowed=(), strict=False, warn=warnings.append)
    assert got == {"GOOD": "g"}
    assert len(warnings) == 1
    assert "f/my-key.v2" in warnings[0]
    with pytest.raises(InvalidInput, match="not a valid name"):
        build_env(folders, prefixed=False, allowed=(), strict=True, warn=warnings.append)


def test_skipping_keeps_refusing_names_that_change_how_programs_start() -> None:
    folders = [("f", [("f/bad.name", "x"), ("f/LD_PRELOAD", "/tmp/evil.so")])]
    with pytest.raises(InvalidInput, match="LD_PRELOAD"):
        build_env(folders, prefixed=False, allowed=(), strict=False, warn=lambda _: None)
