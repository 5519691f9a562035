"""Where secret values come from: a file, stdin, or a hidden prompt; never argv.

A value on the command line would land in shell history and in ``ps`` output.
"""

from __future__ import annotations

import sys
from pathlib import Path

from keysafe.errors import InvalidInput

ARGV_REFUSAL = (
    "secret values are never taken from the command line (shell history, ps): "
    "pipe the value on stdin, use --file, or type it at the prompt"
)


def read_value(file: Path | None) -> str:
    """The value from ``file`` (exact bytes; ``-`` is stdin), else stdin, else a prompt.

    From stdin or the prompt one trailing newline is dropped, so that ``echo x |`` stores
    ``x``; use ``--file`` to store a value byte for byte. Raises InvalidInput.
    """
    if file is not None and str(file) != "-":
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from exc
        return _decode(raw)
    if file is not None or not sys.stdin.isatty():
        return _decode(_strip_newline(sys.stdin.buffer.read()))
    return _prompt()


def _prompt() -> str:
    import getpass

    first = getpass.getpass("Value (hidden): ")
    second = getpass.getpass("Repeat value: ")
    if first != second:
        raise InvalidInput("the two values differ")
    return _decode(first.encode("utf-8"))


def _strip_newline(raw: bytes) -> bytes:
    if raw.endswith(b"\r\n"):
        return raw[:-2]
    if raw.endswith(b"\n"):
        return raw[:-1]
    return raw


def _decode(raw: bytes) -> str:
    if not raw:
        raise InvalidInput("the value is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the value is not UTF-8 text") from exc
