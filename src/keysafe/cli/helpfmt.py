"""Usage lines for people: ``--version N``, not ``--version <list[int]>``.

Typer names an option's value after its Python type; this gives every parameter that
has no metavar of its own a plain upper-case one, once per invocation (a walk over the
command tree costs well under a millisecond).
"""

from __future__ import annotations

from typing import Any

# Typer's type labels -> what a person should type.
_PLAIN = {"int": "N", "float": "NUMBER", "str": "TEXT", "path": "PATH", "bool": "BOOL"}


def plain_metavars(command: Any) -> None:
    """Set a plain metavar on each option and argument of ``command`` and its subcommands."""
    for param in getattr(command, "params", ()):
        if getattr(param, "metavar", None) is not None or getattr(param, "is_flag", False):
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
            # The upper-case name says it; typer would add "<str>" in the help list.
            param.display_type_rich = _no_type
            if param.hidden:  # e.g. `secret set`'s refused value: not part of the usage
                param._usage_display_name = _nothing
            continue
        label = _label(param)
        if label is not None:
            param.metavar = label
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)


def _no_type(ctx: Any = None) -> None:
    return None


def _nothing() -> str:
    return ""


def _label(param: Any) -> str | None:
    try:
        shown = str(param.display_type(None)).strip("<>")
    except Exception:  # keep typer's own label when it cannot say
        return None
    if shown.startswith("list[") and shown.endswith("]"):
        shown = shown[5:-1]
    if shown.endswith(" range"):  # "<int range>": the bounds are shown beside the help
        shown = shown.removesuffix(" range")
    if shown in _PLAIN:
        return _PLAIN[shown]
    if "|" in shown:  # a choice: keep the choices, without the brackets' type syntax
        return "[" + shown + "]"
    return shown.upper() if shown.isidentifier() else None
