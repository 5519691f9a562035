"""Shared guards across three ``keysafe server`` processes on one PostgreSQL database.

The processes share a THROWAWAY ``redis-server`` that this test starts on a free port and
stops itself (the machine's Redis is never touched). They trust 127.0.0.1 as their load
balancer, so the test, playing the balancer, names each client in ``X-Forwarded-For``.

- 150 bad tokens from one client, round robin over the three: exactly the configured
  limit (20) answered 401, every later one 429; the balancer's other clients still served.
- Redis stopped in the middle of a 100-per-window key: each node then allows its share
  (100 // ``KEYSAFE_CLUSTER_SIZE``), so the window lets through about 100 + one share,
  not 100 per node; the failure throttle holds each node to its share as well.

The key's window is an hour (aligned to the clock like a minute's) so that the run, a
few seconds, does not straddle a window boundary; a minute's limit takes the same path.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from server_proc import ServerProc, database_url, free_port, init_vault, running, start_server

NODES = 3
FAILURES = 20
RATE = 100
POLICY = '[[rule]]\npath = "cg/*"\ncapabilities = ["read"]\n'


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    proc = subprocess.Popen(
        [*args, "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=1)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url, proc
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)


@pytest.fixture
def cluster(
    throwaway_redis: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> Iterator[list[ServerProc]]:
    env = {
        "KEYSAFE_REDIS_URL": throwaway_redis[0],
        "KEYSAFE_CLUSTER_SIZE": str(NODES),
        "KEYSAFE_TRUSTED_PROXIES": "127.0.0.1",
        "KEYSAFE_AUTH_FAILURES_PER_MINUTE": str(FAILURES),
    }
    with database_url("postgres", tmp_path) as url:
        vault = init_vault("postgres", tmp_path, url)
        servers: list[ServerProc] = []
        try:
            for _ in range(NODES):
                servers.append(start_server(vault, extra_env=env))
            yield servers
        finally:
            for server in servers:
                server.stop()


def _guess(servers: list[ServerProc], client: str, count: int) -> list[int]:
    """``count`` bad tokens from ``client``, round robin over the nodes."""
    answers = []
    for i in range(count):
        server = servers[i % len(servers)]
        with server.client(f"ks_live_guess{i:033d}") as c:
            resp = c.get("/api/v1/secrets/cg/DB", headers={"X-Forwarded-For": client})
        answers.append(resp.status_code)
    return answers


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_throttle_and_limits_are_shared_and_fail_over_at_a_share(
    cluster: list[ServerProc], throwaway_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    # 150 bad tokens over three nodes: the limit is the cluster's, not each node's.
    answers = _guess(cluster, "203.0.113.50", 150)
    assert answers == [401] * FAILURES + [429] * (150 - FAILURES)
    with cluster[1].root() as other:  # another client behind the same balancer
        assert other.get("/api/v1/sys/health").status_code == 200
        assert other.put("/api/v1/policies/cg", json={"text": POLICY}).status_code == 200
        other.post("/api/v1/services", json={"name": "cg", "policies": ["cg"]})
        made = other.post("/api/v1/keys", json={"service": "cg", "rate_limit": f"{RATE}/hour"})
        assert made.status_code == 200, made.text
        assert other.put("/api/v1/secrets/cg/DB", json={"value": "v"}).status_code == 200
    key = made.json()["key"]
    clients = [server.client(key) for server in cluster]
    try:
        before = [clients[i % NODES].get("/api/v1/secrets/cg/DB").status_code for i in range(40)]
        assert before == [200] * 40  # counted in Redis
        throwaway_redis[1].terminate()  # Redis gone in the middle of the window
        throwaway_redis[1].wait(10)
        after = [clients[i % NODES].get("/api/v1/secrets/cg/DB").status_code for i in range(300)]
    finally:
        for c in clients:
            c.close()
    share = RATE // NODES
    # Each node alone allows its share: 40 + 3 x 33 = 139, at most 100 + one share + 6.
    assert after.count(200) == NODES * share
    assert before.count(200) + after.count(200) <= RATE + share + NODES * 2
    assert set(after) == {200, 429}
    # The failure throttle, counting alone on each node, holds each to its share too.
    alone = _guess(cluster, "203.0.113.51", 60)
    assert alone.count(401) == NODES * (FAILURES // NODES)
    assert all(server.proc.poll() is None for server in cluster)


@pytest.mark.timeout(120)
def test_the_workers_of_one_node_share_the_throttle_without_redis(tmp_path: Path) -> None:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url)
    env = {"KEYSAFE_AUTH_FAILURES_PER_MINUTE": str(FAILURES)}
    with running(vault, workers=2, extra_env=env) as server:
        answers = []
        for i in range(3 * FAILURES):  # a connection each: the workers take turns
            with server.client(f"ks_live_guess{i:033d}") as c:
                answers.append(c.get("/api/v1/secrets/cg/DB").status_code)
        pids = server.pids()
    assert len(pids) >= 3  # the supervisor and its two workers
    # The node's table is exact to one hit per other worker, at the limit.
    first = answers.index(429)
    assert FAILURES <= first <= FAILURES + 1, answers
    assert set(answers[first:]) == {429}, answers
