"""``keysafe.bounds`` and the timestamp edges: what fits is kept exactly, what does not
is an InvalidInput (a 400), never another exception (a 500)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keysafe.access.apikeys import parse_duration
from keysafe.bounds import (
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_DEPTH,
    MAX_SECONDS,
    check_text,
    check_versions,
    loads_bounded,
)
from keysafe.errors import InvalidInput
from keysafe.timefmt import MAX_US, MIN_US, iso_us, parse_iso_us

REFUSED = [
    b'"\\ud800"',
    b'{"\\udfff": 1}',
    b"NaN",
    b"1e999",
    b"-1e999",
    str(INT64_MAX + 1).encode(),
    str(INT64_MIN - 1).encode(),
    b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
    b"[" * 5000 + b"]" * 5000,
    b"{nope",
]
KEPT = [
    b'"caf\\u00e9 \\ud83d\\ude00"',
    str(INT64_MAX).encode(),
    str(INT64_MIN).encode(),
    b"1e308",
    b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH,
]


@pytest.mark.parametrize("raw", REFUSED)
def test_refused(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        loads_bounded(raw)


@pytest.mark.parametrize("raw", KEPT)
def test_kept_exactly(raw: bytes) -> None:
    assert loads_bounded(raw) == json.loads(raw)


@given(st.text(max_size=200))
def test_any_text_is_parsed_or_refused(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        loads_bounded(text.encode("utf-8", "surrogatepass"))


def test_text_and_versions() -> None:
    assert check_text("ok ☃") == "ok ☃"
    with pytest.raises(InvalidInput):
        check_text("\ud800")
    assert check_versions([1, 2]) == [1, 2]
    for bad in ([0], [2**31], [-(10**30)], list(range(1, 1002))):
        with pytest.raises(InvalidInput):
            check_versions(bad)


@pytest.mark.parametrize(
    "text", ["99999999999999999999d", "101000d", "1" + "0" * 5000 + "s", "²d", "-1d"]
)
def test_durations_are_bounded(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)


def test_duration_limit_is_accepted() -> None:
    assert parse_duration(f"{MAX_SECONDS}s") == MAX_SECONDS
    assert parse_duration("90d") == 90 * 86400


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        ("2024-02-29T12:00:00.000001+02:00", "2024-02-29T10:00:00.000001Z"),
        ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"),
    ],
)
def test_timestamps_round_trip_exactly(text: str, shown: str) -> None:
    assert iso_us(parse_iso_us(text)) == shown


@pytest.mark.parametrize(
    "text", ["9999-12-31T23:59:59.999999-14:00", "0001-01-01T00:00:00+14:00", "not a date"]
)
def test_timestamps_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_iso_us(text)


def test_stored_values_out_of_range_are_shown_at_the_edge() -> None:
    assert iso_us(MAX_US + 10**12) == "9999-12-31T23:59:59.999999Z"
    assert iso_us(MIN_US - 1) == "0001-01-01T00:00:00Z"
