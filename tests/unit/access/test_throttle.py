"""Failed-credential throttling per source address."""

from __future__ import annotations

import pytest

from keysafe.access.throttle import FailureThrottle
from keysafe.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_source_is_blocked_after_the_limit_and_released_after_the_cooldown() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=3, window=60, cooldown=30)
    throttle._now = clock
    assert [throttle.failed("10.0.0.1") for _ in range(3)] == [False, False, True]
    with pytest.raises(RateLimited) as info:
        throttle.check("10.0.0.1")
    assert 1 <= info.value.retry_after <= 31
    throttle.check("10.0.0.2")  # other sources are not affected
    clock.t += 31
    throttle.check("10.0.0.1")


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=3, window=60, cooldown=30)
    throttle._now = clock
    for _ in range(4):
        assert throttle.failed("s") is False
        clock.t += 30
    throttle.check("s")
