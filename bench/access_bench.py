"""API-key benchmark: verification in process, flat in the number of stored keys, and
the HTTP cost of authenticating with an API key instead of the root token.

    .venv/bin/python bench/access_bench.py            # full run (1,000 and 1,000,000 keys)
    .venv/bin/python bench/access_bench.py --quick    # 1,000 and 100,000 keys, short wrk runs

Figures (issue "least privilege"):
1. API key verification in process: >= 100,000 per second (the per-process lookup cache
   warm, as on a server answering a steady client) and, for reference, with the cache off
   (one indexed database lookup per verification).
2. Verification time flat (within 20%) from 1,000 to 1,000,000 stored keys, both ways.
3. Over HTTPS on `keysafe up` (2 workers, SQLite), audited reads authenticated with an API
   key bound to a policy reach within 10% of the same reads with the root token.
Policy decisions (200,000/s with 1,000 rules) are measured by bench/policy_bench.py.
Results: bench/results/access.md and access.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vault_bench as vb

POLICY = '[[rule]]\npath = "bench/**"\ncapabilities = ["read", "list"]\n'


_KEY_COLUMNS = (
    "id", "key_hash", "display_prefix", "key_space", "owner_type", "owner_id",
    "description", "policies", "cidrs", "rate_limit", "created_at", "created_by",
    "expires_at", "revoked_at", "grace_until", "replaced_by", "last_used_at",
    "last_used_from", "use_count",
)  # fmt: skip


def _seed_keys(db: Path, count: int) -> None:
    """``count`` stored keys with random hashes (one real key is added afterwards)."""
    conn = sqlite3.connect(db)
    now = time.time_ns() // 1000
    far = now + 300 * 86_400 * 1_000_000
    rows = (
        (
            f"key_{i:016x}",
            secrets.token_bytes(32),
            "ks_live_xxxx",
            "keysafe",
            "service",
            "svc_bench",
            "",
            '["bench-read"]',
            "[]",
            None,
            now,
            "bench",
            far,
            None,
            None,
            None,
            None,
            None,
            0,
        )
        for i in range(count)
    )
    with conn:  # named columns: a later migration may add more (nullable) ones
        conn.executemany(
            f"INSERT INTO api_keys ({', '.join(_KEY_COLUMNS)})"  # noqa: S608 (fixed names)
            f" VALUES ({', '.join('?' * len(_KEY_COLUMNS))})",
            rows,
        )
    conn.close()


def verification(count: int, loops: int) -> dict[str, Any]:
    """Verifications per second with ``count`` stored keys, cache warm and cache off."""
    from keysafe.access.apikeys import KeyService
    from keysafe.clock import SystemClock
    from keysafe.crypto.envelope import generate_key
    from keysafe.store.engine import make_engine, write_txn
    from keysafe.store.migrate import upgrade
    from keysafe.store.tables import policies

    with tempfile.TemporaryDirectory(prefix="ks-keys-") as tmp:
        db = Path(tmp) / "keys.db"
        engine = make_engine(f"sqlite:///{db}")
        upgrade(engine)
        started = time.perf_counter()
        _seed_keys(db, count)
        seed_s = time.perf_counter() - started
        token_key = generate_key()
        results: dict[str, Any] = {"stored_keys": count, "seed_seconds": round(seed_s, 1)}
        for label, cache_seconds, n in (("warm", 3600.0, loops), ("uncached", 0.0, loops // 10)):
            service = KeyService(
                engine, lambda: token_key, SystemClock(), cache_seconds=cache_seconds
            )
            with write_txn(engine) as conn:
                if label == "warm":
                    conn.execute(
                        policies.insert().values(
                            name="bench-read",
                            text=POLICY,
                            created_at=0,
                            updated_at=0,
                            updated_by="bench",
                        )
                    )
                    service.create_service(conn, "bench", ["bench-read"], "", "bench", holder=None)
                issued = service.create(
                    conn,
                    service="bench",
                    policy_names=None,
                    cidrs=["10.0.0.0/8"],
                    expires_in_seconds=86_400,
                    rate_limit=None,
                    description="",
                    creator="bench",
                    holder=None,
                )
            key = issued.key
            service.verify(key, "10.1.2.3")  # warm the cache (and the page cache)
            best = 0.0
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(n):
                    service.verify(key, "10.1.2.3")
                best = max(best, n / (time.perf_counter() - t0))
            results[label] = round(best)
            service.close()
        engine.dispose()
    return results


def http_cost(tools: dict[str, str], tmp: Path, duration: int, warmup: int) -> dict[str, Any]:
    """Audited reads over HTTPS with the root token and with a policy-bound API key."""
    from keysafe.config import load_settings
    from keysafe.server.services import build_services, read_unseal_key
    from keysafe.store.engine import write_txn

    store = vb.Store(name="keys", home=tmp / "keys-home", secrets=1000)
    vb.init_and_seed(store, progress=False)
    settings = load_settings(home=store.home, unseal_key_file=store.home / "unseal.key")
    svc = build_services(settings, unseal_key=read_unseal_key(settings))
    try:
        svc.system.auto_unseal()
        with write_txn(svc.engine) as conn:
            svc.policies.write(conn, "bench-read", POLICY, "bench", holder=None)
            svc.keys.create_service(conn, "bench", ["bench-read"], "", "bench", holder=None)
            key = svc.keys.create(
                conn,
                service="bench",
                policy_names=None,
                cidrs=["127.0.0.0/8"],
                expires_in_seconds=86_400,
                rate_limit=None,
                description="bench",
                creator="bench",
                holder=None,
            ).key
    finally:
        svc.close()
    server = vb.Server(store, tools["keysafe"], vb.free_port(), tmp / "keys-server.log")
    runs: dict[str, Any] = {}
    try:
        server.start()
        server.wait_healthy()
        # root, key, key, root: drift on a shared machine cancels out in the means.
        schedule = [
            ("root", store.root_token, warmup),
            ("api-key", key, warmup),
            ("api-key-again", key, 0),
            ("root-again", store.root_token, 0),
        ]
        for name, token, warm in schedule:
            script = vb.LUA_READ % {
                "token": token,
                "count": store.secrets,
                "prefix": vb.READ_PREFIX,
            }
            run = vb.run_wrk(
                tools["wrk"],
                vb.WrkRun(f"reads-{name}", server.addr + "/", script),
                tmp,
                threads=2,
                conns=64,
                duration=duration,
                warmup=warm,
            )
            if not run.valid:
                raise vb.BenchError(f"{name} reads: " + "; ".join(run.problems))
            runs[name] = {k: run.result.get(k) for k in ("rps", "p50_ms", "p99_ms")}
    finally:
        server.stop()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 keys, 3 s wrk runs")
    parser.add_argument("--out-dir", type=Path, default=vb.RESULTS)
    args = parser.parse_args(argv)
    large = 100_000 if args.quick else 1_000_000
    loops = 100_000 if args.quick else 300_000
    duration, warmup = (3, 1) if args.quick else (8, 2)
    tools = vb.find_tools()
    print("[1/2] verification in process", flush=True)
    small = verification(1_000, loops)
    print(f"    1,000 keys: {small}", flush=True)
    big = verification(large, loops)
    print(f"    {large:,} keys: {big}", flush=True)
    print("[2/2] audited reads over HTTPS: root token vs API key", flush=True)
    with tempfile.TemporaryDirectory(prefix="ks-access-bench-") as tmp_name:
        http = http_cost(tools, Path(tmp_name), duration, warmup)
    root_rps = (http["root"]["rps"] + http["root-again"]["rps"]) / 2
    key_rps = (http["api-key"]["rps"] + http["api-key-again"]["rps"]) / 2
    rows = [
        (
            "API key verifications/s, cache warm, 1,000 keys",
            f"{small['warm']:,}",
            ">= 100,000",
            small["warm"] >= 100_000,
        ),
        (
            f"API key verifications/s, cache warm, {large:,} keys",
            f"{big['warm']:,}",
            ">= 100,000",
            big["warm"] >= 100_000,
        ),
        (
            "warm: large / small",
            f"{big['warm'] / small['warm']:.2f}",
            "within 20%",
            abs(big["warm"] / small["warm"] - 1) <= 0.2,
        ),
        (
            "API key verifications/s, cache off (DB lookup), 1,000 keys",
            f"{small['uncached']:,}",
            "-",
            None,
        ),
        (
            f"API key verifications/s, cache off (DB lookup), {large:,} keys",
            f"{big['uncached']:,}",
            "-",
            None,
        ),
        (
            "cache off: large / small",
            f"{big['uncached'] / small['uncached']:.2f}",
            "within 20%",
            abs(big["uncached"] / small["uncached"] - 1) <= 0.2,
        ),
        ("audited reads/s over HTTPS, root token (mean of 2 runs)", f"{root_rps:,.0f}", "-", None),
        (
            "audited reads/s over HTTPS, API key + policy (mean of 2 runs)",
            f"{key_rps:,.0f}",
            "-",
            None,
        ),
        (
            "API key / root token read throughput",
            f"{key_rps / root_rps:.2f}",
            ">= 0.90",
            key_rps / root_rps >= 0.90,
        ),
        (
            "read p99, root / API key (ms)",
            f"{http['root']['p99_ms']:.1f} / {http['api-key']['p99_ms']:.1f}",
            "-",
            None,
        ),
    ]
    table = ["| figure | measured | target | result |", "|---|---|---|---|"]
    for name, value, target, ok in rows:
        verdict = "info" if ok is None else ("pass" if ok else "FAIL")
        table.append(f"| {name} | {value} | {target} | {verdict} |")
    text = "\n".join(table)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    info = vb.machine_info(tools)
    header = (
        "# keysafe API-key benchmark\n\n"
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC on {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}{' (--quick)' if args.quick else ''}. Verification is "
        "in process (`KeyService.verify`, source address checked against a CIDR allowlist); "
        "stored keys are rows with random hashes in SQLite. HTTP: `keysafe up` (SQLite, 2 "
        "workers, HTTPS), `wrk -t2 -c64`, reads of 1,000 secrets on random paths; the key is "
        "bound to a one-rule policy (`bench/**`: read, list) and a 127.0.0.0/8 allowlist.\n\n"
        "Command: `.venv/bin/python bench/access_bench.py"
        + (" --quick" if args.quick else "")
        + "`\n\n"
    )
    (args.out_dir / "access.md").write_text(header + text + "\n")
    (args.out_dir / "access.json").write_text(
        json.dumps({"small": small, "large": big, "http": http, "machine": info}, indent=2) + "\n"
    )
    print(f"wrote {args.out_dir / 'access.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
