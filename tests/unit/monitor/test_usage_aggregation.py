"""Usage aggregation in memory: buckets per hour, bounded items, counts by outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from keysafe.errors import InvalidInput, KeysafeError
from keysafe.monitor import usage as usage_mod
from keysafe.monitor.usage import KIND_IDENTITY, KIND_KEY, KIND_SECRET, UsageTracker
from keysafe.store.engine import make_engine
from keysafe.store.migrate import upgrade

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
T0 = 1_763_900_000_000_000  # 2025-11-23, some hour


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = make_engine(f"sqlite:///{tmp_path / 'u.db'}")
    upgrade(eng)
    return eng


def test_counts_by_outcome_and_day(engine: Engine) -> None:
    clock = FakeClock()
    usage = UsageTracker(engine, clock)
    for status in (200, 200, 204, 401, 403, 429, 404, 500):
        usage.note(KIND_KEY, "key_a", "192.0.2.1", status, "app/DB")
    clock.now += DAY_US
    usage.note(KIND_KEY, "key_a", "192.0.2.2", 200, "app/API")
    doc = usage.usage(KIND_KEY, "key_a", days=7)
    assert doc["totals"] == {"requests": 9, "ok": 4, "denied": 2, "limited": 1, "errors": 2}
    assert [d["requests"] for d in doc["per_day"]] == [8, 1]
    assert doc["sources"] == ["192.0.2.1", "192.0.2.2"]
    assert doc["paths"] == ["app/API", "app/DB"]
    assert doc["first_used_at"] < doc["last_used_at"]
    # The secret is counted too, with who touched it.
    secret = usage.usage(KIND_SECRET, "app/DB", days=7)
    assert secret["totals"]["requests"] == 8
    assert secret["actors"] == ["key_a"]
    # Days outside the window are not shown, first use still is.
    clock.now += 3 * DAY_US
    assert usage.usage(KIND_KEY, "key_a", days=1)["per_day"] == []
    assert usage.usage(KIND_KEY, "key_a", days=1)["first_used_at"] == doc["first_used_at"]


def test_flushes_add_up(engine: Engine) -> None:
    clock = FakeClock()
    one, two = UsageTracker(engine, clock), UsageTracker(engine, clock)
    one.note(KIND_IDENTITY, "tok_a", "192.0.2.1", 200)
    assert one.flush() == 1
    one.note(KIND_IDENTITY, "tok_a", "192.0.2.1", 200)
    two.note(KIND_IDENTITY, "tok_a", "192.0.2.9", 403)
    one.flush()
    two.flush()
    doc = one.usage(KIND_IDENTITY, "tok_a")
    assert doc["totals"]["requests"] == 3
    assert doc["totals"]["denied"] == 1
    assert doc["sources"] == ["192.0.2.1", "192.0.2.9"]


def test_items_are_bounded_counts_are_not(engine: Engine) -> None:
    usage = UsageTracker(engine, FakeClock())
    for i in range(500):
        usage.note(KIND_KEY, "key_a", f"10.0.{i // 256}.{i % 256}", 200, f"p/{i}")
    doc = usage.usage(KIND_KEY, "key_a")
    assert doc["totals"]["requests"] == 500
    assert len(doc["sources"]) == usage_mod.MAX_ITEMS["source"]
    assert len(doc["paths"]) == usage_mod.MAX_ITEMS["path"]
    # A second flush in the same hour does not grow past the bound either.
    for i in range(100):
        usage.note(KIND_KEY, "key_a", f"10.9.0.{i}", 200)
    assert len(usage.usage(KIND_KEY, "key_a")["sources"]) == usage_mod.MAX_ITEMS["source"]


def test_a_failed_flush_keeps_the_counts(engine: Engine, tmp_path: Path) -> None:
    clock = FakeClock()
    broken = make_engine(f"sqlite:///{tmp_path / 'nothing-here.db'}")  # no tables
    usage = UsageTracker(broken, clock)
    usage.note(KIND_KEY, "key_a", "192.0.2.1", 200)
    with pytest.raises(KeysafeError):  # StorageUnavailable: no such table
        usage.flush()
    usage._engine = engine  # the database is back
    usage.note(KIND_KEY, "key_a", "192.0.2.1", 200)
    assert usage.flush() == 1
    assert usage.usage(KIND_KEY, "key_a")["totals"]["requests"] == 2


def test_prune_drops_old_hours(engine: Engine) -> None:
    clock = FakeClock()
    usage = UsageTracker(engine, clock, retention_days=2)
    usage.note(KIND_KEY, "key_a", "192.0.2.1", 200, "a/b")
    usage.flush()
    clock.now += 3 * DAY_US
    assert usage.prune() == 2  # the key's hour and the secret's
    assert usage.usage(KIND_KEY, "key_a", days=2)["first_used_at"] is None


@pytest.mark.parametrize(("kind", "days"), [("nope", 7), (KIND_KEY, 0), (KIND_KEY, 91)])
def test_bad_queries(engine: Engine, kind: str, days: int) -> None:
    with pytest.raises(InvalidInput):
        UsageTracker(engine, FakeClock()).usage(kind, "x", days)


def test_the_periodic_flush_holds_secrets_back_for_a_minute(engine: Engine) -> None:
    clock = FakeClock()
    usage = UsageTracker(engine, clock)
    usage.note(KIND_KEY, "key_a", "192.0.2.1", 200, "a/b")
    assert usage.flush(hold_secrets=True) == 2  # the first flush writes everything
    usage.note(KIND_KEY, "key_a", "192.0.2.1", 200, "a/b")
    usage.note(KIND_KEY, "key_a", "192.0.2.1", 200, "a/c")
    # Within the minute: the key's bucket goes, the secrets' wait (one upsert later
    # covers every read of them in between).
    assert usage.flush(hold_secrets=True) == 1
    clock.now += usage_mod.SECRET_HOLD_US
    assert usage.flush(hold_secrets=True) == 2
    # A query writes everything first, held or not.
    usage.note(KIND_KEY, "key_a", "192.0.2.1", 200, "a/b")
    assert usage.usage("secret", "a/b")["totals"]["requests"] == 3


def test_usage_per_secret_can_be_turned_off(engine: Engine) -> None:
    usage = UsageTracker(engine, FakeClock(), per_secret=False)
    usage.note(KIND_KEY, "key_a", "192.0.2.1", 200, "a/b")
    assert usage.flush() == 1  # the key's bucket only
    assert usage.usage(KIND_KEY, "key_a")["paths"] == ["a/b"]
    assert usage.usage("secret", "a/b")["totals"]["requests"] == 0
