"""``keysafe run`` and ``keysafe export``: folders of secrets as environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.errors import InvalidInput

PathsOpt = Annotated[
    list[str],
    typer.Option("--path", "-p", help="Folder whose secrets to inject (repeatable)."),
]
PrefixOpt = Annotated[
    bool,
    typer.Option("--prefix", help="Prefix each name with its folder (PAYMENTS_DEV_DB_PASSWORD)."),
]


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        context_settings={"allow_interspersed_args": False},
        help="Run COMMAND with the secrets of each --path folder in its environment. "
        "Signals are forwarded; the exit status is the command's.",
    )(run)
    app.command("export", help="Print the secrets of --path folders as dotenv, json or shell.")(
        export
    )


def run(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(help="The program and its arguments.")],
    path: PathsOpt,
    prefix: PrefixOpt = False,
) -> None:
    from keysafe.cli.child import ChildStartError, run_child
    from keysafe.cli.envmap import fetch_env
    from keysafe.cli.output import error_line, message

    with state(ctx).client() as client:
        secrets = fetch_env(client, path, prefixed=prefix)
    env = {**os.environ, **secrets}
    try:
        code = run_child(command, env)
    except ChildStartError as exc:
        message(error_line(exc.detail))
        raise typer.Exit(exc.exit_code) from None
    raise typer.Exit(code)


def export(
    ctx: typer.Context,
    path: PathsOpt,
    fmt: Annotated[str, typer.Option("--format", "-f", help="dotenv, json or shell.")] = "dotenv",
    prefix: PrefixOpt = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE (mode 0600).")
    ] = None,
) -> None:
    from keysafe.cli.envmap import fetch_env
    from keysafe.cli.formats import FORMATS, RENDERERS
    from keysafe.cli.output import data

    if fmt not in RENDERERS:
        raise InvalidInput(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    with state(ctx).client() as client:
        env = fetch_env(client, path, prefixed=prefix)
    text = RENDERERS[fmt](env)
    if output is None:
        data(text, newline=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
