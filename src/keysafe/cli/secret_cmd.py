"""``keysafe secret ...``: read, write and manage versions of secrets."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.cli.output import data, message, print_json, table
from keysafe.errors import InvalidInput

app = typer.Typer(help="Read, write and manage secrets.", no_args_is_help=True)
metadata_app = typer.Typer(help="Show or change a secret's metadata.", no_args_is_help=True)
app.add_typer(metadata_app, name="metadata")


def _complete_path(incomplete: str) -> list[str]:
    from keysafe.cli.complete import secret_paths

    return secret_paths(incomplete)


PathArg = Annotated[
    str,
    typer.Argument(
        help="Secret path, e.g. payments/dev/DB_PASSWORD; inside a project a bare NAME "
        "is <path>/<env>/NAME.",
        autocompletion=_complete_path,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]
EnvOpt = Annotated[
    str | None,
    typer.Option("--env", "-e", help="Project environment for a bare NAME [.keysafe.toml's env]."),
]


def full_path(path: str, env: str | None = None) -> str:
    """A bare NAME inside a project as ``<prefix>/<env>/NAME``; full paths unchanged."""
    from keysafe.cli.project import secret_path

    return secret_path(path, env)


@app.command("set")
def set_(
    ctx: typer.Context,
    path: PathArg,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Read the value from FILE, byte for byte (- = stdin)."),
    ] = None,
    cas: Annotated[
        int | None,
        typer.Option("--cas", help="Write only if the current version is N (0: must not exist)."),
    ] = None,
    env: EnvOpt = None,
    extra: Annotated[list[str] | None, typer.Argument(hidden=True)] = None,
) -> None:
    """Write a new version. The value comes from stdin, --file or a hidden prompt."""
    from keysafe.cli.values import ARGV_REFUSAL, read_value

    if extra:
        raise InvalidInput(ARGV_REFUSAL)  # never echo what was passed: it may be the value
    path = full_path(path, env)
    value = read_value(file)
    with state(ctx).client() as client:
        version = client.put_secret(path, value, cas=cas)
    message(f"{path}: version {version} written")


@app.command("get")
def get(
    ctx: typer.Context,
    path: PathArg,
    version: Annotated[int | None, typer.Option("--version", "-v", help="A past version.")] = None,
    no_newline: Annotated[
        bool, typer.Option("--no-newline", "-n", help="Print the value without a newline.")
    ] = False,
    as_json: JsonOpt = False,
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            help="current, previous (replaced by the last rotation) or pending (a "
            "rotation's unproven value; needs the rotate capability).",
        ),
    ] = None,
    env: EnvOpt = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Print ${...} references as stored, unexpanded.")
    ] = False,
) -> None:
    """Print the value (exactly, then a newline unless --no-newline).

    ${OTHER} and ${folder/NAME} references in the value are expanded with your own
    token (a reference you may not read is an error) unless --raw."""
    from keysafe.cli.refs import expand, has_refs

    path = full_path(path, env)
    if label is not None:
        if version is not None:
            raise InvalidInput("give --version or --label, not both")
        with state(ctx).client() as client:
            doc = client.secret_label(path, label)
        if as_json:
            print_json(doc)
        else:
            data(str(doc["value"]), newline=not no_newline)
        return
    with state(ctx).client() as client:
        secret = client.get_secret(path, version)
        value = secret.value
        if not raw and has_refs(value):
            value = expand(secret.path, value, client.get)
    if as_json:
        print_json(
            {
                "path": secret.path,
                "version": secret.version,
                "value": value,
                "metadata": secret.metadata,
            }
        )
    else:
        data(value, newline=not no_newline)


@app.command("list")
def list_(
    ctx: typer.Context,
    prefix: Annotated[
        str, typer.Argument(help="Folder, e.g. payments or payments/dev [everything].")
    ] = "",
    recursive: Annotated[bool, typer.Option(help="Include sub-folders.")] = True,
    active: Annotated[
        bool, typer.Option("--active", help="Leave out deleted and destroyed secrets.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List paths, versions and states under a folder (never values).

    A folder is matched whole: `secret list pay` lists pay/..., not payments/..."""
    folder = prefix.strip("/") + "/" if prefix.strip("/") else ""
    with state(ctx).client() as client:
        entries = client.list_secrets(folder, recursive=recursive, values=False)
    if active:
        entries = [e for e in entries if e.state == "active"]
    if as_json:
        print_json(
            [
                {"path": e.path, "version": e.version, "state": e.state, "updated_at": e.updated_at}
                for e in entries
            ]
        )
        return
    if not entries:
        message(f"no secrets under {folder or '/'}")
        return
    table(
        None,
        ["PATH", "VERSION", "STATE", "UPDATED"],
        [(e.path, e.version, e.state, e.updated_at) for e in entries],
    )


@app.command("history")
def history(ctx: typer.Context, path: PathArg, as_json: JsonOpt = False) -> None:
    """The versions of a secret and their state."""
    path = full_path(path)
    with state(ctx).client() as client:
        hist = client.history(path)
    if as_json:
        print_json(asdict(hist))
        return
    rows = []
    for v in hist.versions:
        status = "destroyed" if v.destroyed else "deleted" if v.deleted_at else "active"
        mark = "*" if v.version == hist.current_version else ""
        rows.append((f"{v.version}{mark}", status, v.created_at, v.deleted_at))
    table(hist.path, ["VERSION", "STATE", "CREATED", "DELETED"], rows)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    path: PathArg,
    version: Annotated[int, typer.Option("--version", "-v", help="The version to restore.")],
) -> None:
    """Make an earlier version current again (written as a new version)."""
    path = full_path(path)
    with state(ctx).client() as client:
        new = client.rollback(path, version)
    message(f"{path}: version {version} restored as version {new}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    path: PathArg,
    version: Annotated[int | None, typer.Option("--version", "-v")] = None,
) -> None:
    """Soft-delete the latest (or the given) version; undelete brings it back."""
    path = full_path(path)
    with state(ctx).client() as client:
        client.delete(path, version)
    message(f"{path}: {'version ' + str(version) if version else 'latest version'} deleted")


@app.command("undelete")
def undelete(
    ctx: typer.Context,
    path: PathArg,
    version: Annotated[list[int] | None, typer.Option("--version", "-v")] = None,
) -> None:
    """Restore soft-deleted versions (the latest when no --version)."""
    path = full_path(path)
    with state(ctx).client() as client:
        client.undelete(path, version or None)
    message(f"{path}: restored")


@app.command("destroy")
def destroy(
    ctx: typer.Context,
    path: PathArg,
    version: Annotated[list[int], typer.Option("--version", "-v", help="Repeatable.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Wipe versions for good (metadata stays). Cannot be undone."""
    path = full_path(path)
    import sys

    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput("destroy cannot be undone: pass --yes to confirm")
        listed = ", ".join(map(str, version))
        if not typer.confirm(f"Destroy version(s) {listed} of {path} for good?", err=True):
            raise typer.Exit(1)
    with state(ctx).client() as client:
        client.destroy(path, version)
    message(f"{path}: version(s) {', '.join(map(str, version))} destroyed")


@metadata_app.command("show")
def metadata_show(ctx: typer.Context, path: PathArg, as_json: JsonOpt = False) -> None:
    """Description, owner, tags, expiry and version limits of a secret."""
    path = full_path(path)
    with state(ctx).client() as client:
        meta = client.metadata(path)
    if as_json:
        print_json(asdict(meta))
        return
    rows = [(k, v) for k, v in asdict(meta).items()]
    table(path, ["FIELD", "VALUE"], rows)


@metadata_app.command("set")
def metadata_set(
    ctx: typer.Context,
    path: PathArg,
    description: Annotated[str | None, typer.Option("--description")] = None,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="k=v, repeatable; k= removes k.")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="YYYY-MM-DD or ISO 8601 time.")
    ] = None,
    max_versions: Annotated[int | None, typer.Option("--max-versions", min=1)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the given fields; tags are merged into the existing ones."""
    path = full_path(path)
    from keysafe.cli.durations import parse_date

    expires_at = parse_date(expires) if expires else None
    with state(ctx).client() as client:
        tags = None
        if tag:
            tags = dict(client.metadata(path).tags)
            for item in tag:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise InvalidInput(f"invalid tag {item!r}: use key=value")
                if value:
                    tags[key] = value
                else:
                    tags.pop(key, None)
        meta = client.set_metadata(
            path,
            description=description,
            owner=owner,
            tags=tags,
            expires_at=expires_at,
            max_versions=max_versions,
        )
    if as_json:
        print_json(asdict(meta))
    else:
        message(f"{path}: metadata updated")


def _register_more() -> None:
    from keysafe.cli import secret_edit_cmd

    secret_edit_cmd.register(app)


_register_more()
