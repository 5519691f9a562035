"""Benchmark of the lease sweep: 10,000 expired leases whose logins really exist in
PostgreSQL, dropped by the production sweep (``LeaseService.sweep``), against 5 s.

One command: ``python bench/lease_bench.py`` (``--leases N``, ``--store sqlite|postgres``).

In one run, on an in-process vault (initialised and unsealed, audit on):

1. full sweep: N lease rows (expired, real-looking) and N real PostgreSQL login roles
   created beforehand (not timed); the timed sweep claims the rows in batches of 500,
   reads the admin connection secret (audited), terminates sessions, REASSIGN/DROP
   OWNED and DROP ROLE on the real server, and records every outcome with its audit
   event. Checked afterwards: no role left, every row ``expired``, N audit events.
2. rows only (reference): the same sweep over N rows whose logins do not exist (the
   target is still asked), i.e. the bookkeeping without role drops.
3. drops only (reference): ``PostgresTarget.drop`` of N real roles in batches of 500,
   without keysafe rows.

Results: a table on stdout, bench/results/lease.md and bench/results/lease.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import func, insert, select

from inprocess import PG, vault
from keysafe.rotation import lease_models as m
from keysafe.rotation.dynamic import PostgresTarget, scram_verifier
from keysafe.rotation.targets import parse_postgres
from keysafe.server.services import Services
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables import audit_events
from keysafe.store.tables_leases import leases

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LIMIT_S = 5.0


def make_roles(names: list[str]) -> None:
    verifier = scram_verifier("bench-password-not-secret")
    with psycopg.connect(PG, autocommit=True) as conn, conn.transaction():
        for name in names:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} VALID UNTIL 'infinity'").format(
                    sql.Identifier(name), sql.Literal(verifier)
                )
            )


def count_roles(prefix: str) -> int:
    with psycopg.connect(PG) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (prefix + "%",)
        ).fetchone()
    return int(row[0]) if row else 0


def add_rows(svc: Services, role: str, usernames: list[str]) -> None:
    now = svc.clock.now_us()
    rows = [
        {
            "id": f"lease_{os.urandom(10).hex()}",
            "role": role,
            "username": name,
            "state": m.STATE_ACTIVE,
            "created_at": now - 3_600_000_000,
            "created_by": "tok_bench",
            "expires_at": now - 1_000_000,
            "max_expires_at": now + 3_600_000_000,
            "attempts": 0,
        }
        for name in usernames
    ]
    with write_txn(svc.engine) as conn:
        conn.execute(insert(leases), rows)
        config = m.RoleConfig.checked(role, connection_secret="bench/db/admin", grants=[])
        m.write_role(conn, config, "tok_bench", now)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.leases
    tmp = Path(tempfile.mkdtemp(prefix="ks-lease-bench-"))
    schema = "ks_bench_" + os.urandom(4).hex()
    svc, root = vault(args.store, tmp, schema)
    await svc.secrets.write(root, "bench/db/admin", PG)
    # Reaching the network is an admin decision: the benchmark's database is approved.
    await svc.rotation.targets.approve(root, parse_postgres(PG).target)
    tag = os.urandom(3).hex()
    out: dict[str, Any] = {"leases": n, "store": args.store}
    try:
        # 1. the full production sweep
        prefix = f"ks_bench_{tag}_full_"
        names = [f"{prefix}{i:06d}" for i in range(n)]
        t0 = time.perf_counter()
        make_roles(names)
        add_rows(svc, f"bench/{tag}/full", names)
        out["setup_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = await svc.leases.sweep()
        out["full_s"] = time.perf_counter() - t0
        assert (result.revoked, result.failed) == (n, 0), result
        assert count_roles(prefix) == 0
        with read_conn(svc.engine) as conn:
            states = dict(
                conn.execute(select(leases.c.state, func.count()).group_by(leases.c.state)).all()
            )
            events = conn.execute(
                select(func.count()).where(audit_events.c.operation == "lease:expire")
            ).scalar_one()
        assert states == {m.STATE_EXPIRED: n}, states
        assert events == n, events
        # 2. rows only: the same sweep, logins absent on the target
        add_rows(svc, f"bench/{tag}/rows", [f"ks_bench_{tag}_absent_{i:06d}" for i in range(n)])
        t0 = time.perf_counter()
        result = await svc.leases.sweep()
        out["rows_only_s"] = time.perf_counter() - t0
        assert (result.revoked, result.failed) == (n, 0), result
        # 3. drops only: the target work without keysafe
        prefix = f"ks_bench_{tag}_drop_"
        names = [f"{prefix}{i:06d}" for i in range(n)]
        make_roles(names)
        target = PostgresTarget(PG)
        t0 = time.perf_counter()
        for start in range(0, n, 500):
            assert target.drop(names[start : start + 500]) == {}
        out["drops_only_s"] = time.perf_counter() - t0
        assert count_roles(prefix) == 0
    finally:
        leftover = count_roles(f"ks_bench_{tag}_")
        if leftover:
            with psycopg.connect(PG, autocommit=True) as conn:
                for (name,) in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"ks_bench_{tag}_%",)
                ).fetchall():
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
        svc.close()
        if args.store == "postgres":
            svc.engine.dispose()
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    out["ratio_to_limit"] = out["full_s"] / LIMIT_S
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=10_000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    out = asyncio.run(run(args))
    out["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    n = out["leases"]
    lines = [
        f"# Lease sweep: {n:,} expired leases, keysafe store {out['store']}, target PostgreSQL",
        "",
        "| measurement | seconds | per lease | vs 5 s limit |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, label in (
        ("full_s", "full sweep (rows + real role drops + audit)"),
        ("rows_only_s", "reference: rows + audit, logins absent"),
        ("drops_only_s", "reference: real role drops alone"),
    ):
        secs = out[key]
        lines.append(f"| {label} | {secs:.2f} | {secs / n * 1e6:.0f} µs | {secs / LIMIT_S:.2f} |")
    lines += [
        "",
        f"Full sweep: {out['full_s']:.2f} s = {out['ratio_to_limit']:.2f} of the 5 s limit. "
        f"Setup (creating {n:,} roles and rows, not timed): {out['setup_s']:.1f} s. "
        f"Machine: {out['machine']} (shared, loaded by other work; figures are rough).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if out["store"] == "sqlite" else "-postgres"
    (RESULTS / f"lease{suffix}.md").write_text(text)
    (RESULTS / f"lease{suffix}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
