"""Build only the part of the Typer app that one command line needs.

Turning the whole app into click commands inspects every signature of every command
(about 100 of them); ``keysafe secret list`` needs one group. Help, version and
unknown names still see the whole app, so their output is unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import typer

# The root options that take a value (see keysafe.cli.app._global_options).
_ROOT_VALUE_OPTIONS = frozenset({"--config", "--addr", "--cacert"})


def command_word(args: Sequence[str]) -> str | None:
    """The first argument that names a command, skipping root options; None when the
    line asks for help or the version before any command, or names none."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in {"-h", "--help", "--version"} or arg == "--":
            return None
        if arg in _ROOT_VALUE_OPTIONS:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1  # --addr=X, or an unknown option click will report
            continue
        return arg
    return None


def only_command(app: typer.Typer, args: Sequence[str]) -> typer.Typer:
    """``app`` holding only the group or command ``args`` names (``app`` itself when
    there is none, or it names nothing that exists: click then lists or suggests)."""
    word = command_word(args)
    if word is None:
        return app
    groups = [g for g in app.registered_groups if g.name == word]
    commands = [c for c in app.registered_commands if _name(c) == word]
    if not groups and not commands:
        return app
    pruned = copy.copy(app)
    pruned.registered_groups = groups
    pruned.registered_commands = commands
    return pruned


def _name(info: typer.models.CommandInfo) -> str | None:
    if info.name:
        return info.name
    callback = info.callback
    # typer's own rule for a command named after its function.
    return callback.__name__.lower().replace("_", "-") if callback is not None else None
