"""Quota-lease arithmetic (the leases against a real Redis: tests/integration)."""

from __future__ import annotations

import pytest

from keysafe.monitor.redislimits import chunk_for, granted


@pytest.mark.parametrize(
    ("limit", "chunk"),
    [(1, 1), (40, 1), (199, 1), (200, 2), (600, 6), (10_000, 100), (999_999_999, 9_999_999)],
)
def test_a_chunk_is_one_percent_of_the_limit_and_at_least_one(limit: int, chunk: int) -> None:
    assert chunk_for(limit) == chunk


@pytest.mark.parametrize(
    ("limit", "chunk", "count", "tokens"),
    [
        (40, 1, 1, 1),  # first token of the window
        (40, 1, 40, 1),  # the last one
        (40, 1, 41, 0),  # one past: refused
        (10_000, 100, 100, 100),  # a whole chunk
        (10_000, 100, 10_000, 100),  # the chunk that ends exactly at the limit
        (10_000, 100, 10_050, 50),  # half of it fitted
        (10_000, 100, 10_100, 0),  # none of it did
        (10_000, 100, 50_000, 0),  # far past (other processes kept asking)
    ],
)
def test_a_reservation_gets_what_fits_under_the_limit(
    limit: int, chunk: int, count: int, tokens: int
) -> None:
    assert granted(limit, chunk, count) == tokens
