"""The cluster benchmark's sections beyond audited reads (see bench/cluster_bench.py).

- ``propagation``: a change made on one ``keysafe server`` process (token, key and JWT
  revocation, key suspension, session end, policy edit, seal) until another process of
  the same database refuses, through PostgreSQL LISTEN/NOTIFY and through Redis pub/sub
  (tests/integration/coherence_kit.py; caches at 30 s so only the announcement counts).
- ``health-hung``: a node on a throwaway PostgreSQL cluster that is then frozen
  (SIGSTOP); the slowest health answer while it hangs (target < 1 s) and the time until
  the node serves again after SIGCONT.
- ``backup``: bench/backup_bench.py's backup and restore of 100,000 secrets (10,000
  with ``--quick``) on SQLite and PostgreSQL, with the time per 10,000.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from coherence_kit import KINDS, prepare, propagation, two_servers, unseal_again
from pgfreeze import Frozen
from server_proc import init_vault, running

from pgauth import password_postgres

TARGET_P99_MS = 100.0
SHORT_TIMEOUTS = {
    "KEYSAFE_DATABASE_STATEMENT_TIMEOUT_SECONDS": "2",
    "KEYSAFE_DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
    "KEYSAFE_DATABASE_POOL_TIMEOUT_SECONDS": "2",
}

# (figure, value, target, verdict) rows and the raw data, as cluster_bench's Section.
Rows = list[tuple[str, str, str, str]]


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def propagation_section(rounds: int, tmp: Path) -> tuple[Rows, dict[str, Any]]:
    rows: Rows = []
    data: dict[str, dict[str, list[float]]] = {}
    for carrier, redis in (("postgres", False), ("redis", True)):
        with two_servers("postgres", tmp / carrier, redis=redis) as pair:
            per_kind: dict[str, list[float]] = {}
            for kind in KINDS:
                count = max(2, rounds // 8) if kind == "seal" else rounds
                delays = []
                for _ in range(count):
                    delays.append(propagation(pair, prepare(pair, kind)) * 1000)
                    if kind == "seal":
                        unseal_again(pair)
                per_kind[kind] = delays
                p99 = _p99(delays)
                rows.append(
                    (
                        f"propagation p99 ({carrier}), {kind}, n={count}",
                        f"{p99:.0f} ms",
                        f"< {TARGET_P99_MS:.0f} ms",
                        _verdict(p99 < TARGET_P99_MS),
                    )
                )
                print(f"  {carrier} {kind}: p99 {p99:.0f} ms", flush=True)
            data[carrier] = per_kind
    return rows, {"delays_ms": data}


def health_hung_section(seconds: float, tmp: Path) -> tuple[Rows, dict[str, Any]]:
    with password_postgres() as url:
        vault = init_vault("postgres", tmp, url)
        with running(vault, extra_env=SHORT_TIMEOUTS) as server, server.client() as anon:
            assert anon.get("/api/v1/sys/health").status_code == 200
            waits: list[float] = []
            codes: list[int | str] = []
            with Frozen(url):
                until = time.monotonic() + seconds
                while time.monotonic() < until:
                    asked = time.monotonic()
                    try:
                        codes.append(anon.get("/api/v1/sys/health", timeout=5).status_code)
                    except httpx.TransportError as exc:
                        codes.append(type(exc).__name__)
                    waits.append(time.monotonic() - asked)
                    time.sleep(0.1)
            thawed = time.monotonic()
            while anon.get("/api/v1/sys/health", timeout=5).status_code != 200:
                if time.monotonic() - thawed > 30:
                    raise RuntimeError("the node did not recover within 30 s")
                time.sleep(0.05)
            recovery = time.monotonic() - thawed
    slowest = max(waits)
    print(f"  health while frozen: {codes}", flush=True)
    rows: Rows = [
        (
            f"health answer while PostgreSQL hangs ({seconds:.0f} s), slowest",
            f"{slowest:.2f} s",
            "< 1 s",
            _verdict(slowest < 1.0),
        ),
        ("health 503 while hung", f"{codes.count(503)} of {len(codes)}", "", ""),
        ("serving again after SIGCONT", f"{recovery:.2f} s", "", ""),
    ]
    return rows, {"codes": codes, "waits_s": waits, "recovery_s": recovery}


def backup_section(count: int) -> tuple[Rows, dict[str, Any]]:
    import backup_bench  # bench/ is this script's folder, so it is importable

    results = backup_bench.run(("sqlite", "postgres"), count)
    rows: Rows = []
    for r in results:
        rows.append(
            (
                f"backup of {r['secrets']:,} secrets ({r['engine']})",
                f"{r['backup_s']} s ({r['backup_s_per_10k']} s per 10k)",
                "",
                "",
            )
        )
        rows.append(
            (
                f"restore of {r['secrets']:,} secrets ({r['engine']})",
                f"{r['restore_s']} s ({r['restore_s_per_10k']} s per 10k)",
                "",
                "",
            )
        )
    return rows, {"rows": results}


SectionFn = Callable[[bool, Path], tuple[Rows, dict[str, Any]]]
SECTIONS: dict[str, SectionFn] = {
    "propagation": lambda quick, tmp: propagation_section(5 if quick else 40, tmp),
    "health-hung": lambda quick, tmp: health_hung_section(4.0 if quick else 10.0, tmp),
    "backup": lambda quick, tmp: backup_section(10_000 if quick else 100_000),
}
