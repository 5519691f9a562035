"""``keysafe audit ...``: check the tamper-evident audit trail."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated

import typer

from keysafe.cli.context import state
from keysafe.cli.output import data, error_line, message, print_json


class TrailSource(StrEnum):
    """Which copy of the trail ``audit verify`` walks."""

    db = "db"
    file = "file"


app = typer.Typer(help="Verify and read the audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Stable JSON output.")] = False,
    source: Annotated[
        TrailSource,
        typer.Option(
            "--source",
            help="db: the chain in the database; file: the server's JSON-lines audit file.",
        ),
    ] = TrailSource.db,
) -> None:
    """Exit 0 when the trail is intact; 1, naming the first bad event, otherwise.

    Truncation counts as broken: a tail cut with the head moved back, every event
    deleted, or a cut audit file are found against signed anchors and checkpoints.
    """
    with state(ctx).client() as client:
        report = client.audit_verify(source=source.value)
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
