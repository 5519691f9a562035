"""Benchmark: KV v2 reads through Vault's ``/v1`` next to native reads, same run.

One command: ``python bench/vault_kv_bench.py`` (``--seconds N`` per measurement,
``--clients N`` load processes). It seeds 1,000 secrets in-process (as
``bench/vault_bench.py`` does), starts ``keysafe up`` (SQLite, 2 workers, HTTPS), then
drives, one after the other and in rounds so that drift hits all alike:

1. ``GET /api/v1/sys/health`` (the reference for HTTP work);
2. ``GET /api/v1/secrets/<path>`` with ``Authorization: Bearer`` (native reads);
3. ``GET /v1/secret/data/<path>`` with ``X-Vault-Token`` (what hvac and the vault CLI
   send), each answer checked for the envelope.

The load comes from Python processes holding keep-alive HTTPS connections (wrk is not
required): the client costs the same per request in every row, so the ratio is what
counts, not the absolute rate. Any non-2xx answer makes the row INVALID.

Results: a table on stdout, bench/results/vault_kv.md and bench/results/vault_kv.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import platform
import random
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vault_bench import (
    RESULTS,
    BenchError,
    Server,
    Store,
    free_port,
    init_and_seed,
    read_path,
)

TARGET_RATIO = 0.90  # /v1 reads at least 90% of native reads


def _load(args: tuple[int, str, str, dict[str, str], int, float, bool]) -> tuple[int, int]:
    """One load process: (ok answers, bad answers) within ``seconds``."""
    port, cafile, route, headers, count, seconds, envelope = args
    context = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    ok = bad = 0
    rng = random.Random()  # spreading reads, not security
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        path = route.replace("{path}", read_path(rng.randrange(count)))
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status == 200 and (not envelope or b'"request_id"' in body):
            ok += 1
        else:
            bad += 1
    conn.close()
    return ok, bad


def measure(
    pool: Any,
    server: Server,
    route: str,
    headers: dict[str, str],
    count: int,
    seconds: float,
    clients: int,
    envelope: bool = False,
) -> tuple[float, int]:
    job = (server.port, str(server.cacert), route, headers, count, seconds, envelope)
    results = pool.map(_load, [job] * clients)
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    return ok / seconds, bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--secrets", type=int, default=1000)
    args = parser.parse_args(argv)
    keysafe = shutil.which("keysafe", path=str(Path(sys.executable).parent))
    if keysafe is None:
        print("vault_kv_bench: the keysafe command is not installed", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="keysafe-kv-bench-"))
    store = Store("kv", tmp / "kv", args.secrets)
    server = Server(store, keysafe, free_port(), tmp / "server.log")
    sums = {"health": 0.0, "native": 0.0, "vault": 0.0}
    bad = dict.fromkeys(sums, 0)
    try:
        print(f"seeding {store.secrets:,} secrets, starting `keysafe up`", flush=True)
        init_and_seed(store, progress=False)
        server.start()
        server.wait_healthy(timeout=180.0)  # a loaded machine starts slowly
        token = store.root_token
        rows = {
            "health": ("/api/v1/sys/health", {}),
            "native": ("/api/v1/secrets/{path}", {"Authorization": f"Bearer {token}"}),
            "vault": ("/v1/secret/data/{path}", {"X-Vault-Token": token}),
        }
        with mp.get_context("spawn").Pool(args.clients) as pool:
            for n in range(args.rounds):
                for name, (route, headers) in rows.items():
                    rate, errors = measure(
                        pool,
                        server,
                        route,
                        headers,
                        store.secrets,
                        args.seconds,
                        args.clients,
                        envelope=name == "vault",
                    )
                    sums[name] += rate
                    bad[name] += errors
                    print(f"  round {n + 1} {name}: {rate:,.0f} req/s", flush=True)
    except BenchError as exc:
        print(f"vault_kv_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    rate = {k: v / args.rounds for k, v in sums.items()}
    ratio = rate["vault"] / rate["native"] if rate["native"] else 0.0
    valid = not any(bad.values())
    verdict = ("PASS" if ratio >= TARGET_RATIO else "FAIL") if valid else "INVALID"
    table = [
        "| measurement | req/s | vs health | vs native |",
        "| --- | ---: | ---: | ---: |",
        f"| GET /api/v1/sys/health (reference) | {rate['health']:,.0f} | 1.00 | |",
        f"| GET /api/v1/secrets/<path> (native, audited) | {rate['native']:,.0f} | "
        f"{rate['native'] / rate['health']:.2f} | 1.00 |",
        f"| GET /v1/secret/data/<path> (Vault KV v2, audited) | {rate['vault']:,.0f} | "
        f"{rate['vault'] / rate['health']:.2f} | {ratio:.2f} |",
    ]
    summary = (
        f"/v1 KV v2 reads run at {ratio:.2f} of native reads (target >= {TARGET_RATIO:.2f}):"
        f" {verdict}. {args.rounds} rounds x {args.seconds:g} s x {args.clients} client"
        f" processes, {store.secrets:,} secrets, `keysafe up` (SQLite, 2 workers, HTTPS);"
        f" non-2xx answers: {bad}. Machine: {platform.machine()}, {mp.cpu_count()} cores,"
        f" Python {platform.python_version()} (shared with other work; figures are rough)."
    )
    print("\n".join(table) + "\n\n" + summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vault_kv.md").write_text(
        "# KV v2 reads: Vault's /v1 next to native /api/v1\n\n"
        + "\n".join(table)
        + f"\n\n{summary}\n\nCommand: `python bench/vault_kv_bench.py"
        + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
        + "`\n"
    )
    (RESULTS / "vault_kv.json").write_text(
        json.dumps(
            {"rates": rate, "ratio": ratio, "verdict": verdict, "bad": bad, "args": vars(args)},
            indent=2,
        )
        + "\n"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
