"""Durations as the SDK accepts them: ``timedelta``, seconds, or text like ``90d``.

Every SDK method that takes a duration takes any of these; the server is sent whole
seconds (or ``"<n>s"`` where its field is text), so ``timedelta(days=90)``, ``7776000``
and ``"90d"`` are the same request.
"""

from __future__ import annotations

import re
from datetime import timedelta

from keysafe.errors import InvalidInput

Duration = timedelta | int | float | str

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")


def seconds(value: Duration, *, allow_zero: bool = False) -> int:
    """Whole seconds in ``value``; raises InvalidInput for a malformed or negative one
    (or zero unless ``allow_zero``)."""
    if isinstance(value, bool):
        raise InvalidInput(f"invalid duration {value!r}")
    if isinstance(value, timedelta):
        total = int(value.total_seconds())
    elif isinstance(value, (int, float)):
        total = int(value)
    else:
        total = _parse(value)
    if total < 0 or (total == 0 and not allow_zero):
        raise InvalidInput(f"invalid duration {value!r}: must be positive")
    return total


def as_text(value: Duration, *, allow_zero: bool = False) -> str:
    """``value`` as the text the server's duration fields read (``"<n>s"``)."""
    return f"{seconds(value, allow_zero=allow_zero)}s"


def _parse(text: str) -> int:
    clean = text.strip().lower()
    if clean.isascii() and clean.isdigit():
        return int(clean)
    parts = _PART.findall(clean)
    if not parts or "".join(n + u for n, u in parts) != clean:
        raise InvalidInput(f"invalid duration {text[:64]!r}: use forms like 90s, 15m, 1h30m, 90d")
    return sum(int(n) * _UNITS[u] for n, u in parts)
