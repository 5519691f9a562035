"""Cluster coherence (issue 12 item 2): a change made on one server process reaches the
other process sharing its database well within the lookup caches' lifetime. The caches
are set to 30 s here, so only the announcement (SQLite: the polled table; PostgreSQL:
LISTEN/NOTIFY; with Redis: pub/sub) can explain a refusal within 200 ms."""

from __future__ import annotations

from pathlib import Path

import pytest
from coherence_kit import KINDS, prepare, propagation, two_servers

WITHIN = 0.2


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("engine", "redis"),
    [
        ("sqlite", False),
        ("postgres", False),
        pytest.param("postgres", True, marks=pytest.mark.redis),
    ],
    ids=["sqlite", "postgres-notify", "postgres-redis"],
)
def test_every_kind_of_change_reaches_the_other_process_at_once(
    tmp_path: Path, engine: str, redis: bool
) -> None:
    with two_servers(engine, tmp_path, redis=redis) as pair:
        for kind in KINDS:  # the seal comes last: it ends everything
            change = prepare(pair, kind)
            try:
                delay = propagation(pair, change, limit=WITHIN)
            except AssertionError as exc:
                raise AssertionError(f"{kind}: {exc}") from exc
            assert delay < WITHIN, (kind, delay)
