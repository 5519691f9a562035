"""Audit appends on one node: this tree against a reference commit, in the same run.

    .venv/bin/python bench/audit_append_bench.py                  # against main
    .venv/bin/python bench/audit_append_bench.py --ref HEAD~3 --events 5000

The audit group commit is what every audited read waits for. Each measurement runs in
its own process on a fresh database (SQLite, and PostgreSQL when reachable): 64
concurrent ``record`` calls at a time through ``AuditLog`` until ``--events`` events
are durable, reported as events per second. The reference is the same code path from
``git archive REF src`` (imported instead of this tree's), alternating with this tree
``--rounds`` times so that drift on a shared machine cancels out in the means. Checks
that one node does not slow down with writer chains. Results: a table on stdout and
bench/results/audit_append.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# Runs in a child process with PYTHONPATH at the tree being measured.
CHILD = r"""
import asyncio, os, sys, time
sys.path.insert(0, sys.argv[4])
from keysafe.audit.models import AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.store.engine import make_engine
from keysafe.store.migrate import upgrade

url, events, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
engine = make_engine(url)
upgrade(engine)
log = AuditLog(engine, key=lambda: b"k" * 32)
log.start()

async def main() -> float:
    async def one(i: int) -> None:
        await log.record(AuditEvent(i, "r", "tok_b", "127.0.0.1", "secret:read", "b/p", "ok"))
    for i in range(200):  # warm-up
        await one(i)
    start = time.perf_counter()
    for base in range(0, events, concurrency):
        await asyncio.gather(*(one(base + i) for i in range(concurrency)))
    return events / (time.perf_counter() - start)

print(asyncio.run(main()))
log.stop()
engine.dispose()
"""


def _reference_src(ref: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = into / "ref.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _measure(src: Path, url: str, events: int, concurrency: int) -> float:
    """Events per second; tried up to 3 times (on a loaded shared server the migration
    lock can time out)."""
    for attempt in range(3):
        try:
            return _measure_once(src, url, events, concurrency)
        except RuntimeError as exc:
            if attempt == 2:
                raise
            print(f"  (retrying: {exc})", flush=True)
    raise AssertionError("unreachable")


def _measure_once(src: Path, url: str, events: int, concurrency: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(events), str(concurrency), str(src)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1])
    return float(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="the reference commit (default main)")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT / "tests")]
    from pgtest import _pg_problem, pg_schema_url

    engines = ["sqlite"] + ([] if _pg_problem() else ["postgres"])
    rates: dict[str, dict[str, list[float]]] = {e: {"reference": [], "this": []} for e in engines}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        trees = {"reference": _reference_src(args.ref, tmp / "ref"), "this": ROOT / "src"}
        n = 0
        for _ in range(args.rounds):
            for engine in engines:
                for name, src in trees.items():
                    n += 1
                    if engine == "sqlite":
                        rate = _measure(
                            src, f"sqlite:///{tmp / f'{n}.db'}", args.events, args.concurrency
                        )
                    else:
                        with pg_schema_url("ks_bench_") as url:
                            rate = _measure(src, url, args.events, args.concurrency)
                    rates[engine][name].append(rate)
                    print(f"  {engine} {name}: {rate:,.0f} events/s", flush=True)
    lines = ["engine    reference (ev/s)  this tree (ev/s)  ratio", "-" * 50]
    summary = {}
    for engine, by in rates.items():
        ref = sum(by["reference"]) / len(by["reference"])
        this = sum(by["this"]) / len(by["this"])
        summary[engine] = {"reference": ref, "this": this, "ratio": this / ref}
        lines.append(f"{engine:<9} {ref:>16,.0f}  {this:>16,.0f}  {this / ref:5.2f}")
    table = "\n".join(lines)
    print()
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/audit_append_bench.py " + " ".join(argv or sys.argv[1:]),
        "reference": args.ref,
        "options": vars(args),
        "runs": rates,
        "summary": summary,
        "table": table,
    }
    (RESULTS / "audit_append.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
