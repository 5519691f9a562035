"""Candidate substrings of a log line: where a secret value could sit.

Values are usually whole tokens (``password=hunter2-xyz``, ``"token": "ks_..."``); a
line is split on the characters that delimit tokens in logs, and each token (and each
``key=value`` half) is a candidate. A value that itself contains such a character is
found from its first token: where that token is, the value's length is compared.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Not "/" or "+": base64 values carry them, and would all need the slow window search.
_SPLIT = re.compile(r"""[\s"'`,;=:&|?#@()\[\]{}<>]+""")


def tokens(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each token of ``text``."""
    start = 0
    for match in _SPLIT.finditer(text):
        if match.start() > start:
            yield start, match.start()
        start = match.end()
    if start < len(text):
        yield start, len(text)


def first_token(value: str) -> str:
    """The part of ``value`` before its first delimiter (``value`` when it has none)."""
    match = _SPLIT.search(value)
    return value if match is None else value[: match.start()]
