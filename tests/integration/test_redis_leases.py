"""Quota leases against the real Redis of this machine: limits shared by processes.

Several processes (multiprocessing, spawn) hit one limit through one Redis. Stated
tolerance (``keysafe.monitor.redislimits``): never more than the limit; at most
``processes x (chunk - 1)`` fewer, where ``chunk = max(1, limit // 100)``, so a small
limit is exact. Each test names its own subject, so runs never share a counter; the
processes share one frozen clock, so no window ends mid-test.

The outage test starts its own ``redis-server`` on a free port and stops it (the
machine's Redis is never stopped). Skips when Redis is unreachable, except in CI
(CI=true).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from limits import RateLimitItem
from server_proc import free_port

from keysafe.monitor.ratelimit import RateLimits, parse_rate
from keysafe.monitor.redislimits import RedisLeases, chunk_for

REDIS_URL = os.environ.get("KEYSAFE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PROCESSES = 3


def _required(what: str, why: object) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        conn.ping()
    except redis.RedisError as exc:
        _required("Redis", exc)
    yield conn
    conn.close()


@pytest.fixture
def subject(client: redis.Redis) -> Iterator[str]:
    name = f"key_{os.urandom(6).hex()}"
    yield name
    for key in client.scan_iter(match=f"keysafe:rl:*:{name}:*"):
        client.delete(key)


def _hammer(url: str, subject: str, limit: int, frozen: float, tries: int, out: Any) -> None:
    leases = RedisLeases(url, now=lambda: frozen)
    allowed = sum(leases.hit("key", subject, limit, 3600) is None for _ in range(tries))
    out.put((allowed, leases.reservations))
    leases.close()


def _across_processes(subject: str, limit: int, tries: int) -> tuple[int, int]:
    """(requests allowed, reservations made) over PROCESSES processes of ``tries`` hits."""
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    frozen = time.time()
    args = (REDIS_URL, subject, limit, frozen, tries, out)
    procs = [ctx.Process(target=_hammer, args=args) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(10)
    return sum(r[0] for r in results), sum(r[1] for r in results)


@pytest.mark.redis
@pytest.mark.timeout(180)
def test_a_small_limit_is_exact_across_processes(client: redis.Redis, subject: str) -> None:
    limit = 40  # chunk 1: every allowed request was one INCRBY of its own
    allowed, reservations = _across_processes(subject, limit, tries=90)
    assert allowed == limit
    # The process whose INCRBY reached the limit knows the window is exhausted; each
    # other process asks once more to learn it, then no more.
    assert reservations == limit + PROCESSES - 1


@pytest.mark.redis
@pytest.mark.timeout(180)
def test_a_large_limit_holds_within_its_tolerance(client: redis.Redis, subject: str) -> None:
    limit = 10_000
    chunk = chunk_for(limit)
    tries = 5_000  # 15,000 in all: well over the limit
    allowed, reservations = _across_processes(subject, limit, tries)
    assert limit - PROCESSES * (chunk - 1) <= allowed <= limit
    # One round trip per chunk (and one per process to learn the window is over):
    # about 1 request in 150 asked Redis.
    assert reservations <= limit // chunk + 2 * PROCESSES
    assert reservations * 100 < PROCESSES * tries
    (key,) = client.scan_iter(match=f"keysafe:rl:key:{subject}:*")
    assert int(client.get(key) or 0) >= limit


@pytest.mark.redis
def test_refusals_in_an_exhausted_window_cost_no_call(client: redis.Redis, subject: str) -> None:
    first, second = RedisLeases(REDIS_URL), RedisLeases(REDIS_URL)  # two processes
    assert all(first.hit("key", subject, 5, 3600) is None for _ in range(5))
    assert first.reservations == 5  # the fifth INCRBY reached the limit: known exhausted
    assert all(first.hit("key", subject, 5, 3600) is not None for _ in range(100))
    assert first.reservations == 5
    assert second.hit("key", subject, 5, 3600) is not None
    assert second.reservations == 1  # learnt that the window is exhausted
    assert all(second.hit("key", subject, 5, 3600) is not None for _ in range(100))
    assert second.reservations == 1
    first.close()
    second.close()


@pytest.mark.redis
def test_windows_are_aligned_to_the_clock_and_roll_over(client: redis.Redis, subject: str) -> None:
    clock = [(time.time() // 60) * 60 + 15]  # 15 s into this minute
    leases = RedisLeases(REDIS_URL, now=lambda: clock[0])
    start = int(clock[0] - 15)
    assert [leases.hit("key", subject, 3, 60) for _ in range(3)] == [None] * 3
    assert leases.hit("key", subject, 3, 60) == start + 60  # refused until the window ends
    key = f"keysafe:rl:key:{subject}:3/60:{start}"
    assert client.get(key) == b"3"  # the refusal asked nothing: the third reached 3
    assert 45 < client.ttl(key) <= 45 + 10  # the window's end plus the margin
    clock[0] += 60  # the next minute: a new counter
    assert leases.hit("key", subject, 3, 60) is None
    assert client.get(f"keysafe:rl:key:{subject}:3/60:{start + 60}") == b"1"
    leases.close()


@pytest.mark.redis
def test_rate_limits_answer_from_leases(client: redis.Redis, subject: str) -> None:
    """Through RateLimits: a large key rate costs a round trip per chunk, and a refusal
    names the seconds left in the window."""

    class Rates:
        def __init__(self, rate: str) -> None:
            self.rate = parse_rate(rate)

        def get(self, key_id: str) -> RateLimitItem | None:
            return self.rate

        def refresh(self) -> None:
            return None

    clock = [(time.time() // 60) * 60 + 20]
    rates = Rates("1000/min")
    limits = RateLimits(key_rates=rates, redis_url=REDIS_URL, now=lambda: clock[0])
    assert limits.using_redis
    assert all(limits.check_key(subject) is None for _ in range(1000))
    refusal = limits.check_key(subject)
    assert refusal is not None
    assert (refusal.limit, refusal.window_seconds, refusal.reset_after) == (1000, 60, 40)
    assert refusal.first_in_burst
    later = limits.check_key(subject)
    assert later is not None
    assert not later.first_in_burst
    (key,) = client.scan_iter(match=f"keysafe:rl:key:{subject}:*")
    assert int(client.get(key) or 0) == 1000  # 100 reservations of 10, none after


@pytest.mark.redis
@pytest.mark.timeout(60)
def test_redis_going_away_mid_window_falls_back_then_recovers(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    del client  # only for the skip
    binary = shutil.which("redis-server")
    if binary is None:
        _required("redis-server", "not on PATH")
    assert binary is not None
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        probe = redis.Redis(port=port, socket_timeout=1)
        try:
            for _ in range(100):
                try:
                    probe.ping()
                    return proc
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            probe.close()
        proc.terminate()
        raise AssertionError("redis-server did not start")

    class Rates:
        def get(self, key_id: str) -> RateLimitItem | None:
            return parse_rate("10/hour")

        def refresh(self) -> None:
            return None

    clock = [time.time()]
    server = start()
    try:
        limits = RateLimits(
            key_rates=Rates(),
            redis_url=f"redis://127.0.0.1:{port}/0",
            now=lambda: clock[0],
            retry_seconds=5.0,
        )
        with caplog.at_level(logging.WARNING, logger="keysafe.monitor"):
            assert [limits.check_key("key_a") for _ in range(4)] == [None] * 4
            assert limits.using_redis
            server.terminate()
            server.wait(10)
            # Mid-window the reservation fails: counted in process from then on, never
            # without a limit (the node's count starts again: 10 more, then refused).
            assert all(limits.check_key("key_a") is None for _ in range(10))
            assert not limits.using_redis
            assert limits.check_key("key_a") is not None
            clock[0] += 6  # tried again, still down: still limited, no new warning
            assert limits.check_key("key_a") is not None
            server = start()  # an empty Redis (no persistence): its counts start again
            clock[0] += 6
            assert limits.using_redis
            assert [limits.check_key("key_a") for _ in range(10)] == [None] * 10
            assert limits.check_key("key_a") is not None
        messages = [r.getMessage() for r in caplog.records]
        assert sum("unreachable" in m for m in messages) == 1, messages
        assert sum(m.endswith("answers again") for m in messages) == 1, messages
    finally:
        server.terminate()
        server.wait(10)
