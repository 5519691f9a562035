"""``keysafe rotation set|status|show|delete``, ``keysafe rotation target
add|list|remove`` and ``keysafe rotate PATH``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from keysafe.cli.context import state
from keysafe.cli.output import cell, message, print_json, table
from keysafe.errors import InvalidInput

app = typer.Typer(
    help="Rotate secrets on a schedule: policies and their status.", no_args_is_help=True
)

PathArg = Annotated[str, typer.Argument(help="Secret path, e.g. payments/prod/DB_PASSWORD.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]
Opt = Annotated[str | None, typer.Option()]

# Flags that are shorthands for ``--option NAME=VALUE`` (the rotator checks them).
_SHORTHANDS = (
    "length",
    "alphabet",
    "format",
    "target_secret",
    "role",
    "url",
    "signing_secret",
    "command",
    "timeout",
)


def _human(seconds: int) -> str:
    if seconds == 0:
        return "0"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@app.command("set")
def set_(
    ctx: typer.Context,
    path: PathArg,
    every: Annotated[str, typer.Option("--every", help="Interval, e.g. 30d, 7d, 24h.")],
    rotator: Annotated[
        str, typer.Option("--rotator", help="random, apikey, webhook, command, postgres, redis.")
    ] = "random",
    grace: Annotated[
        str | None,
        typer.Option(
            "--grace",
            help="How long the previous value keeps working (default 1h or half "
            "at most half the interval; 0 retires it at once).",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Rotator option NAME=VALUE (repeatable)."),
    ] = None,
    length: Opt = None,
    alphabet: Opt = None,
    format_: Annotated[str | None, typer.Option("--format", help="Template with {value}.")] = None,
    target_secret: Annotated[
        str | None, typer.Option("--target-secret", help="Secret holding the admin URL.")
    ] = None,
    role: Opt = None,
    url: Annotated[str | None, typer.Option("--url", help="Webhook URL (https).")] = None,
    signing_secret: Annotated[
        str | None, typer.Option("--signing-secret", help="Secret whose value signs webhooks.")
    ] = None,
    command: Annotated[
        str | None,
        typer.Option("--command", help="Script (absolute path) run with the value on stdin."),
    ] = None,
    timeout: Annotated[str | None, typer.Option("--timeout", help="Seconds per step.")] = None,
    approve_target: Annotated[
        bool,
        typer.Option(
            "--approve-target",
            help="As an admin of sys/rotation, approve the policy's network targets too.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create or replace the rotation policy of PATH (the first rotation is due after
    --every; `keysafe rotate PATH` runs one now). With --rotator random, a PATH that does
    not exist yet gets its first value at once."""
    from keysafe.cli.durations import parse_duration

    every_s = parse_duration(every)
    if grace is None:
        grace_s = min(3600, every_s // 2)
    else:
        grace_s = 0 if grace.strip() == "0" else parse_duration(grace)
    options: dict[str, str] = {}
    for item in option or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"--option takes NAME=VALUE, not {item.split('=')[0]!r}")
        options[name.strip()] = value
    given = {
        "length": length,
        "alphabet": alphabet,
        "format": format_,
        "target_secret": target_secret,
        "role": role,
        "url": url,
        "signing_secret": signing_secret,
        "command": command,
        "timeout": timeout,
    }
    for name in _SHORTHANDS:
        if given[name] is not None:
            options[name.replace("_", "-")] = str(given[name])
    with state(ctx).client() as client:
        doc = client.set_rotation_policy(
            path,
            rotator,
            every_seconds=every_s,
            grace_seconds=grace_s,
            options=options,
            approve_targets=approve_target,
        )
    if as_json:
        print_json(doc)
        return
    message(
        f"{path}: rotated by {rotator} every {_human(every_s)} (grace {_human(grace_s)}); "
        f"next due {doc['next_due']}"
    )
    first: Any = doc.get("first_run")
    if first:
        message(f"{path} did not exist: created its first value (version {first['new_version']})")


@app.command("status")
def status(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only policies under this prefix.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Every policy: next due, last run, outcome, error, rotation in flight."""
    with state(ctx).client() as client:
        policies = client.rotation_status(prefix)
    if as_json:
        print_json(policies)
        return
    rows = []
    for p in policies:
        state_ = "running" if p["running"] else ("in flight" if p["in_flight_run"] else "")
        rows.append(
            (
                p["path"],
                p["rotator"],
                _human(p["every_seconds"]),
                p["next_due"],
                p["last_run_at"] or "never",
                p["last_outcome"] or "",
                state_,
                p["last_error"] or "",
            )
        )
    table(
        None, ["PATH", "ROTATOR", "EVERY", "NEXT DUE", "LAST RUN", "OUTCOME", "NOW", "ERROR"], rows
    )


@app.command("show")
def show(ctx: typer.Context, path: PathArg, as_json: JsonOpt = False) -> None:
    """One policy with its latest runs."""
    with state(ctx).client() as client:
        doc = client.rotation_policy(path)
    if as_json:
        print_json(doc)
        return
    _print_policy(doc)


def _print_policy(doc: Mapping[str, Any]) -> None:
    message(
        f"{doc['path']}: {doc['rotator']} every {_human(doc['every_seconds'])}, "
        f"grace {_human(doc['grace_seconds'])}, next due {doc['next_due']}"
    )
    table(
        None,
        ["RUN", "TRIGGER", "STEP", "OUTCOME", "VERSIONS", "STARTED", "ERROR"],
        [
            (
                r["id"],
                r["trigger"],
                r["step"],
                r["outcome"] or "",
                f"{cell(r['previous_version'])} -> {r['new_version'] or '?'}",
                r["started_at"],
                r["error"] or "",
            )
            for r in doc.get("runs", [])
        ],
    )


@app.command("delete")
def delete(ctx: typer.Context, path: PathArg) -> None:
    """Stop rotating PATH (its versions stay)."""
    with state(ctx).client() as client:
        client.delete_rotation_policy(path)
    message(f"{path}: rotation policy deleted")


targets = typer.Typer(
    help="Network targets (PostgreSQL, Redis) rotators may connect to: an admin's list.",
    no_args_is_help=True,
)
app.add_typer(targets, name="target")


@targets.command("add")
def target_add(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="postgres or redis.")],
    host: Annotated[str, typer.Argument(help="Host name or IP address, as rotators use it.")],
    port: Annotated[
        int | None, typer.Option("--port", help="Default 5432 (postgres), 6379 (redis).")
    ] = None,
    database: Annotated[
        str, typer.Option("--database", "--db", help="Database name, or Redis db number.")
    ] = "",
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="A login rotators may change there (repeatable; none: any)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a target (needs admin on sys/rotation); again to replace its roles."""
    with state(ctx).client() as client:
        doc = client.add_rotation_target(
            kind, host, port=port, database=database, roles=list(role or [])
        )
    if as_json:
        print_json(doc)
        return
    roles = ", ".join(doc["roles"]) or "any login"
    message(f"approved {doc['target']} for {roles} (id {doc['id']})")


@targets.command("list")
def target_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The approved targets."""
    with state(ctx).client() as client:
        items = client.rotation_targets()
    if as_json:
        print_json(items)
        return
    table(
        None,
        ["ID", "KIND", "HOST", "PORT", "DATABASE", "ROLES"],
        [
            (t["id"], t["kind"], t["host"], t["port"], t["database"], ",".join(t["roles"]) or "*")
            for t in items
        ],
    )


@targets.command("remove")
def target_remove(
    ctx: typer.Context, target_id: Annotated[str, typer.Argument(help="The target's id.")]
) -> None:
    """Withdraw an approval: rotators stop connecting there at their next step."""
    with state(ctx).client() as client:
        client.remove_rotation_target(target_id)
    message(f"{target_id}: approval removed")


def register(root: typer.Typer) -> None:
    """Add ``keysafe rotation ...`` and the top-level ``keysafe rotate PATH``."""
    root.add_typer(app, name="rotation")

    @root.command("rotate")
    def rotate(ctx: typer.Context, path: PathArg, as_json: JsonOpt = False) -> None:
        """Rotate PATH now, out of schedule (exit 10 if the target refused or failed a
        step: the previous value stays current; 4 if a rotation is already running)."""
        with state(ctx).client() as client:
            run = client.rotate(path)
        if as_json:
            print_json(run)
            return
        message(
            f"{path}: rotated to version {run['new_version']} "
            f"(previous {cell(run['previous_version'])}; run {run['id']})"
        )
