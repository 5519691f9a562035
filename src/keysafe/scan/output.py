"""Render findings as text (for people), JSON (for programs) or SARIF 2.1.0 (for code hosts).

Secrets are redacted unless the caller asks for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from keysafe.scan.models import Finding, redact
from keysafe.scan.rules.base import Rule

FORMATS = ("text", "json", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"high": "error", "medium": "warning", "low": "note"}


def render(
    fmt: str,
    findings: Sequence[Finding],
    rules: Sequence[Rule],
    *,
    show_secrets: bool = False,
    version: str = "0",
) -> str:
    """``findings`` rendered in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        return to_json(findings, show_secrets=show_secrets)
    if fmt == "sarif":
        return to_sarif(findings, rules, show_secrets=show_secrets, version=version)
    return to_text(findings, show_secrets=show_secrets)


def _secret(finding: Finding, show: bool) -> str:
    return finding.secret if show else redact(finding.secret)


def to_text(findings: Sequence[Finding], *, show_secrets: bool = False) -> str:
    """One line per finding, ``file:line:column: rule: secret``, plus git context."""
    lines = []
    for f in findings:
        where = f"{f.file}:{f.line}:{f.column}"
        line = f"{where}: {f.rule}: {_secret(f, show_secrets)}"
        if f.verification:
            line += f" [{f.verification}]"
        if f.commit:
            line += f"  (commit {f.commit[:12]}, {f.author}, {f.date})"
        lines.append(line)
    if findings:
        noun = "secret" if len(findings) == 1 else "secrets"
        lines.append(f"{len(findings)} {noun} found")
    return "\n".join(lines) + ("\n" if lines else "")


def finding_dict(f: Finding, *, show_secrets: bool = False) -> dict[str, Any]:
    """The stable JSON shape of one finding."""
    doc: dict[str, Any] = {
        "rule": f.rule,
        "description": f.description,
        "file": f.file,
        "line": f.line,
        "column": f.column,
        "end_column": f.end_column,
        "severity": f.severity,
        "secret": _secret(f, show_secrets),
        "fingerprint": f.fingerprint,
    }
    if f.commit:
        doc.update(commit=f.commit, author=f.author, date=f.date)
    if f.verification:
        doc["verification"] = f.verification
    return doc


def to_json(findings: Sequence[Finding], *, show_secrets: bool = False) -> str:
    """``{"findings": [...], "count": n}``."""
    body = {
        "findings": [finding_dict(f, show_secrets=show_secrets) for f in findings],
        "count": len(findings),
    }
    return json.dumps(body, indent=2) + "\n"


def to_sarif(
    findings: Sequence[Finding],
    rules: Sequence[Rule],
    *,
    show_secrets: bool = False,
    version: str = "0",
) -> str:
    """A SARIF 2.1.0 log with one run; rules listed once, results pointing at them."""
    index = {r.id: i for i, r in enumerate(rules)}
    descriptors = [
        {
            "id": r.id,
            "name": "".join(part.capitalize() for part in r.id.split("-")),
            "shortDescription": {"text": r.description},
            "fullDescription": {"text": f"{r.description} found in the scanned text."},
            "defaultConfiguration": {"level": _LEVEL.get(r.severity, "warning")},
            "properties": {"tags": ["security", "secret"]},
        }
        for r in rules
    ]
    results = []
    for f in findings:
        region: dict[str, Any] = {"startLine": f.line, "startColumn": f.column}
        if f.end_column > f.column:
            region["endColumn"] = f.end_column
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "level": _LEVEL.get(f.severity, "warning"),
            "message": {"text": f"{f.description}: {_secret(f, show_secrets)}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.file)},
                        "region": region,
                    }
                }
            ],
            "partialFingerprints": {"keysafe/v1": f.fingerprint},
        }
        if f.rule in index:
            result["ruleIndex"] = index[f.rule]
        properties: dict[str, Any] = {}
        if f.commit:
            properties.update(commit=f.commit, author=f.author, date=f.date)
        if f.verification:
            properties["verification"] = f.verification
        if properties:
            result["properties"] = properties
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "keysafe",
                        "informationUri": "https://github.com/keysafe/keysafe",
                        "version": version,
                        "rules": descriptors,
                    }
                },
                "results": results,
                # Columns count Python characters (code points), not UTF-16 units.
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _uri(path: str) -> str:
    from urllib.parse import quote

    return quote(path.replace("\\", "/").removeprefix("./"), safe="/!:")
