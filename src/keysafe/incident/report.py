"""Incident reports: what leaked, what was done, when and by whom (Markdown and JSON).

Reports hold ids, paths, times, actors and outcomes, never a value. Markdown table cells
are escaped so that a file path or an audit detail cannot break the table or inject
markup into a rendered page.
"""

from __future__ import annotations

from typing import Any

from keysafe.incident.models import FAILED, MANUAL, UNAVAILABLE, Incident, TimelineEntry
from keysafe.timefmt import iso_us

FORMATS = ("md", "json")


def report_json(
    incident: Incident, timeline: list[TimelineEntry], generated_at: int
) -> dict[str, Any]:
    """The stable JSON report: the incident, its follow-ups and its timeline."""
    doc = incident.as_json()
    doc["generated_at"] = iso_us(generated_at)
    doc["follow_ups"] = [s.as_json() for s in incident.steps if s.outcome in _OPEN_OUTCOMES]
    doc["timeline"] = [e.as_json() for e in timeline]
    return doc


_OPEN_OUTCOMES = (MANUAL, FAILED, UNAVAILABLE)


def report_markdown(incident: Incident, timeline: list[TimelineEntry], generated_at: int) -> str:
    """A Markdown report a person can paste into a ticket or a post-mortem."""
    out: list[str] = [
        f"# Incident {md(incident.id)}: {md(incident.title)}",
        "",
        f"- Status: **{md(incident.status)}**",
        f"- Opened: {iso_us(incident.opened_at)} by {md(incident.opened_by)}"
        f" (source: {md(incident.source)})",
    ]
    if incident.closed_at is not None:
        out.append(f"- Closed: {iso_us(incident.closed_at)} by {md(incident.closed_by or '')}")
    out.append(f"- Report generated: {iso_us(generated_at)}")
    out += ["", "## What leaked", ""]
    if incident.items:
        out += _table(
            ["kind", "id or path", "note"], [[i.kind, i.ref, i.note] for i in incident.items]
        )
    else:
        out.append("Nothing stored in keysafe matched what was reported.")
    out += ["", "## What was done", ""]
    out += _table(
        ["time", "phase", "action", "target", "by", "outcome", "detail"],
        [
            [iso_us(s.ts) or "", s.phase, s.action, s.target, s.actor, s.outcome, s.detail]
            for s in incident.steps
        ],
    )
    follow = [s for s in incident.steps if s.outcome in _OPEN_OUTCOMES]
    out += ["", "## Still to do", ""]
    if follow:
        out += [
            f"- [ ] {md(s.action)} {md(s.target)}: {md(s.detail)} ({s.outcome})" for s in follow
        ]
    else:
        out.append("Nothing: every step completed.")
    out += ["", "## Timeline", ""]
    out += _table(
        ["time", "kind", "what", "target", "by", "outcome", "detail"],
        [
            [iso_us(e.ts) or "", e.kind, e.what, e.target, e.actor, e.outcome, e.detail]
            for e in timeline
        ],
    )
    return "\n".join(out) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return lines


_MD_SPECIAL = {
    "\\": "\\\\",
    "|": "\\|",
    "`": "\\`",
    "*": "\\*",
    "_": "\\_",
    "<": "&lt;",
    ">": "&gt;",
    "[": "\\[",
    "]": "\\]",
}


def md(text: str) -> str:
    """``text`` safe inside a Markdown table cell: one line, markup characters escaped,
    HTML angle brackets as entities."""
    flat = " ".join(str(text).split())
    return "".join(_MD_SPECIAL.get(c, c) for c in flat)
