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


def load(path: str | Path) -> dict[str, int | None]:
    """The fingerprints in the baseline at ``path``, each with how many copies it accepts
    (None: any number, as baselines written before counts were kept). Raises
    InvalidInput if unreadable."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read baseline {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise InvalidInput(f"baseline {path} is not valid JSON: {exc}") from exc
    entries = doc.get("findings") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise InvalidInput(f"baseline {path} has no 'findings' list")
    known: dict[str, int | None] = {}
    for e in entries:
        if isinstance(e, dict) and "fingerprint" in e:
            count = e.get("count")
            known[e["fingerprint"]] = count if isinstance(count, int) else None
    return known


def filter_new(findings: Sequence[Finding], known: dict[str, int | None]) -> list[Finding]:
    """The findings the baseline does not accept.

    A finding matches its entry whatever spelling of the scanned path made its name
    (``scan .``, ``scan ./a/``, ``scan a``, ``scan $PWD``), and an entry accepts as many
    copies of the secret as it counted, so a second copy pasted later is reported.
    """
    left = dict(known)
    new = []
    for f in findings:
        key = next((k for k in _fingerprints(f) if k in left), None)
        if key is None:
            new.append(f)
            continue
        count = left[key]
        if count is not None:
            if count <= 0:
                new.append(f)
                continue
            left[key] = count - 1
    return new


def _fingerprints(f: Finding) -> list[str]:
    """``f``'s fingerprint under each spelling of its path: as scanned, normalised,
    relative to the working directory, absolute."""
    import os

    from keysafe.scan.models import fingerprint

    path, _, member = f.file.partition("!")
    spellings = [os.path.normpath(path)]
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    spellings += [relative, absolute] if not relative.startswith("..") else [absolute]
    suffix = "!" + member if member else ""
    names = dict.fromkeys([f.file, *(p + suffix for p in spellings)])
    return [f.fingerprint, *(fingerprint(f.rule, n, f.secret) for n in names if n != f.file)]


def write(path: str | Path, findings: Sequence[Finding]) -> None:
    """Write a baseline accepting ``findings``. Raises InvalidInput if it cannot be written."""
    from datetime import UTC, datetime

    seen: dict[str, dict[str, object]] = {}
    counts: dict[str, int] = {}
    for f in findings:
        seen.setdefault(
            f.fingerprint,
            {"fingerprint": f.fingerprint, "rule": f.rule, "file": f.file, "line": f.line},
        )
        counts[f.fingerprint] = counts.get(f.fingerprint, 0) + 1
    for key, entry in seen.items():
        entry["count"] = counts[key]  # copies accepted; a later extra copy is new
    doc = {
        "version": VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "findings": sorted(seen.values(), key=lambda e: (str(e["file"]), str(e["fingerprint"]))),
    }
    try:
        Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write baseline {path}: {exc.strerror}") from exc
