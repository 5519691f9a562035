"""Benchmark: ``keysafe operator backup`` and ``restore`` of a store of 100,000 secrets.

One command: ``python bench/backup_bench.py`` (``--secrets N``, ``--quick`` for 10,000,
``--engines sqlite,postgres``). For each engine it fills a fresh, initialised store
with N secrets of one version each (random bytes of a real envelope's size stand in for
the ciphertexts: the backup copies them without reading them), then:

- backs it up in a child process (so that its peak memory shows that the backup streams:
  it stays flat while the file grows with N), timed inside the child;
- reads the same rows with the bare driver in the same child, as the reference (the
  floor of any backup that reads every row);
- restores the file into a fresh store of the same engine, timed.

It prints a table (seconds, seconds per 10,000 secrets, the backup against the bare
read, file size, peak RSS) and writes bench/results/backup_bench.json. ``run(...)``
returns the rows, for bench/cluster_bench.py. Server, database and benchmark share the
same cores: read the figures as rough.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PG_BASE = os.environ.get("KEYSAFE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
FILL_BATCH = 5000


@contextlib.contextmanager
def _database(engine: str, tmp: Path, name: str) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{tmp / (name + '.db')}"
        return
    import psycopg

    schema = f"ks_bench_{name}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _fill(url: str, home: Path, count: int) -> None:
    """An initialised vault (keyring, root token, audit head) plus ``count`` secrets."""
    from sqlalchemy import insert

    from keysafe.config import load_settings
    from keysafe.server.runner import prepare_embedded
    from keysafe.store.engine import make_engine, write_txn
    from keysafe.store.tables import secret_versions
    from keysafe.store.tables import secrets as secrets_table

    prepare_embedded(load_settings(home=home, database_url=url))
    engine = make_engine(url)
    now = time.time_ns() // 1000
    try:
        for start in range(1, count + 1, FILL_BATCH):
            ids = range(start, min(count, start + FILL_BATCH - 1) + 1)
            with write_txn(engine) as conn:
                conn.execute(
                    insert(secrets_table),
                    [
                        {
                            "id": i,
                            "path": f"team-{i % 50}/app-{i % 7}/SECRET_{i}",
                            "current_version": 1,
                            "max_versions": 20,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in ids
                    ],
                )
                conn.execute(
                    insert(secret_versions),
                    [
                        {
                            "secret_id": i,
                            "version": 1,
                            "format": 1,
                            "kek_version": 1,
                            "wrapped_dek": os.urandom(60),
                            "ciphertext": os.urandom(28 + 48),
                            "created_at": now,
                            "created_by": "bench",
                            "destroyed": False,
                        }
                        for i in ids
                    ],
                )
    finally:
        engine.dispose()


def _child_backup(url: str, out: Path) -> dict[str, Any]:
    """Runs in the child: the backup to ``out``, then the bare read of the same rows."""
    from sqlalchemy import text

    from keysafe.store.backup import stream_backup
    from keysafe.store.backup_format import backup_tables
    from keysafe.store.engine import make_engine

    engine = make_engine(url)

    def bare_read() -> int:
        rows = 0
        with engine.connect() as conn:
            for table in backup_tables():
                result = conn.execution_options(yield_per=1000).execute(
                    text(f'SELECT * FROM "{table.name}"')  # noqa: S608 - names from metadata
                )
                for _ in result:
                    rows += 1
        return rows

    # A first, untimed read maps the database in (SQLite's mmap and page cache are
    # counted in RSS): then both timed reads start warm and the RSS growth is the
    # backup's own.
    bare_read()
    rss_before = _peak_rss_kib()
    started = time.perf_counter()
    with out.open("wb") as fh:
        for chunk in stream_backup(engine):
            fh.write(chunk)
    backup_s = time.perf_counter() - started
    rss_after = _peak_rss_kib()
    started = time.perf_counter()
    rows = bare_read()
    raw_s = time.perf_counter() - started
    engine.dispose()
    return {
        "backup_s": backup_s,
        "raw_read_s": raw_s,
        "rows": rows,
        "rss_before_mib": rss_before / 1024,
        "rss_peak_mib": rss_after / 1024,
    }


def _peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent through fork and exec, so a child would report the filler's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _backup_in_child(url: str, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child-backup", url, str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _restore(url: str, backup: Path) -> float:
    from keysafe.store.engine import make_engine
    from keysafe.store.restore import restore

    engine = make_engine(url)
    try:
        started = time.perf_counter()
        with backup.open("rb") as fh:
            restore(engine, fh)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def run(
    engines: tuple[str, ...] = ("sqlite", "postgres"), count: int = 100_000
) -> list[dict[str, Any]]:
    """One row per engine: backup and restore of ``count`` secrets (see the module)."""
    rows = []
    per = count / 10_000
    for engine in engines:
        with tempfile.TemporaryDirectory(prefix="ks-backup-bench-") as folder:
            tmp = Path(folder)
            with _database(engine, tmp, "src") as src, _database(engine, tmp, "dst") as dst:
                started = time.perf_counter()
                _fill(src, tmp / "home", count)
                fill_s = time.perf_counter() - started
                backup = tmp / "vault.backup"
                child = _backup_in_child(src, backup)
                restore_s = _restore(dst, backup)
            rows.append(
                {
                    "engine": engine,
                    "secrets": count,
                    "rows": child["rows"],
                    "fill_s": round(fill_s, 2),
                    "backup_s": round(child["backup_s"], 2),
                    "backup_s_per_10k": round(child["backup_s"] / per, 3),
                    "raw_read_s": round(child["raw_read_s"], 2),
                    "backup_vs_raw_read": round(child["backup_s"] / child["raw_read_s"], 2),
                    "restore_s": round(restore_s, 2),
                    "restore_s_per_10k": round(restore_s / per, 3),
                    "file_mib": round(backup.stat().st_size / 2**20, 1),
                    "backup_rss_growth_mib": round(
                        child["rss_peak_mib"] - child["rss_before_mib"], 1
                    ),
                    "backup_peak_rss_mib": round(child["rss_peak_mib"], 1),
                }
            )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| engine | secrets | backup s | per 10k | bare read s | backup / bare read "
        "| restore s | per 10k | file MiB | backup peak RSS MiB (growth) |"
    )
    lines = [head, "|" + " --- |" * 10]
    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['secrets']:,} | {r['backup_s']} | {r['backup_s_per_10k']} "
            f"| {r['raw_read_s']} | {r['backup_vs_raw_read']}x | {r['restore_s']} "
            f"| {r['restore_s_per_10k']} | {r['file_mib']} "
            f"| {r['backup_peak_rss_mib']} (+{r['backup_rss_growth_mib']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--secrets", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 secrets")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--child-backup", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_backup:
        print(json.dumps(_child_backup(args.child_backup[0], Path(args.child_backup[1]))))
        return
    count = 10_000 if args.quick else args.secrets
    rows = run(tuple(e for e in args.engines.split(",") if e), count)
    table = _table(rows)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "backup_bench",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "command": "python bench/backup_bench.py" + (" --quick" if args.quick else ""),
        "rows": rows,
    }
    (RESULTS / "backup_bench.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
