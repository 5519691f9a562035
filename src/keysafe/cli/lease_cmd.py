"""``keysafe creds NAME`` and ``keysafe creds role ...``, ``keysafe lease ...``:
temporary database logins and their leases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer
from typer._click.core import Context as ClickContext  # typer vendors click
from typer.core import TyperGroup

from keysafe.cli.context import state
from keysafe.cli.durations import parse_duration
from keysafe.cli.output import data, message, print_json, table
from keysafe.errors import InvalidInput

JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]


class _IssueByDefault(TyperGroup):
    """``keysafe creds NAME`` means ``keysafe creds get NAME``; ``role`` stays a group."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["get", *args]
        return super().parse_args(ctx, args)


creds_app = typer.Typer(
    cls=_IssueByDefault,
    help="Temporary database logins: `keysafe creds NAME` issues one with a lease.",
    no_args_is_help=True,
)
role_app = typer.Typer(help="Configure the roles logins are made from.", no_args_is_help=True)
lease_app = typer.Typer(help="List, renew and revoke leases.", no_args_is_help=True)
creds_app.add_typer(role_app, name="role")


@creds_app.command("get")
def creds_get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Role, e.g. postgres/reporting.")],
    ttl: Annotated[
        str | None, typer.Option("--ttl", help="Lease length (1h, 30m); the role's by default.")
    ] = None,
    as_json: JsonOpt = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="text, json or env (export PGHOST=... PGUSER=... lines for "
            'eval "$(keysafe creds NAME --format env)").',
        ),
    ] = "text",
) -> None:
    """A new login for role NAME, valid until its lease ends. The password is shown once."""
    fmt = "json" if as_json else fmt
    if fmt not in ("text", "json", "env"):
        raise InvalidInput("--format is text, json or env")
    seconds = parse_duration(ttl) if ttl is not None else None
    with state(ctx).client() as client:
        issued = client.creds(name, seconds)
    for warning in issued.get("warnings", []):
        message(f"warning: {warning}")
    if fmt == "json":
        print_json(issued)
    elif fmt == "env":
        data(_env_lines(issued), newline=False)
        message(f"lease {issued['lease_id']} ends {issued['expires_at']}")
    else:
        data(
            f"username    {issued['username']}\npassword    {issued['password']}\n"
            f"lease_id    {issued['lease_id']}\nexpires_at  {issued['expires_at']}\n"
            f"max_expires {issued['max_expires_at']}"
        )


def _env_lines(issued: Mapping[str, Any]) -> str:
    """``export NAME='value'`` lines a shell can eval, so child programs (psql, libpq,
    psycopg) see them: where to connect and the new login, never the admin's."""
    from keysafe.cli.formats import to_shell

    env = {
        "PGHOST": issued.get("host") or "",
        "PGPORT": str(issued.get("port") or ""),
        "PGDATABASE": issued.get("database") or "",
        "PGUSER": issued["username"],
        "PGPASSWORD": issued["password"],
    }
    return to_shell({k: v for k, v in env.items() if v})


# -- roles --------------------------------------------------------------------------------


@role_app.command("write")
def role_write(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    connection_secret: Annotated[
        str,
        typer.Option("--connection-secret", help="Secret holding the admin postgresql:// URL."),
    ],
    grant: Annotated[
        list[str] | None,
        typer.Option(
            "--grant",
            help="SQL run after CREATE ROLE, with {{name}} (repeatable), e.g. "
            '"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{name}}".',
        ),
    ] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Default lease length.")] = "1h",
    max_ttl: Annotated[str, typer.Option("--max-ttl", help="No renewal goes past it.")] = "24h",
    as_json: JsonOpt = False,
) -> None:
    """Create or replace role NAME (needs admin on sys/creds and read on the secret)."""
    config: dict[str, Any] = {
        "connection_secret": connection_secret,
        "grants": grant or [],
        "ttl": parse_duration(ttl),
        "max_ttl": parse_duration(max_ttl),
    }
    with state(ctx).client() as client:
        result = client.write_creds_role(name, config)
    if as_json:
        print_json(result)
    else:
        message(f"role {name} written ({len(result['grants'])} grants)")


@role_app.command("list")
def role_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with state(ctx).client() as client:
        roles = client.list_creds_roles()
    if as_json:
        print_json(roles)
        return
    rows = [
        (r["name"], r["connection_secret"], len(r["grants"]), r["ttl"], r["max_ttl"]) for r in roles
    ]
    table(None, ["name", "connection secret", "grants", "ttl (s)", "max ttl (s)"], rows)


@role_app.command("delete")
def role_delete(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Delete role NAME (refused while it has live leases)."""
    with state(ctx).client() as client:
        client.delete_creds_role(name)
    message(f"role {name} deleted")


# -- leases -------------------------------------------------------------------------------


@lease_app.command("list")
def lease_list(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Option("--prefix", help="Role name prefix.")] = "",
    lease_state: Annotated[
        str | None,
        typer.Option("--state", help="active, revoked, expired or revoke_failed."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Leases, newest first; a failed drop shows as revoke_failed with its reason."""
    with state(ctx).client() as client:
        found = client.list_leases(prefix, lease_state)
    if as_json:
        print_json(found)
        return
    rows = [
        (x["lease_id"], x["role"], x["username"], x["state"], x["expires_at"], x["revoke_error"])
        for x in found
    ]
    table(None, ["lease", "role", "login", "state", "expires", "error"], rows)


@lease_app.command("renew")
def lease_renew(
    ctx: typer.Context,
    lease_id: Annotated[str, typer.Argument(metavar="LEASE_ID")],
    increment: Annotated[
        str | None, typer.Option("--increment", help="From now (1h); the role's TTL by default.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Extend a lease; never past its maximum (capped, with a warning)."""
    seconds = parse_duration(increment) if increment is not None else None
    with state(ctx).client() as client:
        result = client.renew_lease(lease_id, seconds)
    for warning in result.get("warnings", []):
        message(f"warning: {warning}")
    if as_json:
        print_json(result)
    else:
        message(f"lease {lease_id} now ends {result['expires_at']}")


@lease_app.command("revoke")
def lease_revoke(
    ctx: typer.Context,
    lease_id: Annotated[str | None, typer.Argument(metavar="[LEASE_ID]")] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Revoke every lease of the roles under it.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drop a lease's login now, or every login under --prefix (incident response)."""
    if (lease_id is None) == (prefix is None):
        raise InvalidInput("give either a LEASE_ID or --prefix")
    with state(ctx).client() as client:
        if prefix is not None:
            result: dict[str, Any] = dict(client.revoke_lease_prefix(prefix))
        else:
            assert lease_id is not None
            result = dict(client.revoke_lease(lease_id))
    if as_json:
        print_json(result)
    elif prefix is not None:
        message(f"revoked {result['revoked']} lease(s) under {prefix!r}; {result['failed']} failed")
        if result["failed"]:
            raise typer.Exit(10)
    elif result.get("already"):
        message(f"lease {lease_id} was already {result['state']} (nothing to do)")
    else:
        message(f"lease {lease_id} revoked; login {result['username']} dropped")
