"""``keysafe policy|service|key ...``: least-privilege administration (root token)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from keysafe.cli.context import state
from keysafe.cli.output import cell, data, message, print_json, table
from keysafe.errors import InvalidInput

JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]

policy_app = typer.Typer(help="Write, read and check path policies.", no_args_is_help=True)
service_app = typer.Typer(
    help="Create and list services (machine identities).", no_args_is_help=True
)
key_app = typer.Typer(
    help="Issue, list, roll, suspend, resume and revoke service API keys.", no_args_is_help=True
)


# -- policies -----------------------------------------------------------------------------


@policy_app.command("write")
def policy_write(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="TOML policy; - for stdin.")],
) -> None:
    """Create or replace policy NAME from FILE (errors name the line)."""
    import sys

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from exc
    with state(ctx).client() as client:
        result = client.write_policy(name, text)
    message(f"policy {name} written ({result['rules']} rules)")


@policy_app.command("read")
def policy_read(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Print policy NAME's document."""
    with state(ctx).client() as client:
        data(client.read_policy(name)["text"], newline=False)


@policy_app.command("list")
def policy_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with state(ctx).client() as client:
        policies = client.list_policies()
    if as_json:
        print_json(policies)
        return
    table(
        None,
        ["name", "rules", "updated"],
        [(p["name"], p["rules"], p["updated_at"]) for p in policies],
    )


@policy_app.command("delete")
def policy_delete(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Delete an unused policy."""
    with state(ctx).client() as client:
        client.delete_policy(name)
    message(f"policy {name} deleted")


@policy_app.command("check")
def policy_check(
    ctx: typer.Context,
    path: Annotated[str, typer.Option("--path", help="Secret path to check.")],
    key: Annotated[str | None, typer.Option("--key", help="API key id (key_...).")] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option("--policy", help="Policy name (repeatable), instead of --key."),
    ] = None,
    op: Annotated[str, typer.Option("--op", help="Capability: read, list, write, ...")] = "read",
    source: Annotated[
        str, typer.Option("--source", help="Source address to assume.")
    ] = "127.0.0.1",
    as_json: JsonOpt = False,
) -> None:
    """Explain whether KEY may OP on PATH, naming the rule that decided. Exit 1 if denied."""
    if (key is None) == (policy is None):
        raise InvalidInput("give exactly one of --key or --policy")
    with state(ctx).client() as client:
        result = client.check_policy(path, op, key_id=key, policies=policy, source=source)
    if as_json:
        print_json(result)
    else:
        verdict = "ALLOWED" if result["allowed"] else "DENIED"
        data(f"{verdict}: {op} on {path}: {result['reason']}")
        for rule in result["rules"]:
            data(f"  {rule['rule']}: {cell(rule['note'])}")
    if not result["allowed"]:
        raise typer.Exit(1)


# -- services -----------------------------------------------------------------------------


@service_app.command("create")
def service_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    policy: Annotated[
        list[str] | None, typer.Option("--policy", help="Policy (repeatable).")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a service holding POLICY; its keys can hold no more."""
    with state(ctx).client() as client:
        record = client.create_service(name, policy or [], description)
    if as_json:
        print_json(record)
    else:
        message(
            f"service {name} ({record['id']}) with {', '.join(record['policies']) or 'no policies'}"
        )


@service_app.command("list")
def service_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with state(ctx).client() as client:
        services = client.list_services()
    if as_json:
        print_json(services)
        return
    rows = [(s["name"], s["id"], ", ".join(s["policies"]), s["description"]) for s in services]
    table(None, ["name", "id", "policies", "description"], rows)


# -- keys ---------------------------------------------------------------------------------


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    service: Annotated[str, typer.Option("--service", help="Owning service.")],
    policy: Annotated[
        list[str] | None, typer.Option("--policy", help="Subset of the service's policies.")
    ] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Lifetime, e.g. 90d.")] = None,
    cidr: Annotated[
        list[str] | None, typer.Option("--cidr", help="Allowed source network (repeatable).")
    ] = None,
    rate: Annotated[str | None, typer.Option("--rate", help="Rate limit, e.g. 600/min.")] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Issue a key. It is printed once on stdout; afterwards only its id and prefix."""
    with state(ctx).client() as client:
        issued = client.create_key(
            service,
            policies=policy,
            cidrs=cidr or [],
            expires_in=expires,
            rate_limit=rate,
            description=description,
        )
    if as_json:
        print_json(issued)
        return
    data(issued["key"])
    message(
        f"key {issued['id']} for service {service}, expires {issued['expires_at']} "
        "(shown only this once)"
    )


@key_app.command("list")
def key_list(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option("--service")] = None,
    unused_for: Annotated[
        str | None, typer.Option("--unused-for", help="Only keys unused for this long, e.g. 30d.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    with state(ctx).client() as client:
        keys = client.list_keys(service=service, unused_for=unused_for)
    if as_json:
        print_json(keys)
        return
    rows = [
        (
            k["id"],
            k["prefix"] + "...",
            ", ".join(k["policies"]),
            k["expires_at"],
            key_state(k),
            k["last_used_at"] or "never",
        )
        for k in keys
    ]
    table(None, ["id", "prefix", "policies", "expires", "state", "last used"], rows)


def key_state(record: Mapping[str, Any]) -> str:
    """One word for a key record: revoked, suspended, rolled or live."""
    if record["revoked"]:
        return "revoked"
    if record.get("suspended"):
        return "suspended"
    return "rolled" if record["replaced_by"] else "live"


@key_app.command("show")
def key_show(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    days: Annotated[int, typer.Option("--days", min=1, help="Usage over this many days.")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """A key's record and usage: requests per day, sources, paths read, last use."""
    from keysafe.cli.usage_view import show_key_usage

    with state(ctx).client() as client:
        record = client.show_key(key_id)
        usage = client.key_usage(key_id, days)
    if as_json:
        print_json({**record, "usage": usage})
        return
    show_key_usage(record, usage)


@key_app.command("roll")
def key_roll(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    grace: Annotated[
        str, typer.Option("--grace", help="How long the old key still works.")
    ] = "24h",
    as_json: JsonOpt = False,
) -> None:
    """Issue a successor; the old key dies after --grace."""
    with state(ctx).client() as client:
        issued = client.roll_key(key_id, grace)
    if as_json:
        print_json(issued)
        return
    data(issued["key"])
    message(f"key {issued['id']} replaces {key_id}, which stops working in {grace}")


@key_app.command("revoke")
def key_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a key now."""
    with state(ctx).client() as client:
        client.revoke_key(key_id)
    message(f"key {key_id} revoked")


@key_app.command("suspend")
def key_suspend(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, for the record (at most 200 characters).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Refuse a key like a revoked one until `keysafe key resume`. Exit 4 if it is
    revoked, expired or already suspended."""
    with state(ctx).client() as client:
        record = client.suspend_key(key_id, reason)
    if as_json:
        print_json(record)
        return
    message(f"key {key_id} suspended (undo: keysafe key resume {key_id})")


@key_app.command("resume")
def key_resume(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Lift a suspension. Exit 4 if the key is not suspended, or is revoked or expired
    (those never come back)."""
    with state(ctx).client() as client:
        record = client.resume_key(key_id)
    if as_json:
        print_json(record)
        return
    message(f"key {key_id} resumed")
