"""The Typer app: command groups and global options.

The command modules import only typer at module level; httpx, rich, cryptography and
the server are imported inside the commands that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keysafe.cli import (
    access_cmd,
    alert_cmd,
    audit_cmd,
    incident_cmd,
    lease_cmd,
    operator_cmd,
    project_cmd,
    rotation_cmd,
    run_cmd,
    scan_cmd,
    secret_cmd,
    server_cmd,
    token_cmd,
    up_cmd,
    user_cmd,
)
from keysafe.cli.context import State

EXIT_CODES_HELP = """\
Exit codes: 0 ok; 1 denied or a failed check (forbidden, audit verify found tampering);
2 usage error or invalid input; 3 not found; 4 conflict (cas mismatch, already
initialised, a key already suspended or not suspended); 5 unavailable (sealed, not
initialised, audit or storage down);
6 unauthenticated (missing, expired or revoked token); 7 cannot reach the server
(connection or TLS failure); 8 server or integrity error; 9 rate limited (too many
failed credential checks: retry later); 10 a rotation target refused or failed a
step; 130 interrupted.
`keysafe run` exits with the command's own status (128+N if killed by signal N;
126/127 if it cannot be started; 3 before starting it if a --path holds no secret).

Environment: KEYSAFE_HOME (default ~/.keysafe), KEYSAFE_ADDR, KEYSAFE_TOKEN,
KEYSAFE_CACERT; each overrides the profile $KEYSAFE_HOME/profile.toml."""

app = typer.Typer(
    name="keysafe",
    help="keysafe: a self-hosted secrets manager.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh and fish; secret paths
    # are completed from the server (keysafe.cli.complete).
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from keysafe import __version__

        typer.echo(f"keysafe {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            expose_value=True,
            help="Print the version and exit.",
        ),
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML settings file (env vars win over it).")
    ] = None,
    addr: Annotated[
        str | None, typer.Option("--addr", help="Server address (overrides KEYSAFE_ADDR).")
    ] = None,
    cacert: Annotated[
        Path | None, typer.Option("--cacert", help="CA bundle (overrides KEYSAFE_CACERT).")
    ] = None,
) -> None:
    # No --token flag on purpose: a token in argv is visible in `ps` and shell history.
    ctx.obj = State(config_file=config, addr=addr, cacert=cacert)


app.add_typer(secret_cmd.app, name="secret")
app.add_typer(operator_cmd.app, name="operator")
app.add_typer(token_cmd.app, name="token")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(access_cmd.policy_app, name="policy")
app.add_typer(access_cmd.service_app, name="service")
app.add_typer(access_cmd.key_app, name="key")
app.add_typer(alert_cmd.app, name="alert")
alert_cmd.register(app)
app.add_typer(lease_cmd.creds_app, name="creds")
app.add_typer(lease_cmd.lease_app, name="lease")
run_cmd.register(app)
up_cmd.register(app)
server_cmd.register(app)
scan_cmd.register(app)
rotation_cmd.register(app)
user_cmd.register(app)
incident_cmd.register(app)
project_cmd.register(app)
