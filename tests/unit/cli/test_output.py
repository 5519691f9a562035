"""Tables and values as people read them: plain columns when piped, no raw Python."""

from __future__ import annotations

import io
import sys

import pytest

from keysafe.cli.output import cell, table


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        ("", "-"),
        ((), "-"),
        ([], "-"),
        (True, "yes"),
        (False, "no"),
        (["admin", "ops"], "admin, ops"),
        ({"team": "pay", "tier": None}, "team=pay, tier=-"),
        (0, "0"),
        ("text", "text"),
    ],
)
def test_cell(value: object, shown: str) -> None:
    assert cell(value) == shown


def test_piped_table_is_plain_aligned_and_never_wrapped(capsys: pytest.CaptureFixture[str]) -> None:
    long_path = "payments/" + "a" * 150 + "/DB_PASSWORD"
    table(
        None,
        ["ID", "PATH", "REVOKED"],
        [("tok_1", long_path, False), ("tok_22", "short", None)],
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "ID      PATH" + " " * (len(long_path) - 2) + "REVOKED",
        f"tok_1   {long_path}  no",
        "tok_22  short" + " " * (len(long_path) - 3) + "-",
    ]
    assert not any(ch in "".join(lines) for ch in "│┃━─╇")


def test_piped_table_keeps_one_line_per_row(capsys: pytest.CaptureFixture[str]) -> None:
    table("payments/dev/KEY", ["FIELD", "VALUE"], [("description", "two\nlines")])
    assert capsys.readouterr().out.splitlines() == [
        "payments/dev/KEY",
        "FIELD        VALUE",
        "description  two lines",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_table_is_rich_and_honours_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR", "1")
    table(None, ["NAME", "MFA"], [("alice", True)])
    out = term.getvalue()
    assert "\x1b[" not in out
    assert "alice" in out
    assert "yes" in out
    assert "│" in out
