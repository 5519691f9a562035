"""Benchmark of anomaly scoring: audit events scored per second in one process.

One command: ``python bench/anomaly_bench.py`` (``--quick`` for a short smoke run).

The workload is the replay test's (tests/integration/anomaly_workload.py): 50 API keys
over 16 simulated days with office, always-on and nightly-batch patterns, their own
rates, sources and paths (deterministic, ``--seed``). The first ``--warm-days`` days
warm the baselines (not timed); the rest is scored, each figure the best of
``--repeat`` runs:

1. the detector alone (``AnomalyDetector.observe``: judge, then learn) on baselines
   loaded from their stored form, as the job does;
2. the job's whole batch on SQLite (``AnomalyRunner.score`` in 5,000-event write
   transactions: load the baselines, score, store baselines and alerts);
3. for reference, in the same run: a loop that only reads each event's fields, the floor
   any scorer pays in this interpreter.

The target is 10,000 events/s; the table gives the ratio to it.
Results: a table on stdout, bench/results/anomaly.md and bench/results/anomaly.json.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from anomaly_workload import DAY, START, generate  # noqa: E402

from keysafe.audit.models import AuditEvent  # noqa: E402
from keysafe.monitor.anomaly import AnomalyDetector  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET = 10_000
BATCH = 5000


def floor_loop(events: list[AuditEvent]) -> float:
    start = time.perf_counter()
    n = 0
    for e in events:
        if e.actor and e.source and e.path and e.outcome and e.ts:
            n += 1
    elapsed = time.perf_counter() - start
    assert n == len(events)
    return len(events) / elapsed


def detector_only(warm: list[AuditEvent], timed: list[AuditEvent]) -> tuple[float, int]:
    trained = AnomalyDetector()
    for e in warm:
        trained.observe(e)
    blobs = {actor: b.to_bytes() for actor, b in trained.baselines.items()}
    det = AnomalyDetector()
    for actor, blob in blobs.items():
        det.load(actor, blob)
    start = time.perf_counter()
    found = 0
    for e in timed:
        found += len(det.observe(e))
    elapsed = time.perf_counter() - start
    return len(timed) / elapsed, found


def job_on_sqlite(warm: list[AuditEvent], timed: list[AuditEvent]) -> tuple[float, int]:
    from keysafe.config import load_settings
    from keysafe.server.services import build_services
    from keysafe.store.engine import make_engine, write_txn
    from keysafe.store.migrate import upgrade
    from keysafe.system.service import MODE_KEY

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        settings = load_settings(home=Path(tmp) / "home")
        boot = build_services(settings, engine=engine)
        result = boot.system.initialize(1, 1, mode=MODE_KEY)
        svc = build_services(settings, engine=engine, unseal_key=result.shares[0])
        assert svc.system.auto_unseal()
        svc.audit.start()
        try:
            for i in range(0, len(warm), BATCH):
                with write_txn(engine) as conn:
                    svc.anomaly.score(conn, warm[i : i + BATCH])
            start = time.perf_counter()
            raised = 0
            for i in range(0, len(timed), BATCH):
                with write_txn(engine) as conn:
                    raised += len(svc.anomaly.score(conn, timed[i : i + BATCH]))
            elapsed = time.perf_counter() - start
        finally:
            svc.close()
            boot.close()
    return len(timed) / elapsed, raised


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm-days", type=int, default=7)
    args = parser.parse_args()
    days = 9 if args.quick else 16
    repeat = 1 if args.quick else args.repeat

    t0 = time.perf_counter()
    events = generate(seed=args.seed, days=days)
    cut = START + args.warm_days * DAY
    warm = [e for e in events if e.ts < cut]
    timed = [e for e in events if e.ts >= cut]
    print(
        f"workload: {len(events):,} events, 50 keys, {days} days "
        f"({len(warm):,} to warm, {len(timed):,} timed); generated in "
        f"{time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )

    floor = max(floor_loop(timed) for _ in range(repeat))
    det_runs = [detector_only(warm, timed) for _ in range(repeat)]
    job_runs = [job_on_sqlite(warm, timed) for _ in range(repeat)]
    detector, det_found = max(det_runs)
    job, job_raised = max(job_runs)

    rows = [
        ("reference: reading each event's fields", floor, None),
        ("detector alone (judge + learn)", detector, det_found),
        ("job batch on SQLite (baselines + alerts stored)", job, job_raised),
    ]
    doc: dict[str, Any] = {
        "target_events_per_second": TARGET,
        "events_timed": len(timed),
        "events_warm": len(warm),
        "days": days,
        "seed": args.seed,
        "repeat": repeat,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "results": [
            {
                "what": what,
                "events_per_second": round(rate),
                "ratio_to_target": round(rate / TARGET, 2),
                "alerts": alerts,
            }
            for what, rate, alerts in rows
        ],
    }
    lines = [
        "| what | events/s | ratio to 10,000/s | alerts on the normal workload |",
        "| --- | ---: | ---: | ---: |",
    ]
    for what, rate, alerts in rows:
        shown = "" if alerts is None else str(alerts)
        lines.append(f"| {what} | {rate:,.0f} | {rate / TARGET:.1f}x | {shown} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    note = (
        f"\n\n{len(timed):,} events timed after {args.warm_days} warm-up days; best of "
        f"{repeat}; Python {platform.python_version()}, {os.cpu_count()} CPUs (shared: "
        "treat as rough).\n"
    )
    (RESULTS / "anomaly.md").write_text("# Anomaly scoring\n\n" + table + note)
    (RESULTS / "anomaly.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
