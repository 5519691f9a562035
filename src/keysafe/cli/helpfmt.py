"""Usage lines for people: ``--version N``, not ``--version <list[int]>``.

Typer names an option's value after its Python type; this gives every parameter that
has no metavar of its own a plain upper-case one, once per invocation (a walk over the
command tree costs well under a millisecond).
"""

from __future__ import annotations

from typing import Any

# Typer's type labels -> what a person should type.
_PLAIN = {"int": "N", "float": "NUMBER", "str": "TEXT", "path": "PATH", "bool": "BOOL"}


# Descriptions for options that several commands share and that were left without one;
# a command's own help= always wins.
_OPTION_HELP = {
    "--description": "Free text shown in listings.",
    "--owner": "Team or person responsible for the secret.",
    "--max-versions": "Versions kept; older ones are removed [server default].",
    "--port": "TCP port to listen on.",
    "--workers": "Worker processes.",
    "--shares": "Unseal shares to create.",
    "--threshold": "Shares needed to unseal.",
    "--batch": "Secrets re-encrypted per transaction.",
    "--limit": "At most this many rows.",
    "--service": "Only the keys of this service.",
    "--length": "Length of a generated value (random rotator).",
    "--alphabet": "Characters of a generated value (random rotator).",
    "--role": "Database role whose password is rotated (postgres rotator).",
    "--version": "The version to act on (the latest when not given).",
}
_COMMAND_HELP = {
    "list": "List them (never secret values).",
    "show": "Show one in detail.",
    "enable": "Allow again what disable stopped.",
}


def _fill_help(command: Any, group: str) -> None:
    """Describe what was left undescribed: arguments by their name, shared options from
    the table above, ``list``/``show`` commands generically."""
    if not getattr(command, "help", None) and not getattr(command, "short_help", None):
        name = getattr(command, "name", "")
        generic = _COMMAND_HELP.get(name) or f"{name.capitalize()} one."
        command.help = generic
    for param in getattr(command, "params", ()):
        if getattr(param, "help", None) or getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            if param.name.endswith("_id"):
                param.help = f"The {param.name[:-3].replace('_', ' ')} id."
            elif param.name == "name":
                param.help = f"Name of the {group}." if group else "The name."
        else:
            for opt in param.opts:
                if opt in _OPTION_HELP:
                    param.help = _OPTION_HELP[opt]
                    break


def plain_metavars(command: Any, group: str = "") -> None:
    """Set a plain metavar on each option and argument of ``command`` and its subcommands,
    and describe those left without a description."""
    _fill_help(command, group)
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
    for name, sub in getattr(command, "commands", {}).items():
        # `user delete NAME`: the group names what NAME is.
        plain_metavars(sub, name if getattr(sub, "commands", None) else group)


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
