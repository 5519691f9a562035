"""``keysafe audit ...``: check the tamper-evident audit trail."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

import typer

from keysafe.cli.context import state
from keysafe.cli.output import data, error_line, message, print_json, table
from keysafe.timefmt import iso_us


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
    file: Annotated[
        str | None,
        typer.Argument(
            help="With --source file: a node's audit file, by its name in the server's"
            " audit directory (default: the answering node's own file).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Exit 0 when the trail is intact; 1, naming the first bad event, otherwise.

    Every chain (one per writing thread of each node) is checked and listed with its
    events, first and last. Truncation counts as broken: a tail cut with the head moved
    back, a chain or every event deleted, or a cut audit file are found against signed
    anchors and checkpoints.
    """
    if file is not None and source is not TrailSource.file:
        message(error_line("a FILE is verified with --source file"))
        raise typer.Exit(2)
    with state(ctx).client() as client:
        report = client.audit_verify(source=source.value, file=file)
    if as_json:
        print_json(asdict(report))
    else:
        rows = [_chain_row(c) for c in report.chains]
        if rows:
            table(None, ["chain", "node", "events", "first", "last", "result"], rows)
        if report.ok:
            data(f"audit trail intact: {report.events} events verified")
        else:
            reason = f": {report.reason}" if report.reason else ""
            chain = f" (chain {report.chain})" if report.chain else ""
            message(error_line(f"audit trail broken at event {report.first_bad}{chain}{reason}"))
    if not report.ok:
        raise typer.Exit(1)


def _chain_row(chain: dict[str, Any]) -> list[Any]:
    def place(key: str) -> str:
        at = chain.get(key)
        if not isinstance(at, dict):
            return "-"
        ts = at.get("ts")
        when = iso_us(int(ts)) if isinstance(ts, int) else "?"
        return f"{at.get('seq')} {when}"

    if chain.get("ok"):
        result = "ok"
    else:
        result = f"broken at {chain.get('first_bad')}: {chain.get('reason', '')}"
    return [
        chain.get("chain", ""),
        chain.get("node", ""),
        chain.get("events", 0),
        place("first"),
        place("last"),
        result,
    ]


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
