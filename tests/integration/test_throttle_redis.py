"""The failed-credential throttle counted in the real Redis of this machine.

Several ``FailureThrottle`` objects stand for several processes or nodes: they share one
count per address through Redis (``keysafe.monitor.redisguards``). Each test uses its
own address, so runs of other tests on the shared Redis do not interfere. A Redis that
is gone is a port where nothing listens: each throttle then counts its share alone.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis
from server_proc import free_port

from keysafe.access.throttle import FailureThrottle
from keysafe.errors import RateLimited
from keysafe.monitor.redisguards import ERRORS, RedisFailures

REDIS_URL = os.environ.get("KEYSAFE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required in CI but unreachable: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")
    finally:
        client.close()
    return REDIS_URL


def _throttles(url: str, n: int, limit: int, size: int = 1) -> list[FailureThrottle]:
    return [
        FailureThrottle(
            limit=limit,
            shared=RedisFailures(url),
            share=lambda: size,
            shared_errors=ERRORS,
        )
        for _ in range(n)
    ]


def test_three_processes_share_one_count_per_address(redis_url: str) -> None:
    src = f"test-{uuid.uuid4().hex}"
    nodes = _throttles(redis_url, 3, limit=20)
    answers: list[str] = []
    for i in range(60):  # round robin, as a balancer would
        node = nodes[i % 3]
        try:
            node.check(src)
            answers.append("started" if node.failed(src) else "401")
        except RateLimited:
            answers.append("429")
    # Exactly the limit answered 401 (the last of them starts the cooldown), then 429.
    assert answers[:20] == ["401"] * 19 + ["started"]
    assert set(answers[20:]) == {"429"}
    # Every node refuses the address, even one that never saw it fail.
    fresh = _throttles(redis_url, 1, limit=20)[0]
    with pytest.raises(RateLimited) as info:
        fresh.check(src)
    assert 1 <= info.value.retry_after <= 61
    fresh.check(f"other-{src}")  # another address is not affected


def test_a_gone_store_leaves_each_node_its_share_of_the_limit() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    nodes = _throttles(dead, 3, limit=20, size=3)
    src = "198.51.100.20"
    allowed = 0
    for i in range(60):
        node = nodes[i % 3]
        try:
            node.check(src)
        except RateLimited:
            continue
        node.failed(src)
        allowed += 1
    # Each node blocks after 20 // 3 = 6 failures: 18 for the cluster, not 60.
    assert allowed == 18
