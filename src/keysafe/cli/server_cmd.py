"""``keysafe server``: the production server. Starts sealed unless an unseal source is set."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.errors import InvalidInput
from keysafe.netloc import is_loopback


def register(app: typer.Typer) -> None:
    app.command("server")(server)


def server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8200,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64)] = 1,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key.")] = None,
    insecure_http: Annotated[
        bool,
        typer.Option("--insecure-http", help="Serve plain HTTP (loopback hosts only)."),
    ] = False,
    unseal_key_file: Annotated[
        Path | None,
        typer.Option("--unseal-key-file", help="Unseal automatically with this key file."),
    ] = None,
    init_token_file: Annotated[
        Path | None,
        typer.Option(
            "--init-token-file",
            help="Init needs the one-time token in this file (created 0600 when missing).",
        ),
    ] = None,
) -> None:
    """Run the keysafe server (HTTPS with --tls-cert/--tls-key)."""
    if (tls_cert is None) != (tls_key is None):
        raise InvalidInput("--tls-cert and --tls-key go together")
    if tls_cert is None and not insecure_http:
        raise InvalidInput("give --tls-cert and --tls-key (or --insecure-http on a loopback host)")
    if tls_cert is not None and insecure_http:
        raise InvalidInput("--insecure-http cannot be combined with --tls-cert")
    if insecure_http and not is_loopback(host):
        raise InvalidInput(f"--insecure-http is only allowed on a loopback host, not {host}")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise InvalidInput(f"{path} does not exist")

    from keysafe.server.runner import run_server

    settings = state(ctx).settings()
    if init_token_file is not None:
        settings = settings.model_copy(update={"init_token_file": init_token_file})
    with contextlib.suppress(KeyboardInterrupt):
        run_server(
            settings,
            host=host,
            port=port,
            workers=workers,
            tls_cert=tls_cert,
            tls_key=tls_key,
            insecure_http=insecure_http,
            unseal_key_file=unseal_key_file or settings.unseal_key_file,
        )
