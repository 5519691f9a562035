"""Detectors, table-driven, and the robust statistics behind them (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keysafe.audit.models import AuditEvent
from keysafe.monitor.anomaly import (
    DETECTORS,
    KIND_DENIED_BURST,
    KIND_NEW_NETWORK,
    KIND_NEW_PATH,
    KIND_NEW_SOURCE,
    KIND_OFF_HOURS,
    KIND_RATE_SPIKE,
    AnomalyDetector,
    Finding,
)
from keysafe.monitor.baseline import (
    WARMUP_SECONDS,
    Baseline,
    hour_of_week,
    mad,
    median,
    network_of,
    robust_scale,
    robust_z,
    spike_threshold,
)

MIN = 60_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
# Monday 2026-01-05 00:00 UTC.
MONDAY = 1_767_571_200 * 1_000_000


def event(
    ts: int,
    *,
    actor: str = "key_a",
    source: str = "10.0.0.5",
    operation: str = "secret:read",
    path: str = "app/DB",
    outcome: str = "ok",
) -> AuditEvent:
    return AuditEvent(ts, "r", actor, source, operation, path, outcome)


def warmed_detector() -> tuple[AnomalyDetector, int]:
    """key_a: 10 weekdays, 9:00-17:00 UTC, 3 reads a minute from 10.0.0.5/6, two paths."""
    det = AnomalyDetector()
    ts = MONDAY
    for day in range(14):
        if day % 7 >= 5:
            continue
        for minute in range(9 * 60, 17 * 60, 2):
            at = MONDAY + day * DAY + minute * MIN
            for i in range(3):
                src = "10.0.0.5" if i else "10.0.0.6"
                path = "app/DB" if i % 2 else "app/API"
                found = det.observe(event(at + i * 1_000_000, source=src, path=path))
                assert found == [], found
            ts = at
    return det, ts


_STATE: dict[str, bytes] = {}


def trained_copy() -> AnomalyDetector:
    """A fresh detector loaded from the trained baseline (a persistence round trip)."""
    if not _STATE:
        det, ts = warmed_detector()
        assert det.baselines["key_a"].warmed(ts)
        _STATE["key_a"] = det.baselines["key_a"].to_bytes()
    det = AnomalyDetector()
    det.load("key_a", _STATE["key_a"])
    return det


def _next_day(hour: int) -> int:
    """A business day after training at ``hour`` UTC (Monday of the third week)."""
    return MONDAY + 14 * DAY + hour * HOUR


# (what happens, the events, the kinds expected from the last event)
CASES: list[tuple[str, list[dict[str, object]], set[str]]] = [
    ("usual read", [{}], set()),
    ("new network", [{"source": "203.0.113.7"}], {KIND_NEW_NETWORK}),
    ("new address in a known /24", [{"source": "10.0.0.77"}], {KIND_NEW_SOURCE}),
    ("new IPv6 network", [{"source": "2001:db8:1::5"}], {KIND_NEW_NETWORK}),
    ("first read of a path", [{"path": "app/ROOT_KEY"}], {KIND_NEW_PATH}),
    (
        "a write of a new path is not a read",
        [{"path": "app/NEW", "operation": "secret:write"}],
        set(),
    ),
    ("a denied read of a new path", [{"path": "app/ROOT_KEY", "outcome": "denied"}], set()),
    ("night use", [{"hour": 3}], {KIND_OFF_HOURS}),
    ("an hour early is near its hours", [{"hour": 8}], set()),
    ("rate spike", [{}] * 60, {KIND_RATE_SPIKE}),
    ("twice the usual rate", [{}] * 6, set()),
    ("denied burst", [{"outcome": "denied", "path": "other/X"}] * 12, {KIND_DENIED_BURST}),
    ("a few denials", [{"outcome": "denied", "path": "other/X"}] * 3, set()),
]


@pytest.mark.parametrize(("name", "specs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_detectors(name: str, specs: list[dict[str, object]], expected: set[str]) -> None:
    det = trained_copy()
    found: list[Finding] = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        hour = int(spec.pop("hour", 11))  # type: ignore[call-overload]
        at = _next_day(hour) + i * 100_000
        found.extend(det.observe(event(at, **spec)))  # type: ignore[arg-type]
    assert {f.kind for f in found} == expected, (name, found)
    for f in found:
        assert f.actor == "key_a"
        assert f.evidence


def test_nothing_fires_during_warm_up() -> None:
    det = AnomalyDetector()
    t0 = MONDAY + 10 * HOUR
    for i in range(200):
        assert det.observe(event(t0 + i * MIN, source=f"198.51.{i}.1", path=f"p/{i}")) == []
    # Past the event and minute counts but not yet three days old: still silent.
    assert not det.baselines["key_a"].warmed(t0 + WARMUP_SECONDS * 1_000_000 - 1)
    assert det.observe(event(t0 + 3 * HOUR, source="192.0.2.1", path="q/new")) == []


def test_unjudged_actors_have_no_baseline() -> None:
    det = AnomalyDetector()
    assert det.observe(event(MONDAY, actor="anonymous")) == []
    assert det.observe(event(MONDAY, actor="system")) == []
    assert det.baselines == {}


def test_a_finding_fires_once_per_minute_or_hour() -> None:
    det = trained_copy()
    at = _next_day(3)
    kinds = [f.kind for i in range(100) for f in det.observe(event(at + i * 10_000))]
    assert kinds.count(KIND_OFF_HOURS) == 1
    assert kinds.count(KIND_RATE_SPIKE) == 1


def test_a_pool_of_addresses_stays_silent() -> None:
    det = trained_copy()
    at = _next_day(11)
    kinds = [
        f.kind
        for i in range(20)
        for f in det.observe(event(at + i * MIN, source=f"10.0.0.{100 + i}"))
    ]
    # Eight new addresses in the known /24 are reported, then it is a pool.
    assert kinds == [KIND_NEW_SOURCE] * 6


def test_every_detector_is_listed() -> None:
    assert len(DETECTORS) == 6


def test_baseline_round_trip() -> None:
    det = trained_copy()
    b = det.baselines["key_a"]
    again = Baseline.from_bytes(b.to_bytes())
    assert again.to_bytes() == b.to_bytes()
    assert again.rate_limit == b.rate_limit


@pytest.mark.parametrize(
    ("source", "network"),
    [
        ("10.1.2.3", "10.1.2.0/24"),
        ("2001:db8:aa:bb::1", "2001:db8:aa::/48"),
        ("::ffff:10.1.2.3", "10.1.2.0/24"),
        ("unknown", "unknown"),
    ],
)
def test_network_of(source: str, network: str) -> None:
    assert network_of(source) == network


def test_hour_of_week_starts_on_monday() -> None:
    assert hour_of_week(MONDAY) == 0
    assert hour_of_week(MONDAY + 6 * DAY + 23 * HOUR) == 167
    assert hour_of_week(MONDAY + 7 * DAY) == 0


# -- robust statistics ----------------------------------------------------------------

counts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=200)


@given(counts)
def test_median_lies_within_the_values(values: list[int]) -> None:
    assert min(values) <= median(values) <= max(values)
    assert mad(values) >= 0


@given(counts, st.integers(min_value=-1000, max_value=1000))
def test_mad_ignores_a_shift(values: list[int], shift: int) -> None:
    assert math.isclose(mad([v + shift for v in values]), mad(values))
    assert math.isclose(median([v + shift for v in values]), median(values) + shift)


@given(counts)
def test_the_median_is_never_unusual(values: list[int]) -> None:
    assert robust_z(median(values), values) == 0
    assert robust_scale(values) >= 1.0
    assert spike_threshold(values) >= median(values) + 30


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=20, max_size=150))
def test_one_outlier_counts_no_more_than_a_busy_minute(values: list[int]) -> None:
    """Robust: one enormous minute in the history moves the threshold exactly as much as
    one more minute as busy as the busiest seen (a mean and standard deviation would be
    dragged far up by it)."""
    assert spike_threshold([*values, 1_000_000]) == spike_threshold([*values, max(values)])


@given(st.integers(min_value=1, max_value=500))
def test_a_steady_count_has_a_finite_threshold(count: int) -> None:
    history = [count] * 50
    threshold = spike_threshold(history)
    assert count < threshold < math.inf
    assert not count + 1 > threshold or count < 1


@given(st.lists(st.integers(min_value=0, max_value=20), min_size=300, max_size=600))
def test_regular_busy_minutes_are_usual(values: list[int]) -> None:
    """A daily batch minute of 60 requests, a few percent of the history: not a spike."""
    history = [*values, *([60] * 10)]
    assert spike_threshold(history) >= 60 * 1.5 or spike_threshold(history) > 60
