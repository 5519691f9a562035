"""Parsing of human durations (``90s``, ``15m``, ``1h30m``, ``7d``) and dates."""

from __future__ import annotations

import re

from keysafe.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> int:
    """Seconds in ``text``; a bare number is seconds. Raises InvalidInput."""
    text = text.strip().lower()
    if text.isdigit():
        seconds = int(text)
    else:
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise InvalidInput(f"invalid duration {text!r}: use forms like 90s, 15m, 1h30m, 7d")
        seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise InvalidInput(f"invalid duration {text!r}: must be positive")
    return seconds


def parse_date(text: str) -> str:
    """An ISO 8601 timestamp (UTC when no zone is given) from a date or datetime."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"invalid date {text!r}: use YYYY-MM-DD or an ISO 8601 time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat()
