"""Value types shared by the scanner: findings and where they were found."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Location:
    """Where a piece of text came from: a file, a git change, or stdin."""

    path: str
    commit: str | None = None
    author: str | None = None
    date: str | None = None
    # Maps line n (1-based, in the scanned text) to the line in the real file, for
    # git diffs where only added lines are scanned.
    line_map: tuple[int, ...] | None = None
    line_offset: int = 0
    # Characters of the first scanned line that came before this text (a long line cut
    # into chunks), added to columns on that line.
    column_offset: int = 0

    def real_line(self, line: int) -> int:
        """The line in the original file for line ``line`` of the scanned text."""
        if self.line_map is not None and 0 < line <= len(self.line_map):
            return self.line_map[line - 1]
        return line + self.line_offset


@dataclass(frozen=True, slots=True)
class Match:
    """A raw rule hit inside one text, before it is placed in a file."""

    rule_id: str
    start: int
    end: int
    secret: str
    generic: bool = False


@dataclass(slots=True)
class Finding:
    """One reported secret."""

    rule: str
    description: str
    file: str
    line: int
    column: int
    secret: str
    severity: str = "high"
    commit: str | None = None
    author: str | None = None
    date: str | None = None
    end_column: int = 0
    fingerprint: str = field(default="")
    # With --verify: "live", "revoked" or "unknown"; None when not asked.
    verification: str | None = None

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.rule, self.file, self.secret)


def fingerprint(rule: str, path: str, secret: str) -> str:
    """The stable identity of a finding, stored in baselines.

    Persisted in users' baseline files: never change this formula. It leaves out the
    line and the commit on purpose, so that editing code above a known secret, or the
    same secret appearing in many commits, keeps the same identity.
    """
    digest = hashlib.sha256(f"{rule}\x00{path}\x00{secret}".encode("utf-8", "replace"))
    return digest.hexdigest()


def redact(secret: str) -> str:
    """``secret`` masked, keeping enough to tell two apart: its prefix (up to a
    provider's ``ghp_``/``sk_live_``, else 4 characters) and, when at least 20 long,
    its last 4. Short values are masked whole."""
    if len(secret) <= 8:
        return "*" * len(secret)
    if len(secret) < 16:
        return secret[:2] + "*" * (len(secret) - 2)
    cut = max(secret.rfind("_", 0, 12), secret.rfind("-", 0, 12)) + 1
    keep = cut if 3 <= cut <= len(secret) // 2 else 4
    tail = secret[-4:] if len(secret) >= 20 else ""
    return secret[:keep] + "*" * min(len(secret) - keep - len(tail), 16) + tail
