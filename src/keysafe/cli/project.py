"""A project folder's ``.keysafe.toml``: which server, path prefix and environment.

``keysafe init`` writes it at a repository's root; every command run anywhere below
finds it by walking up from the working directory. Stdlib only: ``secret get`` reads it
on its fast path.

Trust: the file comes with the repository, so anyone who can push to it chooses what it
says. Its ``addr`` is therefore never trusted with a credential on its own: it is used
only when it is the server of the local profile (whose token then goes to it), and
``KEYSAFE_ADDR``/``--addr`` always win over it. A token from ``KEYSAFE_TOKEN`` is never
sent to an address taken from the file alone (a pull request could point it anywhere).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from keysafe.errors import InvalidInput

PROJECT_FILE = ".keysafe.toml"
KNOWN_KEYS = frozenset({"addr", "path", "env"})
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# What `keysafe init` adds to .gitignore: files that may hold secret values.
GITIGNORE_ENTRIES = (".env", ".env.*", "!.env.example", "*.keysafe-export", ".keysafe.local.toml")


@dataclass(frozen=True)
class Project:
    """A parsed ``.keysafe.toml`` and the folder it was found in."""

    root: Path
    prefix: str
    env: str
    addr: str | None = None

    def folder(self, env: str | None = None) -> str:
        """``payments/dev`` (or ``payments/<env>``): the folder run and export read."""
        return f"{self.prefix}/{check_env_name(env or self.env)}"


def check_env_name(env: str) -> str:
    if not _NAME.fullmatch(env) or env in {".", ".."}:
        raise InvalidInput(f"invalid environment name {env!r}: use [A-Za-z0-9_.-]+")
    return env


def find_project(start: Path | None = None) -> Project | None:
    """The nearest ``.keysafe.toml`` at or above ``start`` (the working directory).

    ``KEYSAFE_PROJECT=off`` turns the lookup off. Raises InvalidInput when the file is
    malformed or names a key keysafe does not know (a typo must not be ignored)."""
    if os.environ.get("KEYSAFE_PROJECT", "").lower() in {"off", "0", "no"}:
        return None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return load_project(candidate)
    return None


def load_project(file: Path) -> Project:
    try:
        with file.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"{file} is not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise InvalidInput(f"{file}: unknown key {unknown[0]!r} (known: addr, path, env)")
    values: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"{file}: {key} must be a non-empty string")
        values[key] = value.strip()
    prefix = values.get("path", "").strip("/")
    if not prefix:
        raise InvalidInput(f"{file}: path (the secrets' folder prefix, e.g. payments) is missing")
    from keysafe.client._paths import check_folder

    check_folder(prefix)
    env = check_env_name(values.get("env", "dev"))
    return Project(root=file.parent, prefix=prefix, env=env, addr=values.get("addr"))


def secret_path(name: str, env: str | None = None, project: Project | None = None) -> str:
    """``name`` as a full secret path: a bare name (no ``/``) inside a project is
    ``<prefix>/<env>/<name>``; anything else is returned unchanged."""
    if "/" in name:
        if env is not None:
            raise InvalidInput("--env applies to a bare secret name, not to a full path")
        return name
    proj = project or find_project()
    if proj is None:
        if env is not None:
            raise InvalidInput(
                f"--env needs a project: no {PROJECT_FILE} here or above (run `keysafe init`)"
            )
        return name
    return f"{proj.folder(env)}/{name}"


def project_addr(explicit: str | None, home: str | Path | None = None) -> str | None:
    """The server address a project gives, when nothing more explicit does.

    None when ``explicit``/``KEYSAFE_ADDR`` is set or there is no project address. The
    project's address must be the local profile's server (see the module doc); any other
    raises InvalidInput naming both, so a cloned repository cannot redirect credentials."""
    if explicit or os.environ.get("KEYSAFE_ADDR"):
        return None
    proj = find_project()
    if proj is None or proj.addr is None:
        return None
    from keysafe.client._config import profile_path, read_profile, same_server

    profile_addr = read_profile(profile_path(home)).get("addr")
    if profile_addr and same_server(proj.addr, profile_addr):
        return profile_addr
    raise InvalidInput(
        f"{proj.root / PROJECT_FILE} names server {proj.addr}, but your profile is for "
        f"{profile_addr or 'no server'}; set KEYSAFE_ADDR (and KEYSAFE_TOKEN) to use it"
    )


def write_project(root: Path, prefix: str, env: str, addr: str | None) -> Path:
    """Write ``root/.keysafe.toml`` (it holds no secret: it is meant to be committed)."""
    from keysafe.client._paths import check_folder

    prefix = check_folder(prefix)
    check_env_name(env)
    lines = [
        "# keysafe project settings (no secrets here: commit this file)",
        f"path = {_toml(prefix)}",
        f"env = {_toml(env)}",
    ]
    if addr:
        lines.append(f"addr = {_toml(addr)}")
    target = root / PROJECT_FILE
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def add_gitignore(root: Path) -> list[str]:
    """Append the entries of GITIGNORE_ENTRIES that ``root/.gitignore`` lacks; returns them."""
    target = root / ".gitignore"
    try:
        existing = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    have = {line.strip() for line in existing.splitlines()}
    missing = [entry for entry in GITIGNORE_ENTRIES if entry not in have]
    if missing:
        sep = "" if not existing or existing.endswith("\n") else "\n"
        block = "# keysafe: files that may hold secret values\n" + "\n".join(missing) + "\n"
        with target.open("a", encoding="utf-8") as fh:
            fh.write(sep + block)
    return missing


def _toml(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=True)
