"""Timestamps are stored as unix microseconds and shown as RFC 3339 UTC strings."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_us(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def parse_iso_us(text: str) -> int:
    """RFC 3339 / ISO 8601 date or date-time to unix microseconds (UTC if no zone)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)
