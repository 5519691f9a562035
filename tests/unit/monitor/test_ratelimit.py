"""Rate parsing, per-key and per-source limits, bursts, and the Redis fallback."""

from __future__ import annotations

import logging
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from limits import RateLimitItem

from keysafe.errors import InvalidInput, RateLimited
from keysafe.monitor.ratelimit import SCOPE_KEY, SCOPE_SOURCE, RateLimits, Refusal, parse_rate


class Rates:
    """Key rates from a dict (the database-backed KeyRates is tested in integration)."""

    def __init__(self, rates: dict[str, str]) -> None:
        self.rates = {k: parse_rate(v) for k, v in rates.items()}
        self.refreshed = 0

    def get(self, key_id: str) -> RateLimitItem | None:
        return self.rates.get(key_id)

    def refresh(self) -> None:
        self.refreshed += 1


@pytest.mark.parametrize(
    ("text", "amount", "seconds"),
    [
        ("600/min", 600, 60),
        ("10/s", 10, 1),
        ("10/sec", 10, 1),
        ("5000/hour", 5000, 3600),
        ("5/h", 5, 3600),
        ("100/day", 100, 86400),
        ("1000/minute", 1000, 60),
        (" 7 / Minute ", 7, 60),
    ],
)
def test_rates_parse(text: str, amount: int, seconds: int) -> None:
    item = parse_rate(text)
    assert (item.amount, item.get_expiry()) == (amount, seconds)


@pytest.mark.parametrize(
    "text",
    ["", "600", "0/min", "-1/min", "x/min", "10/fortnight", "10/", "/min", "1e3/s", "9999999999/s"],
)
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_rate(text)


@given(st.text(max_size=20))
def test_parse_rate_raises_only_invalid_input(text: str) -> None:
    try:
        item = parse_rate(text)
    except InvalidInput:
        return
    assert item.amount >= 1


def test_a_key_gets_its_own_limit_and_then_429s() -> None:
    limits = RateLimits(key_rates=Rates({"key_a": "3/hour"}))
    assert [limits.check_key("key_a") for _ in range(3)] == [None, None, None]
    refusal = limits.check_key("key_a")
    assert isinstance(refusal, Refusal)
    assert (refusal.scope, refusal.subject, refusal.limit) == (SCOPE_KEY, "key_a", 3)
    assert refusal.window_seconds == 3600
    assert 1 <= refusal.reset_after <= 3600
    # Another key, and a key without a rate, are not affected.
    assert limits.check_key("key_b") is None
    assert all(limits.check_key("key_unlimited") is None for _ in range(100))


def test_a_burst_is_audited_once() -> None:
    limits = RateLimits(key_rates=Rates({"key_a": "1/hour"}))
    assert limits.check_key("key_a") is None
    refusals = [limits.check_key("key_a") for _ in range(5)]
    assert [r.first_in_burst for r in refusals if r is not None] == [True] + [False] * 4


def test_the_refusal_is_a_429_with_ratelimit_fields() -> None:
    limits = RateLimits(key_rates=Rates({}), per_source="2/hour")
    assert limits.check_source("192.0.2.1") is None
    assert limits.check_source("192.0.2.1") is None
    refusal = limits.check_source("192.0.2.1")
    assert refusal is not None
    assert refusal.scope == SCOPE_SOURCE
    error = refusal.error()
    assert isinstance(error, RateLimited)
    assert error.status == 429
    doc = error.to_problem("/x")
    assert doc["code"] == "rate_limited"
    assert (doc["limit"], doc["remaining"], doc["reset"]) == (2, 0, error.retry_after)
    assert limits.check_source("192.0.2.2") is None  # per address


def test_no_per_source_limit_when_unset() -> None:
    limits = RateLimits(key_rates=Rates({}))
    assert all(limits.check_source("192.0.2.1") is None for _ in range(1000))


def test_a_bad_per_source_rate_is_refused_at_start() -> None:
    with pytest.raises(InvalidInput):
        RateLimits(key_rates=Rates({}), per_source="lots")


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def test_redis_away_falls_back_to_process_limits_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [1000.0]
    limits = RateLimits(
        key_rates=Rates({"key_a": "3/hour"}),
        redis_url=f"redis://127.0.0.1:{_dead_port()}/0",
        now=lambda: clock[0],
        retry_seconds=5.0,
    )
    with caplog.at_level(logging.WARNING, logger="keysafe.monitor"):
        results = [limits.check_key("key_a") for _ in range(5)]
        # Never no limit: the in-process storage counted instead.
        assert [r is None for r in results] == [True, True, True, False, False]
        assert not limits.using_redis
        clock[0] += 6  # Redis is tried again, fails again: still limited, no new warning
        assert limits.check_key("key_a") is not None
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert "127.0.0.1" in warnings[0].getMessage()


def test_a_password_in_the_redis_url_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    limits = RateLimits(
        key_rates=Rates({"key_a": "3/hour"}),
        redis_url=f"redis://:hunter2secret@127.0.0.1:{_dead_port()}/0",
    )
    with caplog.at_level(logging.WARNING, logger="keysafe.monitor"):
        limits.check_key("key_a")
    assert caplog.records
    assert all("hunter2secret" not in r.getMessage() for r in caplog.records)


def test_an_unusable_redis_url_is_refused() -> None:
    with pytest.raises(InvalidInput):
        RateLimits(key_rates=Rates({}), redis_url="nosuch://x")
