"""Where secret values come from: never argv; stdin and files read exactly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from keysafe.cli.values import read_value
from keysafe.errors import InvalidInput


class FakeStdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", FakeStdin(io.BytesIO(data)))


def test_stdin_drops_one_trailing_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    _stdin(monkeypatch, b"value\n\n")
    assert read_value(None) == "value\n"


def test_file_is_read_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "v"
    path.write_bytes(b"-----BEGIN-----\nabc\n")
    assert read_value(path) == "-----BEGIN-----\nabc\n"


def test_empty_and_binary_values_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, b"")
    with pytest.raises(InvalidInput, match="empty"):
        read_value(None)
    path = tmp_path / "bin"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidInput, match="UTF-8"):
        read_value(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        read_value(tmp_path / "nope")
