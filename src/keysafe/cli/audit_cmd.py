"""``keysafe audit ...``: check the tamper-evident audit trail."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.cli.output import data, error_line, message, print_json

app = typer.Typer(help="Verify and read the audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Stable JSON output.")] = False,
) -> None:
    """Exit 0 when the trail is intact; 1, naming the first bad event, otherwise."""
    with state(ctx).client() as client:
        report = client.audit_verify()
    if as_json:
        print_json(asdict(report))
    elif report.ok:
        data(f"audit trail intact: {report.events} events verified")
    else:
        reason = f": {report.reason}" if report.reason else ""
        message(error_line(f"audit trail broken at event {report.first_bad}{reason}"))
    if not report.ok:
        raise typer.Exit(1)


@app.command("events")
def events(
    ctx: typer.Context,
    after: Annotated[int, typer.Option("--after", help="Only events after this seq.")] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 100,
) -> None:
    """Audit events as JSON lines."""
    import json

    with state(ctx).client() as client:
        for event in client.audit_events(after=after, limit=limit):
            data(json.dumps(event, ensure_ascii=False))
