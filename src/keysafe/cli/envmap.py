"""Folders of secrets as environment variables, for ``run`` and ``export``.

Each secret directly under a folder becomes one variable named after its last path
segment. Names are checked, and two secrets that would set the same variable are an
error: silently letting one win would hand a program the wrong credential. Names that
change how programs start (``BASH_ENV``, ``LD_PRELOAD``...) are refused unless allowed by
name (see :mod:`keysafe.cli.env_safety`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from keysafe.cli.env_safety import check_names
from keysafe.client._paths import check_folder
from keysafe.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from keysafe.client import Client

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_env_name(name: str) -> bool:
    return _ENV_NAME.fullmatch(name) is not None


def folder_prefix(folder: str) -> str:
    """``payments/dev`` -> ``PAYMENTS_DEV_``: the name prefix ``--prefix`` adds."""
    return re.sub(r"[^A-Za-z0-9_]", "_", folder).upper() + "_"


def env_name(path: str, folder: str, *, prefixed: bool) -> str:
    """The variable for the secret at ``path`` in ``folder``; raises InvalidInput."""
    name = path.rsplit("/", 1)[-1]
    if prefixed:
        name = folder_prefix(folder) + name
    if not is_env_name(name):
        raise InvalidInput(
            f"secret {path} cannot be an environment variable: {name!r} is not a valid "
            "name ([A-Za-z_][A-Za-z0-9_]*)"
        )
    return name


def build_env(
    folders: Sequence[tuple[str, Sequence[tuple[str, str]]]],
    *,
    prefixed: bool,
    allowed: Collection[str],
    strict: bool = True,
    warn: Callable[[str], None] | None = None,
    origins: dict[str, str] | None = None,
) -> dict[str, str]:
    """Variables from ``(folder, [(path, value), ...])`` pairs. Raises InvalidInput on a
    clash, and on a name secrets may not set unless it is in ``allowed``.

    A secret whose name cannot be a variable (``my-key.v2``) is an error when ``strict``;
    otherwise it is left out and ``warn`` is told its path, so one odd name does not stop
    a whole folder from being used. ``origins``, when given, receives each variable's
    secret path."""
    env: dict[str, str] = {}
    origin: dict[str, str] = {} if origins is None else origins
    for folder, secrets in folders:
        for path, value in secrets:
            try:
                name = env_name(path, folder, prefixed=prefixed)
            except InvalidInput:
                if strict:
                    raise
                if warn is not None:
                    warn(
                        f"keysafe: warning: skipped secret {path}: its name is not a valid "
                        "environment variable name (--strict makes this an error)"
                    )
                continue
            if name in env:
                hint = "" if prefixed else "; pass --prefix to prefix names with their folder"
                raise InvalidInput(f"{origin[name]} and {path} both set {name}{hint}")
            env[name] = value
            origin[name] = path
    check_names(origin, allowed)
    return env


def fetch_env(
    client: Client,
    folders: Sequence[str],
    *,
    prefixed: bool,
    allowed: Collection[str],
    strict: bool = True,
    warn: Callable[[str], None] | None = None,
    allow_empty: bool = True,
    raw: bool = False,
    sources: dict[str, tuple[str, int]] | None = None,
) -> dict[str, str]:
    """Read every secret directly under each folder (one request per folder), as
    :func:`build_env` checks them. Unless ``allow_empty``, a folder holding no secret
    raises NotFound: a mistyped ``--path`` must not quietly run a program without its
    secrets.

    References (``${OTHER}``, ``${a/b/C}``, see :mod:`keysafe.cli.refs`) are expanded
    with the same client unless ``raw``. ``sources``, when given, receives each
    variable's (secret path, version)."""
    if not folders:
        raise InvalidInput("at least one --path is required")
    fetched: list[tuple[str, list[tuple[str, str]]]] = []
    versions: dict[str, int] = {}
    listed: dict[str, str] = {}
    for given in folders:
        folder = check_folder(given)
        entries = client.list_secrets(folder + "/", recursive=False, values=True)
        # Direct children only, even if a server ignored recursive=false.
        pairs = [
            (e.path, e.value)
            for e in entries
            if e.value is not None and e.path.rsplit("/", 1)[0] == folder
        ]
        versions.update((e.path, e.version) for e in entries)
        listed.update(pairs)
        if not pairs and not allow_empty:
            raise NotFound(
                f"--path {folder} holds no secret (mistyped?); pass --allow-empty to "
                "accept an empty folder"
            )
        fetched.append((folder, sorted(pairs)))
    if not raw:
        from keysafe.cli.refs import expand, has_refs

        def read(path: str) -> str:
            return listed[path] if path in listed else client.get_secret(path).value

        fetched = [
            (folder, [(p, expand(p, v, read) if has_refs(v) else v) for p, v in pairs])
            for folder, pairs in fetched
        ]
    origins: dict[str, str] = {}
    env = build_env(
        fetched, prefixed=prefixed, allowed=allowed, strict=strict, warn=warn, origins=origins
    )
    if sources is not None:
        sources.update((name, (path, versions[path])) for name, path in origins.items())
    return env
