"""The compliance report as Markdown and as one self-contained HTML page.

The HTML page has no external asset (no script, font, stylesheet or image link): styles
are inline, charts are inline SVG, and a Content-Security-Policy meta tag forbids
loading anything. Every value is HTML-escaped, so a secret path or service name cannot
inject markup.
"""

from __future__ import annotations

from html import escape
from typing import Any

from keysafe.incident.compliance import Compliance
from keysafe.incident.report import md
from keysafe.timefmt import iso_us

FORMATS = ("json", "md", "html")

_SUMMARY_LABELS = {
    "secrets": "Secrets",
    "secrets_expired": "Secrets expired",
    "secrets_expiring": "Secrets expiring soon",
    "rotations_overdue": "Rotations overdue",
    "secrets_without_rotation": "Secrets without a rotation schedule",
    "keys": "Live API keys",
    "keys_without_expiry": "Keys without expiry",
    "keys_without_address_limit": "Keys without address limits",
    "keys_with_wildcard_policy": "Keys with wildcard policies",
    "keys_unused": "Keys unused",
    "keys_expiring": "Keys expiring soon",
    "tokens_without_expiry": "Tokens without expiry",
    "people_without_mfa": "People without MFA",
}


def _secret_row(s: dict[str, Any]) -> list[str]:
    rotation = s["rotation"]
    schedule = "none"
    if rotation is not None:
        schedule = f"{rotation['rotator']} every {rotation['every_days']} d"
        schedule += f", next {rotation['next_due']}"
    flags = [
        name
        for name, on in (
            ("expired", s["expired"]),
            ("expiring", s["expiring"]),
            ("rotation overdue", s["rotation_overdue"]),
        )
        if on
    ]
    return [
        s["path"],
        str(s["version"]),
        str(s["age_days"]),
        s["last_changed_at"] or "",
        s["expires_at"] or "never",
        schedule,
        ", ".join(flags),
    ]


_SECRET_HEADER = ["path", "version", "age (d)", "last change", "expires", "rotation", "flags"]
_KEY_HEADER = ["id", "service", "expires", "last used", "policies", "address limits", "risks"]


def _key_row(k: dict[str, Any]) -> list[str]:
    return [
        k["id"],
        k["service"],
        k["expires_at"] or "never",
        k["last_used_at"] or "never",
        ", ".join(k["policies"]),
        ", ".join(k["cidrs"]) or "any address",
        ", ".join(k["risks"]),
    ]


def to_markdown(report: Compliance) -> str:
    summary = report.summary()
    out = [
        "# keysafe compliance report",
        "",
        f"Generated {iso_us(report.generated_at)}; keys count as unused after "
        f"{report.unused_days} days, secrets as expiring within {report.expiring_days} days.",
        "",
        "## Summary",
        "",
        "| item | count |",
        "|---|---|",
    ]
    out += [f"| {_SUMMARY_LABELS[k]} | {v} |" for k, v in summary.items()]
    out += ["", "## Secrets", ""]
    out += _md_table(_SECRET_HEADER, [_secret_row(s) for s in report.secrets])
    out += ["", "## API keys", ""]
    out += _md_table(_KEY_HEADER, [_key_row(k) for k in report.keys])
    out += ["", "## Tokens without expiry", ""]
    out += _md_table(
        ["id", "mode", "prefix", "created"],
        [[t["id"], t["mode"], t["prefix"], t["created_at"] or ""] for t in report.tokens],
    )
    out += ["", "## Wildcard policies", ""]
    out += [f"- {md(p)}" for p in report.wildcard_policies] or ["None."]
    out += ["", "## People without MFA", ""]
    out += _people_md(report.people_without_mfa)
    return "\n".join(out) + "\n"


def _people_md(people: list[dict[str, Any]] | None) -> list[str]:
    if people is None:
        return ["Not available: this keysafe has no user accounts."]
    return [f"- {md(str(p.get('name', p.get('id', ''))))}" for p in people] or ["None."]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["None."]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]


# -- HTML -------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;font-size:.9rem}"
    "th{background:#f6f8fa}.charts{display:flex;gap:2rem;flex-wrap:wrap}"
    ".bad{color:#b42318;font-weight:600}"
)


def to_html(report: Compliance) -> str:
    summary = report.summary()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
        " style-src 'unsafe-inline'\">",
        "<title>keysafe compliance report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>keysafe compliance report</h1>",
        f"<p>Generated {escape(iso_us(report.generated_at) or '')}; keys count as unused after "
        f"{report.unused_days} days, secrets as expiring within {report.expiring_days} days.</p>",
        '<div class="charts">',
        bar_chart("Secrets by time since last change", report.age_histogram()),
        bar_chart("Live API keys by number of risk flags", report.keys_by_risk()),
        "</div>",
        "<h2>Summary</h2>",
        _html_table(
            ["item", "count"],
            [[_SUMMARY_LABELS[k], str(v)] for k, v in summary.items()],
        ),
        "<h2>Secrets</h2>",
        _html_table(_SECRET_HEADER, [_secret_row(s) for s in report.secrets]),
        "<h2>API keys</h2>",
        _html_table(_KEY_HEADER, [_key_row(k) for k in report.keys]),
        "<h2>Tokens without expiry</h2>",
        _html_table(
            ["id", "mode", "prefix", "created"],
            [[t["id"], t["mode"], t["prefix"], t["created_at"] or ""] for t in report.tokens],
        ),
        "<h2>Wildcard policies</h2>",
        _html_list(report.wildcard_policies),
        "<h2>People without MFA</h2>",
    ]
    people = report.people_without_mfa
    if people is None:
        parts.append("<p>Not available: this keysafe has no user accounts.</p>")
    else:
        parts.append(_html_list([str(p.get("name", p.get("id", ""))) for p in people]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_list(items: list[str]) -> str:
    if not items:
        return "<p>None.</p>"
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def bar_chart(title: str, bars: list[tuple[str, int]], *, width: int = 420) -> str:
    """A horizontal bar chart as inline SVG (labels and title escaped)."""
    row, label_w, pad = 26, 130, 8
    height = pad * 2 + 24 + row * max(len(bars), 1)
    peak = max((n for _, n in bars), default=0) or 1
    span = width - label_w - 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(title)}">',
        f'<text x="{pad}" y="{pad + 14}" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for i, (label, count) in enumerate(bars):
        y = pad + 24 + i * row
        w = round(span * count / peak)
        out += [
            f'<text x="{pad}" y="{y + 16}" font-size="12">{escape(label)}</text>',
            f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="16" fill="#3b6fd4"/>',
            f'<text x="{label_w + w + 6}" y="{y + 16}" font-size="12">{int(count)}</text>',
        ]
    if not bars:
        out.append(f'<text x="{pad}" y="{pad + 44}" font-size="12">nothing to show</text>')
    out.append("</svg>")
    return "".join(out)
