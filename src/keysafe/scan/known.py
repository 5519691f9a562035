"""``--known``: find values actually stored in keysafe, whatever their format.

The server hands out one-time-keyed digests (HMAC-SHA256) of the values the caller may
read; this side hashes candidate strings from the scanned text with the same key and
compares. No plaintext leaves the server and no scanned text leaves this machine.

Candidates are the tokens of each line under two tokenisations: split on whitespace
and quotes only (a value with ``:`` or ``@`` inside stays whole), and split on the usual
assignment and URL punctuation as well (a password inside ``postgres://u:pw@host``).
Only tokens whose length equals a stored value's length are hashed.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from keysafe.scan.models import Match
from keysafe.scan.rules.base import Rule

RULE_ID = "keysafe-known-secret"
# Listed in reports (SARIF rules) but never run as a regex: matching is by digest.
KNOWN_RULE = Rule(
    id=RULE_ID,
    description="A value stored in keysafe (found by keyed digest, whatever its format)",
    regex=re.compile(r"(?!)"),
)
# Shorter stored values ("true", "8080") would match ordinary text.
MIN_LENGTH = 8

_COARSE = re.compile(r"[^\s'\"`]+")
_FINE = re.compile(r"[^\s'\"`=:,;@/()<>\[\]{}]+")


@dataclass(frozen=True, slots=True)
class KnownSecret:
    path: str
    version: int
    length: int


@dataclass(frozen=True, slots=True)
class KnownDigests:
    """What the server sent: picklable, so scan workers can use it."""

    key: bytes
    by_digest: dict[bytes, KnownSecret]
    lengths: frozenset[int]

    @classmethod
    def from_reply(cls, doc: Mapping[str, object], min_length: int = MIN_LENGTH) -> KnownDigests:
        """Build from ``POST /api/v1/scan/known-digests``; raises ValueError if malformed."""
        if doc.get("algorithm") != "hmac-sha256":
            raise ValueError(f"unsupported digest algorithm {doc.get('algorithm')!r}")
        key = base64.b64decode(str(doc["key"]))
        entries = doc.get("secrets")
        if not isinstance(entries, list):
            raise ValueError("the reply has no list of secrets")
        by_digest: dict[bytes, KnownSecret] = {}
        for entry in entries:
            length = int(entry["length"])
            if length < min_length:
                continue
            by_digest[bytes.fromhex(entry["digest"])] = KnownSecret(
                str(entry["path"]), int(entry["version"]), length
            )
        return cls(key, by_digest, frozenset(s.length for s in by_digest.values()))

    def __len__(self) -> int:
        return len(self.by_digest)

    def find(self, text: str) -> list[tuple[Match, KnownSecret]]:
        """Every stored value found in ``text``, once per position."""
        if not self.by_digest:
            return []
        # Stored lengths are in bytes; a token never has more characters than bytes.
        longest = max(self.lengths)
        seen: set[tuple[int, int]] = set()
        hits: list[tuple[Match, KnownSecret]] = []
        for pattern in (_COARSE, _FINE):
            for token in pattern.finditer(text):
                start, end = token.span()
                if end - start > longest or (start, end) in seen:
                    continue
                value = token.group().encode("utf-8", "surrogateescape")
                if len(value) not in self.lengths:
                    continue
                digest = hmac.digest(self.key, value, "sha256")
                known = self.by_digest.get(digest)
                if known is not None:
                    seen.add((start, end))
                    hits.append((Match(RULE_ID, start, end, token.group()), known))
        hits.sort(key=lambda hit: hit[0].start)
        return hits
