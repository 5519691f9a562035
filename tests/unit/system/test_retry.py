"""The unseal source's retry schedule: bounded doubling, no retry after a wrong PIN."""

from __future__ import annotations

import math

from keysafe.errors import UnsealSourceFailed
from keysafe.system.retry import SourceRetry


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_backoff_doubles_up_to_the_bound_and_resets() -> None:
    clock = Clock()
    retry = SourceRetry(8.0, now=clock)
    assert retry.due()
    waits = []
    for _ in range(6):
        retry.failed(UnsealSourceFailed("token not found"))
        waits.append(retry._next - clock.t)
        assert not retry.due()
        clock.t = retry._next
        assert retry.due()
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert "token not found; retrying in 8 s" in retry.reason
    retry.succeeded()
    assert retry.reason == ""
    assert retry.due()


def test_a_permanent_failure_is_never_retried() -> None:
    clock = Clock()
    retry = SourceRetry(30.0, now=clock)
    retry.failed(UnsealSourceFailed("login refused: wrong PIN", permanent=True))
    assert retry._next == math.inf
    clock.t += 1e9
    assert not retry.due()
    assert "restart" in retry.reason
