from __future__ import annotations

import pytest

from keysafe.cli.durations import parse_date, parse_duration
from keysafe.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("7d", 604800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "1x", "h", "1h 30m", "-5m", "0s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)


def test_dates_default_to_utc() -> None:
    assert parse_date("2027-01-31") == "2027-01-31T00:00:00+00:00"
    assert parse_date("2027-01-31T10:00:00+02:00") == "2027-01-31T10:00:00+02:00"
    with pytest.raises(InvalidInput):
        parse_date("next tuesday")
