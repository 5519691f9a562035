"""Monitoring benchmark: what usage tracking, metrics and rate limits cost audited reads.

    .venv/bin/python bench/monitor_bench.py            # about 2 minutes
    .venv/bin/python bench/monitor_bench.py --quick    # short wrk runs

Figure (issue "usage monitoring", parts 1-2): usage tracking and rate limiting together
cost at most 10% of audited-read throughput. Measured in one run, over HTTPS on
`keysafe up` (SQLite, 2 workers), `wrk -t2 -c64` reading 1,000 secrets on random paths
with a policy-bound API key:

- off: `KEYSAFE_USAGE_TRACKING=false`, `KEYSAFE_REQUEST_METRICS=false`, no per-source
  limit, a key without a rate: the request path as it was before monitoring;
- on: usage tracking and Prometheus request metrics on, a per-source limit and a key
  rate both far above what wrk sends (every request is counted and checked, none is
  refused), counted once for the node in the workers' shared table;
- for information: "on" with the counts in the Redis of this machine
  (`KEYSAFE_REDIS_URL`), when it answers.

The servers run off, on, on, off, off, on (``--rounds`` pairs; each a fresh `keysafe up`
on the same store). wrk's throughput on a machine shared with other work swings by a
factor of two or more from run to run (other tenants take CPU at random), so the target
is judged on what bounds throughput when the server is CPU-bound: the server's own CPU
time (every process of its group, from /proc, background jobs included) per audited
read, median over the runs; off CPU / on CPU is the throughput ratio a quiet machine
would show. The wrk ratios (best runs, medians) are reported beside it. Results:
bench/results/monitor.md and monitor.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vault_bench as vb

POLICY = '[[rule]]\npath = "bench/**"\ncapabilities = ["read", "list"]\n'
REDIS_URL = os.environ.get("KEYSAFE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
HIGH_RATE = "999999999/min"  # checked on every request, never reached
TARGET_RATIO = 0.90
OFF = {"KEYSAFE_USAGE_TRACKING": "false", "KEYSAFE_REQUEST_METRICS": "false"}
ON = {
    "KEYSAFE_USAGE_TRACKING": "true",
    "KEYSAFE_REQUEST_METRICS": "true",
    "KEYSAFE_RATE_LIMIT_PER_SOURCE": HIGH_RATE,
}


class Server(vb.Server):
    """``keysafe up`` with extra environment (the monitoring settings of one run)."""

    extra_env: dict[str, str]

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [self.keysafe, "up", "--port", str(self.port)],
            env=vb.clean_env(KEYSAFE_HOME=str(self.store.home), **self.extra_env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def make_keys(store: vb.Store) -> dict[str, str]:
    """Two keys of one policy-bound service: one without a rate, one with HIGH_RATE."""
    from keysafe.config import load_settings
    from keysafe.server.services import build_services, read_unseal_key
    from keysafe.store.engine import write_txn

    settings = load_settings(home=store.home, unseal_key_file=store.home / "unseal.key")
    svc = build_services(settings, unseal_key=read_unseal_key(settings))
    try:
        svc.system.auto_unseal()
        keys = {}
        with write_txn(svc.engine) as conn:
            svc.policies.write(conn, "bench-read", POLICY, "bench")
            svc.keys.create_service(conn, "bench", ["bench-read"], "", "bench")
            for name, rate in (("plain", None), ("rated", HIGH_RATE)):
                keys[name] = svc.keys.create(
                    conn,
                    service="bench",
                    policy_names=None,
                    cidrs=["127.0.0.0/8"],
                    expires_in_seconds=86_400,
                    rate_limit=rate,
                    description=f"bench {name}",
                    creator="bench",
                ).key
    finally:
        svc.close()
    return keys


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in the server's process group (the
    `keysafe up` supervisor and its workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def redis_answers() -> bool:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def run_config(
    tools: dict[str, str],
    store: vb.Store,
    tmp: Path,
    name: str,
    env: dict[str, str],
    key: str,
    duration: int,
    warmup: int,
) -> dict[str, Any]:
    server = Server(store, tools["keysafe"], vb.free_port(), tmp / f"{name}.log")
    server.extra_env = env
    try:
        server.start()
        server.wait_healthy()
        script = vb.LUA_READ % {"token": key, "count": store.secrets, "prefix": vb.READ_PREFIX}
        assert server.proc is not None
        for phase, seconds in (("warmup", warmup), ("measured", duration)):
            if phase == "measured":
                cpu_before = group_cpu_seconds(server.proc.pid)
            run = vb.run_wrk(
                tools["wrk"],
                vb.WrkRun(f"{name}-{phase}", server.addr + "/", script),
                tmp,
                threads=2,
                conns=64,
                duration=seconds,
                warmup=0,
            )
        cpu = group_cpu_seconds(server.proc.pid) - cpu_before
        if not run.valid:
            raise vb.BenchError(f"{name}: " + "; ".join(run.problems) + "\n" + server.log_tail())
        result = {k: run.result.get(k) for k in ("rps", "p50_ms", "p99_ms", "requests")}
        result["server_cpu_s"] = round(cpu, 2)
        result["cpu_us_per_read"] = round(cpu / run.result["requests"] * 1e6, 1)
        return result
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s wrk runs, 2 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="off/on pairs (default 3)")
    parser.add_argument("--out-dir", type=Path, default=vb.RESULTS)
    args = parser.parse_args(argv)
    duration, warmup = (3, 1) if args.quick else (8, 2)
    rounds = args.rounds or (2 if args.quick else 3)
    tools = vb.find_tools()
    with_redis = redis_answers()
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ks-monitor-bench-") as tmp_name:
        tmp = Path(tmp_name)
        store = vb.Store(name="monitor", home=tmp / "home", secrets=1000)
        vb.init_and_seed(store, progress=False)
        keys = make_keys(store)
        schedule = []
        for n in range(rounds):
            pair = [(f"off-{n + 1}", OFF, keys["plain"]), (f"on-{n + 1}", ON, keys["rated"])]
            schedule.extend(pair if n % 2 == 0 else pair[::-1])
        if with_redis:
            schedule.append(("on-redis", {**ON, "KEYSAFE_REDIS_URL": REDIS_URL}, keys["rated"]))
        for name, env, key in schedule:
            print(f"[{name}] wrk {duration}s ...", flush=True)
            runs[name] = run_config(tools, store, tmp, name, env, key, duration, warmup)
            print(f"    {runs[name]}", flush=True)
    offs = sorted(r["rps"] for name, r in runs.items() if name.startswith("off-"))
    ons = sorted(
        r["rps"] for name, r in runs.items() if name.startswith("on-") and name != "on-redis"
    )
    off, on = offs[-1], ons[-1]
    ratio = on / off
    median_ratio = statistics.median(ons) / statistics.median(offs)
    best_off = max((r for n, r in runs.items() if n.startswith("off-")), key=lambda r: r["rps"])
    best_on = max(
        (r for n, r in runs.items() if n.startswith("on-") and n != "on-redis"),
        key=lambda r: r["rps"],
    )
    cpu_offs = [r["cpu_us_per_read"] for n, r in runs.items() if n.startswith("off-")]
    cpu_ons = [
        r["cpu_us_per_read"] for n, r in runs.items() if n.startswith("on-") and n != "on-redis"
    ]
    cpu_off, cpu_on = statistics.median(cpu_offs), statistics.median(cpu_ons)
    cpu_ratio = cpu_off / cpu_on
    rows: list[tuple[str, str, str, bool | None]] = [
        (
            "server CPU per audited read, off / on (us, medians; all off: "
            + ", ".join(f"{x:.0f}" for x in cpu_offs)
            + "; all on: "
            + ", ".join(f"{x:.0f}" for x in cpu_ons)
            + ")",
            f"{cpu_off:.0f} / {cpu_on:.0f}",
            "-",
            None,
        ),
        (
            "on / off throughput from server CPU per read (off CPU / on CPU)",
            f"{cpu_ratio:.3f}",
            f">= {TARGET_RATIO:.2f}",
            cpu_ratio >= TARGET_RATIO,
        ),
        (
            f"audited reads/s, monitoring off (best of {len(offs)}; all: "
            + ", ".join(f"{x:,.0f}" for x in offs)
            + ")",
            f"{off:,.0f}",
            "-",
            None,
        ),
        (
            f"audited reads/s, usage + metrics + limits on (best of {len(ons)}; all: "
            + ", ".join(f"{x:,.0f}" for x in ons)
            + ")",
            f"{on:,.0f}",
            "-",
            None,
        ),
        ("on / off wrk throughput (best runs)", f"{ratio:.3f}", "-", None),
        ("on / off throughput (medians)", f"{median_ratio:.3f}", "-", None),
        (
            "read p99 of the best runs, off / on (ms)",
            f"{best_off['p99_ms']:.1f} / {best_on['p99_ms']:.1f}",
            "-",
            None,
        ),
    ]
    if with_redis:
        redis_rps = runs["on-redis"]["rps"]
        rows.append(
            ("audited reads/s, on with Redis limits (1 run)", f"{redis_rps:,.0f}", "-", None)
        )
        rows.append(("Redis on / best off throughput", f"{redis_rps / off:.3f}", "-", None))
        rows.append(
            (
                "server CPU per audited read with Redis limits (us)",
                f"{runs['on-redis']['cpu_us_per_read']:.0f}",
                "-",
                None,
            )
        )
    else:
        rows.append(("Redis limits", "not measured (Redis unreachable)", "-", None))
    table = ["| figure | measured | target | result |", "|---|---|---|---|"]
    for label, value, target, ok in rows:
        verdict = "info" if ok is None else ("pass" if ok else "FAIL")
        table.append(f"| {label} | {value} | {target} | {verdict} |")
    text = "\n".join(table)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    header = (
        "# keysafe monitoring benchmark\n\n"
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC on {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}{' (--quick)' if args.quick else ''}. `keysafe up` "
        "(SQLite, 2 workers, HTTPS), `wrk -t2 -c64`, audited reads of 1,000 secrets on random "
        "paths with a policy-bound API key. Off: usage tracking and request metrics off, no "
        "limits. On: both on, a per-source limit and a key rate checked on every request "
        f"({HIGH_RATE}, never reached; fixed window in the workers' shared table). Off/on "
        f"pairs in alternating order ({rounds} rounds, then Redis), each a fresh server on "
        "the same store. The target is judged on the server's CPU time per read (all its "
        "processes, from /proc): wrk's throughput on this shared, loaded machine swings "
        "too much from run to run. Compare ratios, not absolute numbers.\n\n"
        "Command: `.venv/bin/python bench/monitor_bench.py"
        + (" --quick" if args.quick else "")
        + "`\n\n"
    )
    (args.out_dir / "monitor.md").write_text(header + text + "\n")
    (args.out_dir / "monitor.json").write_text(
        json.dumps(
            {
                "runs": runs,
                "ratio_cpu": cpu_ratio,
                "ratio_best": ratio,
                "ratio_median": median_ratio,
                "machine": vb.machine_info(tools),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out_dir / 'monitor.md'}")
    return 0 if cpu_ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
