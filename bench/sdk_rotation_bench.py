"""Benchmark: the extra latency an SDK read sees while its secret is being rotated.

One command: ``python bench/sdk_rotation_bench.py`` (``--quick`` for a smoke run,
``--target redis`` to rotate a Redis ACL user instead of a PostgreSQL login). In one run,
against one ``keysafe up`` server (SQLite, HTTPS, 2 workers, as a user starts it):

- reader threads call ``Client.get(path)`` with the cache off (``cache_ttl=0``), so
  every read is a round trip to the server and reaches the store, in a loop;
- phases alternate, ``--rounds`` times: *idle* (no rotation) and *rotating* (a thread
  rotates the same secret back to back through ``POST /api/v1/rotation/rotate/...``:
  generate, apply on the real target, verify by logging in, promote, retire);
- the reference: ``GET /api/v1/sys/health`` latency, sampled in both phases.

It reports p50/p99 of the reads in each phase, the difference of the p99s (target:
under 50 ms), the p99 of the reads that overlapped a rotation request, and the
rotations completed. The PostgreSQL target is the machine's shared server (its roles
``ks_bench_<hex>``/``_b`` are created and dropped here); the Redis target an ACL user
``ks_bench_<hex>``, deleted afterwards. Results: a table on stdout,
bench/results/sdk_rotation.md and .json (``sdk_rotation-redis.*`` for Redis). Server,
readers and targets share the same cores: read the figures as rough.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
KEYSAFE = [sys.executable, "-m", "keysafe.cli.main"]
PG_ADMIN = os.environ.get("KEYSAFE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_ADMIN = os.environ.get("KEYSAFE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
APP_PATH = "bench/app/CREDENTIAL"
ADMIN_PATH = "bench/ops/ADMIN_URL"
TARGET_P99_DIFF_MS = 50.0


class BenchError(Exception):
    """The benchmark cannot run or a step failed; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def keysafe_up(home: Path) -> Iterator[tuple[str, str, Path]]:
    """``keysafe up`` on a free port; yields (addr, root token, CA file)."""
    import httpx

    from keysafe.client._config import resolve

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    env["KEYSAFE_HOME"] = str(home)
    log = (home.parent / "server.log").open("wb")
    proc = subprocess.Popen(
        [*KEYSAFE, "up", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"keysafe up exited with {proc.returncode}")
            conn = resolve(home=home)
            if conn.token and conn.cacert and conn.cacert.exists():
                try:
                    with httpx.Client(verify=str(conn.cacert), timeout=2) as http:
                        if http.get(f"{conn.addr}/api/v1/sys/health").status_code == 200:
                            break
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        else:
            raise BenchError("keysafe up did not become healthy in 90 s")
        if not (conn.addr and conn.token and conn.cacert):
            raise BenchError("keysafe up wrote no usable profile")
        yield conn.addr, conn.token, conn.cacert
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@contextmanager
def target(kind: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A real login to rotate; yields (admin URL, policy options). Removed afterwards."""
    name = f"ks_bench_{secrets.token_hex(4)}"
    if kind == "postgres":
        import psycopg
        from psycopg import sql

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(name + "_b"), sql.Identifier(name)
                )
            )
        try:
            yield PG_ADMIN, {"target-secret": ADMIN_PATH, "role": name}
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                for role in (name + "_b", name):
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    else:
        import redis

        admin = redis.Redis.from_url(REDIS_ADMIN)
        admin.execute_command("ACL", "SETUSER", name, "on", "+ping")  # type: ignore[no-untyped-call]
        try:
            yield REDIS_ADMIN, {"target-secret": ADMIN_PATH, "user": name}
        finally:
            admin.acl_deluser(name)
            admin.close()


def timed(fn: Callable[[], object]) -> tuple[float, float, float]:
    start = time.perf_counter()
    fn()
    end = time.perf_counter()
    return start, end, (end - start) * 1000


def run_phase(
    clients: list[Any], seconds: float, rotate: Callable[[], None] | None
) -> dict[str, Any]:
    """Readers (one per client) for ``seconds``; rotations back to back if ``rotate``."""
    stop = threading.Event()
    reads: list[tuple[float, float, float]] = []
    health: list[float] = []
    windows: list[tuple[float, float]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def reader(client: Any, sample_health: bool) -> None:
        mine: list[tuple[float, float, float]] = []
        ref: list[float] = []
        n = 0
        while not stop.is_set():
            mine.append(timed(lambda: client.get(APP_PATH)))
            n += 1
            if sample_health and n % 5 == 0:
                ref.append(timed(client.health)[2])
        with lock:
            reads.extend(mine)
            health.extend(ref)

    def rotator(rotate: Callable[[], None]) -> None:
        while not stop.is_set():
            try:
                start, end, _ = timed(rotate)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            windows.append((start, end))

    threads = [threading.Thread(target=reader, args=(c, i == 0)) for i, c in enumerate(clients)]
    if rotate is not None:
        threads.append(threading.Thread(target=rotator, args=(rotate,)))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(60)
    overlapping = [ms for start, end, ms in reads if any(s < end and start < e for s, e in windows)]
    return {
        "reads": [ms for _, _, ms in reads],
        "overlapping": overlapping,
        "health": health,
        "rotations": len(windows),
        "rotation_ms": [(e - s) * 1000 for s, e in windows],
        "failures": failures,
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from keysafe.client import Client

    with tempfile.TemporaryDirectory(prefix="ks-sdkrot-") as tmp:
        home = Path(tmp) / "home"
        with keysafe_up(home) as (addr, token, ca), target(args.target) as (admin, options):
            root = httpx.Client(
                base_url=addr,
                verify=str(ca),
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            for path, value in ((ADMIN_PATH, admin), (APP_PATH, "unset")):
                root.put(f"/api/v1/secrets/{path}", json={"value": value}).raise_for_status()
            policy = {
                "rotator": args.target,
                "approve_targets": True,  # root approves the target it names
                "options": options,
                "every_seconds": 3600,  # rotations come from this benchmark, not the clock
                "grace_seconds": 0,
            }
            reply = root.put(f"/api/v1/rotation/policies/{APP_PATH}", json=policy)
            if reply.status_code != 200:
                raise BenchError(f"cannot set the rotation policy: {reply.text[:300]}")

            def rotate() -> None:
                done = root.post(f"/api/v1/rotation/rotate/{APP_PATH}")
                if done.status_code != 200:
                    raise BenchError(f"rotation failed: {done.text[:300]}")

            rotate()  # a first real credential (a failure here stops the benchmark)
            readers = [Client(addr, token, ca, cache_ttl=0) for _ in range(args.readers)]
            for client in readers:  # warm the connections and the server
                for _ in range(20):
                    client.get(APP_PATH)
            phases: dict[str, list[dict[str, Any]]] = {"idle": [], "rotating": []}
            for _ in range(args.rounds):
                phases["idle"].append(run_phase(readers, args.phase, None))
                phases["rotating"].append(run_phase(readers, args.phase, rotate))
            for client in readers:
                client.close()
            root.close()
    return {
        name: {
            key: [x for run in runs for x in run[key]]
            for key in ("reads", "overlapping", "health", "rotation_ms", "failures")
        }
        | {"rotations": sum(run["rotations"] for run in runs)}
        for name, runs in phases.items()
    }


def report(args: argparse.Namespace, data: dict[str, Any]) -> bool:
    idle, rot = data["idle"], data["rotating"]
    diff = pct(rot["reads"], 99) - pct(idle["reads"], 99)
    ok = diff < TARGET_P99_DIFF_MS and not rot["failures"]
    rows = [
        ("SDK reads measured", f"{len(idle['reads'])}", f"{len(rot['reads'])}", ""),
        (
            "SDK read p50 (ms)",
            f"{pct(idle['reads'], 50):.1f}",
            f"{pct(rot['reads'], 50):.1f}",
            f"{pct(rot['reads'], 50) - pct(idle['reads'], 50):+.1f}",
        ),
        (
            "**SDK read p99 (ms)**",
            f"{pct(idle['reads'], 99):.1f}",
            f"{pct(rot['reads'], 99):.1f}",
            f"**{diff:+.1f}** (target < {TARGET_P99_DIFF_MS:.0f})",
        ),
        (
            "p99 of reads overlapping a rotation (ms)",
            "",
            f"{pct(rot['overlapping'], 99):.1f} (n={len(rot['overlapping'])})",
            "",
        ),
        (
            "health p99, reference (ms)",
            f"{pct(idle['health'], 99):.1f}",
            f"{pct(rot['health'], 99):.1f}",
            f"{pct(rot['health'], 99) - pct(idle['health'], 99):+.1f}",
        ),
        (
            "rotations completed (p50 ms each)",
            "0",
            f"{rot['rotations']} ({pct(rot['rotation_ms'], 50):.0f})",
            "",
        ),
        ("failed rotations", "", f"{len(rot['failures'])}", ""),
    ]
    command = "python bench/sdk_rotation_bench.py " + " ".join(sys.argv[1:])
    lines = [
        "# SDK reads during rotation",
        "",
        f"`{command.strip()}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} with {os.cpu_count()} cores (shared with other work: rough "
        f"figures). Target: {args.target} rotator; {args.readers} reader thread(s), "
        f"`Client.get` with `cache_ttl=0` (every read reaches the server); "
        f"{args.rounds} x ({args.phase:.0f} s idle + {args.phase:.0f} s rotating back to back).",
        "",
        "| measure | no rotation | during rotations | difference |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        f"Result: {'PASS' if ok else 'FAIL'}: the p99 of an SDK read rises by "
        f"{diff:.1f} ms while rotations run (target under {TARGET_P99_DIFF_MS:.0f} ms).",
    ]
    if rot["failures"]:
        lines += ["", "Rotation failures: " + "; ".join(rot["failures"][:5])]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "sdk_rotation" if args.target == "postgres" else f"sdk_rotation-{args.target}"
    (RESULTS / f"{stem}.md").write_text(text)
    summary = {
        name: {
            "reads": len(part["reads"]),
            "read_p50_ms": pct(part["reads"], 50),
            "read_p99_ms": pct(part["reads"], 99),
            "overlapping_reads": len(part["overlapping"]),
            "overlapping_p99_ms": pct(part["overlapping"], 99),
            "health_p99_ms": pct(part["health"], 99),
            "rotations": part["rotations"],
            "rotation_p50_ms": pct(part["rotation_ms"], 50),
            "failures": part["failures"],
        }
        for name, part in data.items()
    }
    doc = {
        "command": command.strip(),
        "target": args.target,
        "p99_difference_ms": diff,
        "target_ms": TARGET_P99_DIFF_MS,
        "pass": ok,
        **summary,
    }
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("postgres", "redis"), default="postgres")
    parser.add_argument("--rounds", type=int, default=3, help="idle+rotating pairs")
    parser.add_argument("--phase", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--readers", type=int, default=2, help="reader threads")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s phases")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.phase = 1, 3.0
    try:
        data = measure(args)
    except BenchError as exc:
        print(f"sdk_rotation_bench: {exc}", file=sys.stderr)
        return 2
    return 0 if report(args, data) else 1


if __name__ == "__main__":
    sys.exit(main())
