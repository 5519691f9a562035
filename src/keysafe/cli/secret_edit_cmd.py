"""``keysafe secret import`` and ``keysafe secret edit``: values from files and editors.

Neither ever prints a value. Both compare with what is stored and write only what
changed, each write with ``cas`` so a concurrent change is never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.cli.output import message, print_json
from keysafe.errors import InvalidInput, NotFound


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.command("edit")(edit)


def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .env, .json or .yaml file of NAME=value.")],
    path: Annotated[
        str | None,
        typer.Option("--path", "-p", help="Folder to write into [the project's <path>/<env>]."),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", "-e", help="Project environment [.keysafe.toml's env].")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="dotenv, json or yaml [from the file's suffix]."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would change.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Report as JSON.")] = False,
) -> None:
    """Write each NAME=value of FILE as FOLDER/NAME: new ones, and changed ones as a new
    version. Values are never printed; a malformed file writes nothing."""
    from keysafe.cli.importfile import parse_file
    from keysafe.cli.run_cmd import folders
    from keysafe.client._paths import check_folder

    pairs = parse_file(file, fmt)  # all of it, before anything is written
    folder = check_folder(folders([path] if path else None, env)[0])
    with state(ctx).client() as client:
        current = {
            e.path: e
            for e in client.list_secrets(folder + "/", recursive=False, values=True)
            if e.path.rsplit("/", 1)[0] == folder
        }
        report = []
        for name, value in pairs.items():
            target = f"{folder}/{name}"
            entry = current.get(target)
            if entry is None:
                action, cas = "create", 0
            elif entry.value == value:
                action, cas = "unchanged", entry.version
            else:
                action, cas = "update", entry.version
            version = cas
            if action != "unchanged" and not dry_run:
                version = client.put_secret(target, value, cas=cas)
            report.append({"path": target, "action": action, "version": version})
    if as_json:
        print_json({"dry_run": dry_run, "secrets": report})
        return
    signs = {"create": "+", "update": "~", "unchanged": "="}
    for row in report:
        message(f"{signs[str(row['action'])]} {row['path']} ({row['action']})")
    changed = sum(1 for row in report if row["action"] != "unchanged")
    verb = "would write" if dry_run else "wrote"
    message(f"{verb} {changed} of {len(report)} secrets under {folder}/")


def edit(
    ctx: typer.Context,
    path: Annotated[
        str, typer.Argument(help="Secret path; inside a project a bare NAME is <path>/<env>/NAME.")
    ],
    env: Annotated[
        str | None, typer.Option("--env", "-e", help="Project environment for a bare NAME.")
    ] = None,
) -> None:
    """Open the value in $VISUAL or $EDITOR (default vi) and write a new version if it
    changed. The temporary file is private (0600, in a 0700 folder, in memory where
    /dev/shm exists) and removed afterwards; an editor that fails writes nothing."""
    from keysafe.cli.secret_cmd import full_path

    path = full_path(path, env)
    with state(ctx).client() as client:
        try:
            secret = client.get_secret(path)
            old, cas = secret.value, secret.version
        except NotFound:
            old, cas = "", 0
        new = _edit_text(old, Path(path).name)
        if old.endswith("\n") is False and new.endswith("\n"):
            new = new[:-2] if new.endswith("\r\n") else new[:-1]  # the editor's final newline
        if new == old:
            message(f"{path}: unchanged, nothing written")
            return
        if not new:
            raise InvalidInput(f"{path}: the edited value is empty; nothing written")
        version = client.put_secret(path, new, cas=cas)
    message(f"{path}: version {version} written")


def _edit_text(text: str, name: str) -> str:
    import shlex
    import shutil
    import subprocess
    import tempfile

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    argv = shlex.split(editor)
    if not argv or shutil.which(argv[0]) is None:
        raise InvalidInput(f"editor {argv[0] if argv else editor!r} not found: set $EDITOR")
    # In memory where possible, so the value never reaches a disk; mkdtemp makes a fresh
    # 0700 folder with an unguessable name, which is what makes a shared /dev/shm safe.
    shm = "/dev/shm"  # noqa: S108
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="keysafe-edit-", dir=base)  # mode 0700
    file = Path(folder) / f"{name}.txt"
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            done = subprocess.run([*argv, str(file)], check=False)
        except OSError as exc:
            raise InvalidInput(f"cannot start the editor {argv[0]}: {exc.strerror}") from exc
        if done.returncode != 0:
            raise InvalidInput(f"the editor exited with status {done.returncode}; nothing written")
        try:
            return file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("the edited value is not UTF-8 text; nothing written") from exc
        except FileNotFoundError as exc:
            raise InvalidInput("the editor removed the file; nothing written") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
