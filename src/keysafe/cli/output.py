"""Where output goes: data on stdout (stable when meant for programs), messages on stderr.

rich is imported only when a table or a progress bar is actually drawn.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def message(text: str) -> None:
    """A human message on stderr (never data, never a secret)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def error_line(detail: str) -> str:
    """The one line every failure prints: ``keysafe: <detail>`` with no line breaks."""
    flat = " ".join(str(detail).split())
    return f"keysafe: {flat}"


def data(text: str, *, newline: bool = True) -> None:
    sys.stdout.write(text + ("\n" if newline else ""))
    sys.stdout.flush()


def print_json(obj: Any) -> None:
    """Stable machine output: indented JSON with a trailing newline."""
    data(json.dumps(obj, indent=2, ensure_ascii=False))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on stdout; plain (no colour) when stdout is not a terminal."""
    from rich.console import Console
    from rich.table import Table

    tbl = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        tbl.add_column(col, overflow="fold")
    for row in rows:
        tbl.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(soft_wrap=False).print(tbl)
