"""Environment maps rendered for other programs, each with its own quoting rules.

- ``dotenv``: ``KEY='value'`` with ``\\`` and ``'`` backslash-escaped and newlines kept
  inside the quotes: single quotes keep ``$`` literal in Docker Compose and dotenv-expand,
  and python-dotenv reads every value back exactly (with ``interpolate=False``).
- ``shell``: ``export KEY='value'`` for POSIX shells; inside single quotes nothing is
  special, a ``'`` is written as ``'\\''``. Safe for ``eval "$(...)"`` and ``source``.
- ``json``: one object, name to value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

FORMATS = ("dotenv", "json", "shell")


def dotenv_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def to_dotenv(env: Mapping[str, str]) -> str:
    return "".join(f"{name}={dotenv_quote(value)}\n" for name, value in env.items())


def to_shell(env: Mapping[str, str]) -> str:
    return "".join(f"export {name}={shell_quote(value)}\n" for name, value in env.items())


def to_json(env: Mapping[str, str]) -> str:
    return json.dumps(dict(env), indent=2, ensure_ascii=False) + "\n"


RENDERERS: dict[str, Callable[[Mapping[str, str]], str]] = {
    "dotenv": to_dotenv,
    "json": to_json,
    "shell": to_shell,
}
