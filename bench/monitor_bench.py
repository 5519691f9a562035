"""Monitoring benchmark: what usage tracking, metrics and rate limits cost audited reads.

    .venv/bin/python bench/monitor_bench.py            # about 4 minutes
    .venv/bin/python bench/monitor_bench.py --quick    # 4 short slices per server

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

Every configuration gets its own copy of one seeded store and its own server, and all
of them stay up for the whole run. The load visits them in turn, in short slices (off,
on, then on, off, ...; ``--slices`` each): this machine's speed drifts by 10-30% over
minutes (other tenants of the host), so sequential runs of a minute each compared a
faster machine with a slower one, while slices seconds apart see the same machine.
The target is judged on what bounds throughput when the server is CPU-bound: the
server's own CPU time (every process of its group, from /proc, background jobs
included) per audited read. Each "on" slice is paired with the "off" slice beside it;
the figure is the median over the pairs of off CPU / on CPU, the throughput ratio a
quiet machine would show. The ratio of the medians, the wrk throughput ratio and each
configuration's CPU split by process (workers, the job process, the main process) are
reported beside it. Results: bench/results/monitor.md and monitor.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
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
            svc.policies.write(conn, "bench-read", POLICY, "bench", holder=None)
            svc.keys.create_service(conn, "bench", ["bench-read"], "", "bench", holder=None)
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
                    holder=None,
                ).key
    finally:
        svc.close()
    return keys


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


@dataclass
class Config:
    """One configuration: its settings, key, server and the slices measured on it."""

    name: str
    key: str
    server: Server
    slices: list[dict[str, Any]]


def process_cpu(pgid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every live process in the group, by pid, with its
    role: ``jobs`` (the job process), ``worker`` (uvicorn's workers) or ``main``."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # pgrp
                continue
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"KEYSAFE_INTERNAL_ROLE=jobs" in environ:
            role = "jobs"
        elif b"multiprocessing" in cmdline:
            role = "worker"
        else:
            role = "main"
        found[int(entry.name)] = (role, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def cpu_by_role(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    spent: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        spent[role] = spent.get(role, 0.0) + seconds - before.get(pid, (role, 0.0))[1]
    return spent


def load_slice(tools: dict[str, str], config: Config, tmp: Path, seconds: int) -> dict[str, Any]:
    """One wrk slice against ``config``'s server: its throughput and CPU per read."""
    server = config.server
    assert server.proc is not None
    script = vb.LUA_READ % {"token": config.key, "count": 1000, "prefix": vb.READ_PREFIX}
    before = process_cpu(server.proc.pid)
    run = vb.run_wrk(
        tools["wrk"],
        vb.WrkRun(f"{config.name}-{len(config.slices) + 1}", server.addr + "/", script),
        tmp,
        threads=2,
        conns=64,
        duration=seconds,
        warmup=0,
    )
    spent = cpu_by_role(before, process_cpu(server.proc.pid))
    if not run.valid:
        raise vb.BenchError(f"{config.name}: " + "; ".join(run.problems) + "\n" + server.log_tail())
    reads = run.result["requests"]
    return {
        "rps": run.result["rps"],
        "p99_ms": run.result["p99_ms"],
        "requests": reads,
        "cpu_us_per_read": sum(spent.values()) / reads * 1e6,
        "cpu_us_per_read_by_role": {role: t / reads * 1e6 for role, t in spent.items()},
    }


def median_of(config: Config, field_name: str) -> float:
    return float(statistics.median(s[field_name] for s in config.slices))


def role_split(config: Config) -> str:
    """Median CPU per read of each kind of process, e.g. ``jobs 25, main 1, worker 540``."""
    roles = sorted({r for s in config.slices for r in s["cpu_us_per_read_by_role"]})
    parts = []
    for role in roles:
        spent = [s["cpu_us_per_read_by_role"].get(role, 0.0) for s in config.slices]
        parts.append(f"{role} {statistics.median(spent):.0f}")
    return ", ".join(parts)


def run_slices(
    tools: dict[str, str], tmp: Path, with_redis: bool, slices: int, seconds: int
) -> list[Config]:
    """Seed one store, give each configuration a copy and a server, then load them in
    turn (off, on, [redis]; then on, off, [redis]; ...)."""
    seed = vb.Store(name="monitor", home=tmp / "seed", secrets=1000)
    vb.init_and_seed(seed, progress=False)
    keys = make_keys(seed)
    plan = [("off", OFF, keys["plain"]), ("on", ON, keys["rated"])]
    if with_redis:
        plan.append(("on-redis", {**ON, "KEYSAFE_REDIS_URL": REDIS_URL}, keys["rated"]))
    configs = []
    for name, env, key in plan:
        store = vb.Store(name=name, home=tmp / name, secrets=1000)
        shutil.copytree(seed.home, store.home)  # no server has run on it yet
        server = Server(store, tools["keysafe"], vb.free_port(), tmp / f"{name}.log")
        server.extra_env = env
        configs.append(Config(name, key, server, []))
    try:
        for config in configs:
            config.server.start()
        for config in configs:
            config.server.wait_healthy()
            load_slice(tools, config, tmp, 2)  # warm-up, discarded
        off, on, *rest = configs
        for n in range(slices):
            for config in [off, on, *rest] if n % 2 == 0 else [on, off, *rest]:
                print(f"[{config.name} {n + 1}/{slices}] wrk {seconds}s", flush=True)
                config.slices.append(load_slice(tools, config, tmp, seconds))
    finally:
        for config in configs:
            config.server.stop()
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 slices of 2 s per server")
    parser.add_argument("--slices", type=int, default=None, help="slices per server (16)")
    parser.add_argument("--seconds", type=int, default=None, help="seconds a slice (4)")
    parser.add_argument("--out-dir", type=Path, default=vb.RESULTS)
    args = parser.parse_args(argv)
    slices = args.slices or (4 if args.quick else 16)
    seconds = args.seconds or (2 if args.quick else 4)
    if slices < 2:
        parser.error("--slices must be at least 2")
    tools = vb.find_tools()
    with_redis = redis_answers()
    with tempfile.TemporaryDirectory(prefix="ks-monitor-bench-") as tmp_name:
        configs = run_slices(tools, Path(tmp_name), with_redis, slices, seconds)
    off, on = configs[0], configs[1]
    pairs = [
        a["cpu_us_per_read"] / b["cpu_us_per_read"]
        for a, b in zip(off.slices, on.slices, strict=True)
    ]
    paired = statistics.median(pairs)
    quartiles = statistics.quantiles(pairs, n=4)
    cpu_off, cpu_on = median_of(off, "cpu_us_per_read"), median_of(on, "cpu_us_per_read")
    rps_off, rps_on = median_of(off, "rps"), median_of(on, "rps")
    rows: list[tuple[str, str, str, bool | None]] = [
        (
            f"on / off throughput from server CPU per read: median over {len(pairs)} "
            "adjacent slice pairs of off CPU / on CPU (quartiles "
            f"{quartiles[0]:.3f} / {quartiles[2]:.3f})",
            f"{paired:.3f}",
            f">= {TARGET_RATIO:.2f}",
            paired >= TARGET_RATIO,
        ),
        (
            "server CPU per audited read, off / on (us, medians of the slices)",
            f"{cpu_off:.0f} / {cpu_on:.0f} (ratio {cpu_off / cpu_on:.3f})",
            "-",
            None,
        ),
        ("off: CPU per read by process (us, medians)", role_split(off), "-", None),
        ("on: CPU per read by process (us, medians)", role_split(on), "-", None),
        (
            "audited reads/s, off / on (medians of the slices)",
            f"{rps_off:,.0f} / {rps_on:,.0f} (ratio {rps_on / rps_off:.3f})",
            "-",
            None,
        ),
        (
            "read p99, off / on (ms, medians of the slices)",
            f"{median_of(off, 'p99_ms'):.1f} / {median_of(on, 'p99_ms'):.1f}",
            "-",
            None,
        ),
    ]
    if with_redis:
        redis = configs[2]
        cpu_redis, rps_redis = median_of(redis, "cpu_us_per_read"), median_of(redis, "rps")
        rows.append(
            (
                "on with Redis limits: CPU per read (us) and off CPU / its CPU (medians)",
                f"{cpu_redis:.0f} ({cpu_off / cpu_redis:.3f})",
                "-",
                None,
            )
        )
        rows.append(
            (
                "on with Redis limits: reads/s and its ratio to off (medians)",
                f"{rps_redis:,.0f} ({rps_redis / rps_off:.3f})",
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
        f"Python {sys.version.split()[0]}{' (--quick)' if args.quick else ''}. One "
        "`keysafe up` per configuration (SQLite, 2 workers, HTTPS), each on its own copy of "
        "one seeded store, all up at once; `wrk -t2 -c64` visits them in turn, "
        f"{slices} slices of {seconds} s each, reading 1,000 secrets on random paths with a "
        "policy-bound API key. Off: usage tracking and request metrics off, no limits. On: "
        "both on, a per-source limit and a key rate checked on every request "
        f"({HIGH_RATE}, never reached; counted in the workers' shared table). The target is "
        "judged on the server's CPU time per read (all its processes, from /proc), paired "
        "slice by slice. Compare ratios, not absolute numbers.\n\n"
        "Command: `.venv/bin/python bench/monitor_bench.py"
        + (" --quick" if args.quick else "")
        + "`\n\n"
    )
    (args.out_dir / "monitor.md").write_text(header + text + "\n")
    (args.out_dir / "monitor.json").write_text(
        json.dumps(
            {
                "slices": {c.name: c.slices for c in configs},
                "paired_ratios": pairs,
                "ratio_cpu_paired": paired,
                "ratio_cpu_medians": cpu_off / cpu_on,
                "ratio_rps_medians": rps_on / rps_off,
                "machine": vb.machine_info(tools),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out_dir / 'monitor.md'}")
    return 0 if paired >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
