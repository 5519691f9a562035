"""``keysafe token ...``: scoped, expiring tokens, bound to policies (or, for the root
token only, to a read/write mode under a prefix)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.cli.output import data, message, print_json, table
from keysafe.errors import InvalidInput

app = typer.Typer(help="Create, list and revoke scoped tokens.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]


@app.command("create")
def create(
    ctx: typer.Context,
    policy: Annotated[
        list[str] | None,
        typer.Option("--policy", help="Bind this policy (repeatable); no more than you hold."),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Path prefix, e.g. payments/dev/ (root only).")
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="read or write (with --prefix).")] = "read",
    ttl: Annotated[str | None, typer.Option("--ttl", help="Lifetime: 90s, 15m, 1h, 7d.")] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Issue a token. It is printed once on stdout; details go to stderr."""
    from keysafe.cli.durations import parse_duration

    if mode not in {"read", "write"}:
        raise InvalidInput(f"invalid mode {mode!r}: use read or write")
    if bool(policy) == (prefix is not None):
        raise InvalidInput("give --policy (one or more) or --prefix with --mode, not both")
    ttl_seconds = parse_duration(ttl) if ttl else None
    with state(ctx).client() as client:
        issued = client.create_token(
            prefix or "", mode, ttl_seconds, description, policies=policy or None
        )
    if as_json:
        print_json(asdict(issued))
        return
    data(issued.token)
    expiry = f", expires {issued.expires_at}" if issued.expires_at else ""
    scope = (
        f"policies {', '.join(issued.policies)}"
        if issued.policies
        else f"{issued.mode} on {issued.prefix}"
    )
    message(f"token {issued.id}: {scope}{expiry} (shown only this once)")


@app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a token by id."""
    with state(ctx).client() as client:
        client.revoke_token(token_id)
    message(f"token {token_id} revoked")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """All tokens (ids and scopes, never the tokens themselves)."""
    with state(ctx).client() as client:
        tokens = client.list_tokens()
    if as_json:
        print_json([asdict(t) for t in tokens])
        return
    rows = [
        (
            t.id,
            ", ".join(t.policies) if t.policies else f"{t.mode} on {t.prefix!r}",
            t.expires_at,
            t.revoked,
            t.description,
        )
        for t in tokens
    ]
    table(None, ["ID", "SCOPE", "EXPIRES", "REVOKED", "DESCRIPTION"], rows)


@app.command("self")
def self_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The token this CLI presents (its record, not its secret)."""
    with state(ctx).client() as client:
        info = client.token_self()
    if as_json:
        print_json(asdict(info))
        return
    table(None, ["FIELD", "VALUE"], [(k, v) for k, v in asdict(info).items()])
