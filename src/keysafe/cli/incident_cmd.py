"""``keysafe incident ...`` and ``keysafe report``: incident response and compliance.

``incident open`` exits 1 when a step failed (a leaked credential still verifies, a
rotation failed); steps left to a person are listed and do not fail the command.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from keysafe.cli.context import state
from keysafe.cli.output import cell, data, message, print_json, table
from keysafe.errors import InvalidInput

JsonOpt = Annotated[bool, typer.Option("--json", help="Stable JSON output for programs.")]
OutOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]

app = typer.Typer(
    help="Open, follow and report incidents for leaked keys, tokens, secrets and leases.",
    no_args_is_help=True,
)

# ``keysafe scan`` masks secrets unless --show-secrets: a masked value cannot be matched.
_REDACTED = re.compile(r"^.{0,4}\*+$")


def read_findings(path: Path) -> list[dict[str, Any]]:
    """Findings from ``keysafe scan --format json --show-secrets`` output (or a bare list).

    Raises InvalidInput for an unreadable file, another shape, or findings whose secrets
    are masked (the scan must be run with --show-secrets for them to be recognised)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not JSON (use keysafe scan --format json)") from exc
    raw = doc.get("findings") if isinstance(doc, dict) else doc
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise InvalidInput(f'{path} holds no "findings" list (use keysafe scan --format json)')
    findings = []
    masked = 0
    for f in raw:
        secret = f.get("secret")
        if not isinstance(secret, str) or not secret:
            continue
        if _REDACTED.match(secret):
            masked += 1
            continue
        line = f.get("line")
        findings.append(
            {
                "secret": secret,
                "rule": str(f.get("rule", ""))[:128],
                "file": str(f.get("file", ""))[:1024],
                "line": line if isinstance(line, int) and line >= 0 else 0,
            }
        )
    if masked:
        message(
            f"keysafe: skipped {masked} masked finding(s): "
            "run keysafe scan --format json --show-secrets to include them"
        )
    if not findings:
        raise InvalidInput(f"{path} holds no usable finding (secrets masked or missing)")
    return findings


def _steps_table(steps: Sequence[Mapping[str, Any]]) -> None:
    table(
        None,
        ["time", "phase", "action", "target", "outcome", "detail"],
        [
            (s["time"], s["phase"], s["action"], s["target"], s["outcome"], s["detail"])
            for s in steps
        ],
    )


@app.command("open")
def incident_open(
    ctx: typer.Context,
    key: Annotated[list[str] | None, typer.Option("--key", help="API key id (repeatable).")] = None,
    token: Annotated[
        list[str] | None, typer.Option("--token", help="Token id (repeatable).")
    ] = None,
    secret: Annotated[
        list[str] | None, typer.Option("--secret", help="Secret path (repeatable).")
    ] = None,
    lease: Annotated[
        list[str] | None, typer.Option("--lease", help="Lease id (repeatable).")
    ] = None,
    from_scan: Annotated[
        Path | None,
        typer.Option("--from-scan", help="Findings of keysafe scan --format json --show-secrets."),
    ] = None,
    title: Annotated[str, typer.Option("--title", help="A short title.")] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Open an incident and run the playbook: contain, eradicate, verify, record, report."""
    findings = read_findings(from_scan) if from_scan is not None else []
    with state(ctx).client() as client:
        doc = client.open_incident(
            keys=key or [],
            tokens=token or [],
            secrets=secret or [],
            leases=lease or [],
            findings=findings,
            title=title,
            dry_run=dry_run,
        )
    if as_json:
        print_json(doc)
    elif dry_run:
        message(f"dry run: {len(doc['items'])} item(s); nothing was changed")
        for note in doc["notes"]:
            message(f"  {note['target']}: {note['detail']}")
        _steps_table(doc["plan"])
    else:
        message(f"incident {doc['id']} opened: {doc['title']}")
        _steps_table(doc["steps"])
        todo = [s for s in doc["steps"] if s["outcome"] in ("manual", "failed", "unavailable")]
        for s in todo:
            message(f"to do: {s['action']} {s['target']}: {s['detail']}")
    if not dry_run and any(s["outcome"] == "failed" for s in doc["steps"]):
        raise typer.Exit(1)


@app.command("list")
def incident_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="open or closed")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Incidents, newest first."""
    with state(ctx).client() as client:
        found = client.list_incidents(status)
    if as_json:
        print_json(found)
        return
    table(
        None,
        ["id", "status", "opened", "by", "items", "title"],
        [
            (i["id"], i["status"], i["opened_at"], i["opened_by"], i["items"], i["title"])
            for i in found
        ],
    )


@app.command("show")
def incident_show(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """The incident, its steps and its timeline (steps plus audit events)."""
    with state(ctx).client() as client:
        doc = client.show_incident(incident_id)
    if as_json:
        print_json(doc)
        return
    data(f"{doc['id']}: {cell(doc['title'])} ({doc['status']}, opened {doc['opened_at']})")
    for item in doc["items"]:
        data(f"  {item['kind']} {item['ref']}  {cell(item['note'])}")
    table(
        None,
        ["time", "kind", "what", "target", "by", "outcome", "detail"],
        [
            (e["time"], e["kind"], e["what"], e["target"], e["actor"], e["outcome"], e["detail"])
            for e in doc["timeline"]
        ],
    )


@app.command("report")
def incident_report(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    fmt: Annotated[str, typer.Option("--format", help="md or json")] = "md",
    output: OutOpt = None,
) -> None:
    """What leaked, what was done, when and by whom."""
    if fmt not in ("md", "json"):
        raise InvalidInput("--format is md or json")
    with state(ctx).client() as client:
        text = client.incident_report(incident_id, fmt)
    _emit(text, output)


@app.command("close")
def incident_close(
    ctx: typer.Context, incident_id: Annotated[str, typer.Argument(metavar="ID")]
) -> None:
    """Close an open incident (exit 4 if it is closed already)."""
    with state(ctx).client() as client:
        client.close_incident(incident_id)
    message(f"incident {incident_id} closed")


def report(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="json, md or html")] = "md",
    output: OutOpt = None,
    unused_days: Annotated[
        int, typer.Option("--unused-days", help="Keys unused this long are flagged.")
    ] = 30,
    expiring_days: Annotated[
        int, typer.Option("--expiring-days", help="Secrets expiring this soon are flagged.")
    ] = 30,
) -> None:
    """Compliance report: secret ages, overdue rotations, expiring items, risky keys,
    tokens without expiry, people without MFA."""
    if fmt not in ("json", "md", "html"):
        raise InvalidInput("--format is json, md or html")
    with state(ctx).client() as client:
        text = client.compliance_report(fmt, unused_days=unused_days, expiring_days=expiring_days)
    _emit(text, output)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        data(text, newline=not text.endswith("\n"))
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {output}: {exc.strerror}") from exc
    message(f"written to {output}")


def register(root: typer.Typer) -> None:
    """Add ``incident`` and ``report`` to the ``keysafe`` application."""
    root.add_typer(app, name="incident")
    root.command("report")(report)
