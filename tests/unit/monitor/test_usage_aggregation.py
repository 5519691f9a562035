"""Usage aggregation in memory: buckets per hour, bounded items, counts by outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from keysafe.errors import InvalidInput, KeysafeError
from keysafe.monitor import usage as usage_mod
from keysafe.monitor.usage import KIND_IDENTITY, KIND_KEY, KIND_SECRET, UsageTracker
from keysafe.store.engine import make_engine, write_txn
from keysafe.store.migrate import upgrade
from keysafe.store.tables import audit_events

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
    assert usage.prune() == 1  # the key's hour (a secret's usage is its audit trail)
    assert usage.usage(KIND_KEY, "key_a", days=2)["first_used_at"] is None


@pytest.mark.parametrize(("kind", "days"), [("nope", 7), (KIND_KEY, 0), (KIND_KEY, 91)])
def test_bad_queries(engine: Engine, kind: str, days: int) -> None:
    with pytest.raises(InvalidInput):
        UsageTracker(engine, FakeClock()).usage(kind, "x", days)


def _event(seq: int, ts: int, actor: str, source: str, op: str, path: str, outcome: str) -> dict:
    return {
        "seq": seq, "ts": ts, "request_id": f"r{seq}", "actor": actor, "source": source,
        "operation": op, "path": path, "outcome": outcome, "detail": "",
        "prev_hash": bytes(32), "hash": bytes(32), "chain": "test", "chain_seq": seq,
    }  # fmt: skip


def test_a_secrets_usage_is_read_from_its_audit_trail(engine: Engine) -> None:
    clock = FakeClock()
    usage = UsageTracker(engine, clock)
    day = T0 - T0 % DAY_US
    events = [
        _event(1, day - DAY_US, "key_a", "192.0.2.1", "secret:read", "app/DB", "ok"),
        _event(2, day + 1, "key_a", "192.0.2.1", "secret:read", "app/DB", "ok"),
        _event(3, day + 2, "key_a", "192.0.2.1", "secret:read", "app/DB", "ok"),
        _event(4, day + 3, "key_b", "192.0.2.2", "secret:read", "app/DB", "denied"),
        _event(5, day + 4, "key_b", "192.0.2.2", "ratelimit:hit", "app/DB", "denied"),
        _event(6, day + 5, "tok_root", "127.0.0.1", "secret:write", "app/DB", "error"),
        # The rotation engine's own steps, and other paths, are not the secret's usage.
        _event(7, day + 6, "system:rotation", "server", "secret:write", "app/DB", "ok"),
        _event(8, day + 7, "key_a", "192.0.2.1", "secret:read", "app/DBX", "ok"),
    ]
    with write_txn(engine) as conn:
        conn.execute(insert(audit_events), events)
    doc = usage.usage(KIND_SECRET, "app/DB", days=7)
    assert doc["totals"] == {"requests": 6, "ok": 3, "denied": 1, "limited": 1, "errors": 1}
    assert [(d["requests"], d["ok"]) for d in doc["per_day"]] == [(1, 1), (5, 2)]
    assert doc["actors"] == ["key_a", "key_b", "tok_root"]
    assert doc["sources"] == ["127.0.0.1", "192.0.2.1", "192.0.2.2"]
    assert doc["paths"] == []
    assert doc["first_used_at"] < doc["last_used_at"]
    today = usage.usage(KIND_SECRET, "app/DB", days=1)  # yesterday's read left out
    assert today["totals"]["requests"] == 5
    assert today["first_used_at"] == doc["first_used_at"]  # first use is over all time
    assert usage.usage(KIND_SECRET, "no/such")["totals"]["requests"] == 0


def test_a_secrets_sources_and_actors_are_bounded(engine: Engine) -> None:
    usage = UsageTracker(engine, FakeClock())
    with write_txn(engine) as conn:
        conn.execute(
            insert(audit_events),
            [
                _event(i, T0 + i, f"key_{i}", f"192.0.2.{i}", "secret:read", "a/b", "ok")
                for i in range(1, 101)
            ],
        )
    doc = usage.usage(KIND_SECRET, "a/b")
    assert doc["totals"]["requests"] == 100  # counts stay exact
    assert len(doc["actors"]) == usage_mod.MAX_ITEMS["actor"]
    assert len(doc["sources"]) == usage_mod.MAX_ITEMS["source"]


def test_a_full_log_is_counted_on_the_request_path(engine: Engine) -> None:
    """Requests are logged and counted at a flush; a log that reaches its bound is
    counted at once, so memory stays bounded between flushes and no count is lost."""
    usage = UsageTracker(engine, FakeClock())
    for i in range(usage_mod._LOG_BOUND + 10):
        usage.note(KIND_KEY, "key_a", "192.0.2.1", 200 if i % 2 else 403, "app/DB")
    assert len(usage._log) < usage_mod._LOG_BOUND
    assert usage.flush() == 1
    totals = usage.usage(KIND_KEY, "key_a", days=1)["totals"]
    assert totals["requests"] == usage_mod._LOG_BOUND + 10
    assert totals["denied"] == (usage_mod._LOG_BOUND + 10) // 2
