"""Timestamps are stored as unix microseconds and shown as RFC 3339 UTC strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The instants a timestamp may name: what ``datetime`` can show in UTC.
MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _MICROSECOND

# Below 2**52 µs (year 2112) ``value / 1e6`` rounds back to the exact microsecond.
_FLOAT_EXACT_US = 2**52


def iso_us(value: int | None) -> str | None:
    """``value`` (unix microseconds) as RFC 3339 UTC, exactly (integer arithmetic, so
    the last microsecond of year 9999 does not round into year 10000); values outside
    what ``datetime`` can show are shown at the nearest edge."""
    if value is None:
        return None
    if 0 <= value < _FLOAT_EXACT_US:  # the common case: a float is exact enough, and fast
        shown = datetime.fromtimestamp(value / 1_000_000, tz=UTC)
    else:
        shown = _EPOCH + min(max(value, MIN_US), MAX_US) * _MICROSECOND
    return shown.isoformat().replace("+00:00", "Z")


def parse_iso_us(text: str) -> int:
    """RFC 3339 / ISO 8601 date or date-time to unix microseconds (UTC if no zone).

    Raises ValueError for text that is not a date, and for an instant that lies outside
    years 1 to 9999 once moved to UTC (``0001-01-01T00:00:00+14:00``).
    """
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Subtracting aware datetimes applies the offsets without building an out-of-range
    # UTC datetime (which ``timestamp()`` and ``astimezone`` would, and then overflow).
    value = (parsed - _EPOCH) // _MICROSECOND
    if not MIN_US <= value <= MAX_US:
        raise ValueError(f"{text!r} lies outside years 1 to 9999 (UTC)")
    return value
