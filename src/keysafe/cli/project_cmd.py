"""``keysafe init`` and ``keysafe env ...``: a repository as a keysafe project."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.cli.output import message, print_json, table
from keysafe.errors import InvalidInput

env_app = typer.Typer(
    help="List and compare the environments (dev, staging, prod...) of this project.",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]
PrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--path", "-p", help="Path prefix of the environments [the project's, from .keysafe.toml]."
    ),
]


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(env_app, name="env")


def init(
    ctx: typer.Context,
    path: Annotated[
        str | None,
        typer.Option(
            "--path", "-p", help="Path prefix of this project's secrets [the folder's name]."
        ),
    ] = None,
    env: Annotated[
        str, typer.Option("--env", "-e", help="Default environment: reads <path>/<env>/.")
    ] = "dev",
    server: Annotated[
        str | None,
        typer.Option(
            "--server", help="Server address to record [--addr, KEYSAFE_ADDR or the profile's]."
        ),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write .keysafe.toml [the git root, else here]."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing .keysafe.toml.")
    ] = False,
) -> None:
    """Make this repository a keysafe project: write .keysafe.toml, extend .gitignore.

    Afterwards `keysafe run -- CMD`, `keysafe export` and `keysafe secret get NAME` work
    from anywhere inside it, reading <path>/<env>/ (--env switches environment)."""
    from keysafe.cli.project import PROJECT_FILE, add_gitignore, write_project
    from keysafe.client._config import profile_path, read_profile

    root = directory or _git_root(Path.cwd()) or Path.cwd()
    if not root.is_dir():
        raise InvalidInput(f"--dir {root} is not a directory")
    target = root / PROJECT_FILE
    if target.exists() and not force:
        raise InvalidInput(f"{target} already exists: pass --force to replace it")
    prefix = path or _slug(root.resolve().name)
    addr = (
        server
        or state(ctx).addr
        or os.environ.get("KEYSAFE_ADDR")
        or read_profile(profile_path()).get("addr")
    )
    written = write_project(root, prefix, env, addr)
    added = add_gitignore(root)
    message(f"wrote {written}: secrets under {prefix}/{env}/" + (f" on {addr}" if addr else ""))
    if added:
        message(f"added to {root / '.gitignore'}: {' '.join(added)}")


def _git_root(start: Path) -> Path | None:
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _slug(name: str) -> str:
    import re

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    if not slug:
        raise InvalidInput("cannot derive a path prefix from the folder name: pass --path")
    return slug


def _prefix(explicit: str | None) -> str:
    from keysafe.cli.project import PROJECT_FILE, find_project
    from keysafe.client._paths import check_folder

    if explicit:
        return check_folder(explicit)
    proj = find_project()
    if proj is None:
        raise InvalidInput(f"no {PROJECT_FILE} here or above: pass --path or run `keysafe init`")
    return proj.prefix


@env_app.command("list")
def env_list(ctx: typer.Context, path: PrefixOpt = None, as_json: JsonOpt = False) -> None:
    """The environments under the project's prefix, with how many secrets each holds."""
    prefix = _prefix(path)
    with state(ctx).client() as client:
        entries = client.list_secrets(prefix + "/", recursive=True, values=False)
    counts: dict[str, int] = {}
    for entry in entries:
        rest = entry.path[len(prefix) + 1 :]
        env, sep, _ = rest.partition("/")
        if sep:  # a secret directly under the prefix is no environment
            counts[env] = counts.get(env, 0) + 1
    if as_json:
        print_json([{"env": env, "secrets": n} for env, n in sorted(counts.items())])
        return
    if not counts:
        message(f"no environments under {prefix}/")
        return
    table(None, ["ENV", "SECRETS"], sorted(counts.items()))


@env_app.command("diff")
def env_diff(
    ctx: typer.Context,
    left: Annotated[str, typer.Argument(help="First environment, e.g. dev.")],
    right: Annotated[str, typer.Argument(help="Second environment, e.g. prod.")],
    path: PrefixOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which secret names each environment has, and their versions (never values).

    Exits 1 when the two environments hold different names, like diff(1)."""
    from keysafe.cli.project import check_env_name

    prefix = _prefix(path)
    folders = [f"{prefix}/{check_env_name(env)}" for env in (left, right)]
    with state(ctx).client() as client:
        sides = [
            {
                e.path.rsplit("/", 1)[1]: e.version
                for e in client.list_secrets(folder + "/", recursive=False, values=False)
                if e.path.rsplit("/", 1)[0] == folder
            }
            for folder in folders
        ]
    rows = []
    for name in sorted(set(sides[0]) | set(sides[1])):
        a, b = sides[0].get(name), sides[1].get(name)
        status = "both" if a and b else f"only {left}" if a else f"only {right}"
        rows.append((name, a, b, status))
    if as_json:
        print_json(
            [{"name": n, "versions": {left: a, right: b}, "status": s} for n, a, b, s in rows]
        )
    elif rows:
        table(None, ["NAME", f"{left.upper()} VERSION", f"{right.upper()} VERSION", "STATUS"], rows)
    else:
        message(f"{folders[0]} and {folders[1]} are both empty")
    if any(row[3] != "both" for row in rows):
        raise typer.Exit(1)
