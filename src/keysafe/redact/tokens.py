"""Candidate substrings of a log line: where a secret value could sit.

Values are usually whole tokens (``password=hunter2-xyz``, ``"token": "ks_..."``); a
line is split on the characters that delimit tokens in logs, and each token (and each
``key=value`` half) is a candidate. A value that itself contains such a character is
found by sliding a window of its length over the line instead (slower, rare).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_SPLIT = re.compile(r"""[\s"'`,;=:&|()\[\]{}<>]+""")


def has_separator(value: str) -> bool:
    return _SPLIT.search(value) is not None


def tokens(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each token of ``text``."""
    start = 0
    for match in _SPLIT.finditer(text):
        if match.start() > start:
            yield start, match.start()
        start = match.end()
    if start < len(text):
        yield start, len(text)


def windows(text: str, length: int) -> Iterator[tuple[int, int]]:
    """(start, end) of every substring of ``text`` of ``length`` characters."""
    for start in range(len(text) - length + 1):
        yield start, start + length
