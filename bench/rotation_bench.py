"""Benchmark of the rotation scheduler: 1,000 due ``random`` rotations, against 10 s.

One command: ``python bench/rotation_bench.py`` (``--secrets N``, ``--store
sqlite|postgres``, ``--concurrency C``).

In one run, on an in-process vault (initialised and unsealed, audit on):

1. rotations: N secrets with a ``random`` policy each, all due (set up untimed); the
   timed part is the production scheduler pass (``RotationService.run_due``, the
   default batch of 500 and concurrency 32) repeated back to back until nothing is due.
   Each rotation claims its policy (reading it back), then, ``random`` having no
   external effect, writes in one group-committed transaction the start event, the new
   version, the promoted run, the policy's next due date (releasing the claim) and the
   promote event. (External rotators record generated/applied/verified/promoted as
   separate steps; their cost is the target's.) Checked afterwards: every secret at
   version 2 with a new value, N promoted runs, N ``rotation:promote`` audit events.
2. reference, same run: N plain audited writes (``SecretsService.write``, same
   concurrency) of new values to the same secrets: the floor a promotion alone costs.

Results: a table on stdout, bench/results/rotation.md and bench/results/rotation.json
(``rotation-postgres.*`` for the PostgreSQL store).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import psycopg
from sqlalchemy import func, select, update

from inprocess import PG, vault
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables import audit_events
from keysafe.store.tables_rotation import rotation_policies, rotation_runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LIMIT_S = 10.0


async def _each(paths: list[str], concurrency: int, fn: Any) -> None:
    limiter = anyio.Semaphore(concurrency)

    async def one(path: str) -> None:
        async with limiter:
            await fn(path)

    async with anyio.create_task_group() as group:
        for path in paths:
            group.start_soon(one, path)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.secrets
    tmp = Path(tempfile.mkdtemp(prefix="ks-rotation-bench-"))
    schema = "ks_bench_" + os.urandom(4).hex()
    svc, root = vault(args.store, tmp, schema)
    paths = [f"bench/rot/S{i:05d}" for i in range(n)]
    out: dict[str, Any] = {"secrets": n, "store": args.store, "concurrency": args.concurrency}
    try:
        t0 = time.perf_counter()

        async def seed(path: str) -> None:
            await svc.secrets.write(root, path, "initial-value")
            await svc.rotation.set_policy(
                root, path, rotator="random", options={"length": "48"},
                every_seconds=86400, grace_seconds=3600,
            )  # fmt: skip

        await _each(paths, 16, seed)
        with write_txn(svc.engine) as conn:
            conn.execute(update(rotation_policies).values(next_due=0))
        out["setup_s"] = time.perf_counter() - t0

        # 1. the production scheduler passes
        passes = promoted = 0
        t0 = time.perf_counter()
        while True:
            result = await svc.rotation.run_due(concurrency=args.concurrency)
            if result.claimed == 0:
                break
            passes += 1
            promoted += result.promoted
        out["rotations_s"] = time.perf_counter() - t0
        out["passes"] = passes
        assert promoted == n, (promoted, n)
        with read_conn(svc.engine) as conn:
            runs = conn.execute(
                select(func.count()).where(rotation_runs.c.step == "promoted")
            ).scalar_one()
            events = conn.execute(
                select(func.count()).where(audit_events.c.operation == "rotation:promote")
            ).scalar_one()
        assert runs == n, runs
        assert events == n, events
        for path in paths[:: max(1, n // 50)]:
            value = await svc.secrets.read(root, path)
            assert value.version == 2, (path, value.version)
            assert value.value != "initial-value"
            assert len(value.value) == 48

        # 2. reference: plain audited writes of the same secrets
        async def write(path: str) -> None:
            await svc.secrets.write(root, path, os.urandom(24).hex())

        t0 = time.perf_counter()
        await _each(paths, args.concurrency, write)
        out["writes_s"] = time.perf_counter() - t0
    finally:
        svc.close()
        if args.store == "postgres":
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    out["ratio_to_limit"] = out["rotations_s"] / LIMIT_S
    out["ratio_to_writes"] = out["rotations_s"] / out["writes_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=1000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    out = anyio.run(run, args)
    out["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    n = out["secrets"]
    lines = [
        f"# Rotation: {n:,} due `random` rotations, store {out['store']}",
        "",
        "| measurement | seconds | per rotation | per second | vs 10 s limit |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label in (
        ("rotations_s", f"scheduler passes ({out['passes']}), full protocol + audit"),
        ("writes_s", "reference: plain audited writes of the same secrets"),
    ):
        secs = out[key]
        lines.append(
            f"| {label} | {secs:.2f} | {secs / n * 1e3:.2f} ms | {n / secs:,.0f} "
            f"| {secs / LIMIT_S:.2f} |"
        )
    lines += [
        "",
        f"Rotations take {out['ratio_to_writes']:.1f}x the plain writes; "
        f"{out['ratio_to_limit']:.2f} of the 10 s limit. Concurrency {out['concurrency']}; "
        f"setup (not timed) {out['setup_s']:.1f} s. Machine: {out['machine']} (shared, noisy).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "rotation" if out["store"] == "sqlite" else f"rotation-{out['store']}"
    (RESULTS / f"{stem}.md").write_text(text)
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
