"""``keysafe alerts`` and ``keysafe alert ...``: anomaly alerts, hooks, dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keysafe.cli.context import state
from keysafe.cli.output import data, message, print_json, table
from keysafe.errors import InvalidInput

JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]

app = typer.Typer(help="Acknowledge alerts and manage where they are sent.", no_args_is_help=True)
hook_app = typer.Typer(
    help="Signed webhooks and e-mail addresses that receive alerts.", no_args_is_help=True
)
app.add_typer(hook_app, name="hook")


def register(root: typer.Typer) -> None:
    """Add the top-level ``keysafe alerts`` listing."""
    root.command("alerts")(list_alerts)


def list_alerts(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option("--since", help="How far back: 24h, 7d, or an RFC 3339 time.")
    ] = "24h",
    status: Annotated[
        str | None, typer.Option("--status", help="open or acknowledged (default: both).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Anomaly alerts (new source address or network, rate spike, off-hours use, denied
    bursts, first read of a path), newest first."""
    with state(ctx).client() as client:
        alerts = client.list_alerts(since=since, status=status)
    if as_json:
        print_json(alerts)
        return
    if not alerts:
        message(f"no alerts since {since}")
        return
    # One line per alert (a table folds its ids at 80 columns): grep-friendly.
    for a in alerts:
        count = f" x{a['count']}" if a["count"] > 1 else ""
        data(
            f"{a['id']}  {a['severity']:<6}  {a['kind']:<12}  {a['actor']}  {a['last_at']}"
            f"{count}  {a['status']}  [{a['action_result']}]  {_evidence(a['evidence'])}"
        )


def _evidence(evidence: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in evidence.items())


@app.command("ack")
def ack(ctx: typer.Context, alert_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Acknowledge alert ID (a later finding of the same kind raises a new alert)."""
    with state(ctx).client() as client:
        client.ack_alert(alert_id)
    message(f"alert {alert_id} acknowledged")


@app.command("dead-letters")
def dead_letters(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Notifications that failed every attempt, with the last error."""
    with state(ctx).client() as client:
        rows = client.alert_dead_letters()
    if as_json:
        print_json(rows)
        return
    table(
        None,
        ["id", "alert", "channel", "target", "attempts", "last error", "given up"],
        [
            (
                r["id"],
                r["alert_id"],
                r["channel"],
                r["target"],
                r["attempts"],
                r["last_error"],
                r["done_at"],
            )
            for r in rows
        ],
    )


@hook_app.command("add")
def hook_add(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Argument(metavar="URL", help="HTTPS endpoint (http only to loopback).")
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option("--secret-file", help="File holding the signing secret; - for stdin."),
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Send alerts to this address (SMTP) instead.")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Send every new alert to URL, signed (HMAC-SHA256 over timestamp and body) with the
    secret in --secret-file; or to an e-mail address with --email."""
    if (url is None) == (email is None):
        raise InvalidInput("give either a URL (with --secret-file) or --email")
    with state(ctx).client() as client:
        if url is not None:
            if secret_file is None:
                raise InvalidInput("a webhook needs --secret-file (the signing secret)")
            record = client.add_alert_hook(
                url=url, secret=_read_secret(secret_file), description=description
            )
        else:
            record = client.add_alert_hook(email=email, description=description)
    if as_json:
        print_json(record)
    else:
        data(record["id"])
        message(f"alert hook {record['id']} added ({record['kind']} to {record['target']})")


def _read_secret(path: Path) -> str:
    """The secret from a file or stdin, without a trailing newline. Never echoed."""
    import sys

    try:
        raw = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise InvalidInput(f"cannot read the secret file {path}: {reason}") from exc
    secret = raw.rstrip("\r\n")
    if not secret:
        raise InvalidInput(f"the secret file {path} is empty")
    return secret


@hook_app.command("list")
def hook_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    with state(ctx).client() as client:
        hooks = client.list_alert_hooks()
    if as_json:
        print_json(hooks)
        return
    table(
        None,
        ["id", "kind", "target", "signed", "description", "created"],
        [
            (h["id"], h["kind"], h["target"], h["signed"], h["description"], h["created_at"])
            for h in hooks
        ],
    )


@hook_app.command("remove")
def hook_remove(ctx: typer.Context, hook_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Stop sending alerts to hook ID (queued deliveries to it are dropped)."""
    with state(ctx).client() as client:
        client.remove_alert_hook(hook_id)
    message(f"alert hook {hook_id} removed")
