"""Where output goes: data on stdout (stable when meant for programs), messages on stderr.

rich is imported only when a table or a progress bar is actually drawn.
"""

from __future__ import annotations

import json
import os
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


def confirm(yes: bool, question: str) -> None:
    """Ask ``question`` on a terminal before a destructive step; without one, ``--yes``
    is required (a script must say so). Raises InvalidInput, or typer.Exit(1) on "no"."""
    if yes:
        return
    from keysafe.errors import InvalidInput

    if not sys.stdin.isatty():
        raise InvalidInput("this cannot be undone and there is no terminal to ask: pass --yes")
    import typer

    if not typer.confirm(question, err=True):
        raise typer.Exit(1)


def data(text: str, *, newline: bool = True) -> None:
    sys.stdout.write(text + ("\n" if newline else ""))
    sys.stdout.flush()


def print_json(obj: Any) -> None:
    """Stable machine output: indented JSON with a trailing newline."""
    data(json.dumps(obj, indent=2, ensure_ascii=False))


def cell(value: Any) -> str:
    """One value as people read it: ``-`` for nothing, yes/no, lists joined by commas."""
    if value is None or value == "" or value == () or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def _plain_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    # One line per row whatever its width, so grep, cut and awk see whole ids and paths.
    lines = [[" ".join(str(c).split()) for c in columns]]
    lines += [[" ".join(cell(c).split()) or "-" for c in row] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Every table of the CLI: rich on a terminal; plain space-aligned columns otherwise.

    Piped output is never boxed or wrapped (like Vault's). NO_COLOR turns colour off.
    """
    if not sys.stdout.isatty():
        if title:
            data(title)
        data("\n".join(_plain_rows(columns, rows)))
        return
    from rich.console import Console
    from rich.table import Table

    tbl = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        tbl.add_column(col, overflow="fold")
    for row in rows:
        tbl.add_row(*(cell(c) for c in row))
    # NO_COLOR (no-color.org): no escape sequences at all, bold headers included.
    plain = bool(os.environ.get("NO_COLOR"))
    if plain:
        Console(soft_wrap=False, no_color=True, color_system=None).print(tbl)
    else:
        Console(soft_wrap=False).print(tbl)
