"""Baselines: the findings a team has accepted, so later scans report only new ones.

A baseline stores fingerprints (see :func:`keysafe.scan.models.fingerprint`), never
secrets. The file layout is persisted: only ever add fields.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from keysafe.errors import InvalidInput
from keysafe.scan.models import Finding

VERSION = 1


def load(path: str | Path) -> set[str]:
    """The fingerprints in the baseline at ``path``. Raises InvalidInput if unreadable."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read baseline {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise InvalidInput(f"baseline {path} is not valid JSON: {exc}") from exc
    entries = doc.get("findings") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise InvalidInput(f"baseline {path} has no 'findings' list")
    return {e["fingerprint"] for e in entries if isinstance(e, dict) and "fingerprint" in e}


def filter_new(findings: Sequence[Finding], known: set[str]) -> list[Finding]:
    """The findings whose fingerprint is not in ``known``."""
    return [f for f in findings if f.fingerprint not in known]


def write(path: str | Path, findings: Sequence[Finding]) -> None:
    """Write a baseline accepting ``findings``. Raises InvalidInput if it cannot be written."""
    from datetime import UTC, datetime

    seen: dict[str, dict[str, object]] = {}
    for f in findings:
        seen.setdefault(
            f.fingerprint,
            {"fingerprint": f.fingerprint, "rule": f.rule, "file": f.file, "line": f.line},
        )
    doc = {
        "version": VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "findings": sorted(seen.values(), key=lambda e: (str(e["file"]), str(e["fingerprint"]))),
    }
    try:
        Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write baseline {path}: {exc.strerror}") from exc
