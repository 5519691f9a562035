"""Cluster benchmark: the figures of the cluster issue, one section per figure.

    .venv/bin/python bench/cluster_bench.py            # every section
    .venv/bin/python bench/cluster_bench.py --quick    # short runs (a smoke test)
    .venv/bin/python bench/cluster_bench.py --only audited-reads

Sections (each a function in SECTIONS returning rows of the table; add more there):

- ``propagation``, ``health-hung``, ``backup``: see bench/cluster_sections.py.
- ``audited-reads``: audited secret reads per second (root token, HTTPS, keep-alive) on
  3 ``keysafe server`` processes vs 1 on the same PostgreSQL database (target >= 0.95:
  nodes must not wait on one another to audit), and 1 PostgreSQL node vs 1 SQLite node
  (target >= 0.6). The same client processes drive every run; the runs alternate
  (1, 3, SQLite, then again) so that drift on a shared machine cancels out in the sums.
  Every node writes its own audit file, as in production.

Results: a table on stdout and bench/results/cluster_bench.json. Servers, clients and
the database share this machine's cores: on 2 cores three nodes cannot add throughput;
the ratio shows that they do not take it away.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT / "tests")]

from server_proc import (  # noqa: E402
    ServerProc,
    Vault,
    database_url,
    init_vault,
    running,
    ssl_context,
)

import cluster_sections  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SECRETS = 200


@dataclass
class Row:
    figure: str
    value: str
    target: str = ""
    verdict: str = ""


@dataclass
class Section:
    rows: list[Row]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    duration: float
    clients: int
    rounds: int
    quick: bool = False


# -- load ----------------------------------------------------------------------------------


def _client(url: str, ca: str, token: str, start_at: float, stop_at: float, out: Any) -> None:
    """One client process: audited reads on one kept-alive connection until ``stop_at``."""
    import httpx

    ok = errors = 0
    with httpx.Client(
        base_url=url,
        verify=ssl_context(Path(ca)),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    ) as c:
        c.get("/api/v1/sys/health")  # connect (and shake hands) before the clock starts
        while time.time() < start_at:
            time.sleep(0.001)
        i = 0
        while time.time() < stop_at:
            resp = c.get(f"/api/v1/secrets/bench/s{i % SECRETS:04d}")
            if resp.status_code == 200:
                ok += 1
            else:
                errors += 1
            i += 1
    out.put((ok, errors))


def drive(servers: list[ServerProc], opts: Options) -> dict[str, float]:
    """``opts.clients`` client processes spread round robin over ``servers``."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.5
    stop_at = start_at + opts.duration
    token = servers[0].vault.root_token or ""
    procs = [
        ctx.Process(
            target=_client,
            args=(
                servers[i % len(servers)].base_url,
                str(servers[0].vault.tls.ca_cert),
                token,
                start_at,
                stop_at,
                out,
            ),
        )
        for i in range(opts.clients)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=opts.duration + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    return {"reads": ok, "errors": errors, "seconds": opts.duration, "rps": ok / opts.duration}


@contextlib.contextmanager
def nodes(engine: str, tmp: Path, count: int) -> Iterator[list[ServerProc]]:
    """``count`` server processes (one worker each, own audit file) on a fresh database,
    with ``SECRETS`` secrets to read."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database_url(engine, tmp))
        vault: Vault = init_vault(engine, tmp, url)
        servers = [
            stack.enter_context(
                running(vault, extra_env={"KEYSAFE_AUDIT_FILE": str(tmp / f"audit-{i}.jsonl")})
            )
            for i in range(count)
        ]
        with servers[0].root() as c:
            for i in range(SECRETS):
                put = c.put(f"/api/v1/secrets/bench/s{i:04d}", json={"value": f"v{i}"})
                assert put.status_code == 200, put.text
        yield servers
        # Every node's trail, and the whole, still verify after the load.
        for server in servers:
            with server.root() as c:
                for params in ({"source": "file"}, {"source": "db"}):
                    doc = c.post("/api/v1/audit/verify", params=params, timeout=300).json()
                    if not doc["ok"]:
                        raise RuntimeError(f"audit verify failed after the load: {doc}")


# -- sections ------------------------------------------------------------------------------


def audited_reads(opts: Options, tmp: Path) -> Section:
    runs: dict[str, list[dict[str, float]]] = {"pg-1": [], "pg-3": [], "sqlite-1": []}
    with nodes("postgres", tmp / "pg", 3) as pg, nodes("sqlite", tmp / "sqlite", 1) as lite:
        for _ in range(opts.rounds):
            for name, servers in (("pg-1", pg[:1]), ("pg-3", pg), ("sqlite-1", lite)):
                run = drive(servers, opts)
                runs[name].append(run)
                print(
                    f"  {name}: {run['rps']:,.0f} audited reads/s ({run['errors']} errors)",
                    flush=True,
                )
    rps = {k: sum(r["rps"] for r in v) / len(v) for k, v in runs.items()}
    three = rps["pg-3"] / rps["pg-1"]
    engines = rps["pg-1"] / rps["sqlite-1"]
    rows = [
        Row("audited reads/s, 1 node, PostgreSQL", f"{rps['pg-1']:,.0f}"),
        Row("audited reads/s, 3 nodes, same PostgreSQL", f"{rps['pg-3']:,.0f}"),
        Row("audited reads/s, 1 node, SQLite", f"{rps['sqlite-1']:,.0f}"),
        Row("3 nodes vs 1 node (PostgreSQL)", f"{three:.2f}", ">= 0.95", _verdict(three >= 0.95)),
        Row("PostgreSQL vs SQLite (1 node)", f"{engines:.2f}", ">= 0.6", _verdict(engines >= 0.6)),
    ]
    return Section(
        rows, {"runs": runs, "mean_rps": rps, "ratio_3_vs_1": three, "ratio_pg_vs_sqlite": engines}
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _more(name: str) -> Callable[[Options, Path], Section]:
    """A section of bench/cluster_sections.py as a Section of this table."""

    def section(opts: Options, tmp: Path) -> Section:
        rows, data = cluster_sections.SECTIONS[name](opts.quick, tmp)
        return Section([Row(*row) for row in rows], data)

    return section


SECTIONS: dict[str, Callable[[Options, Path], Section]] = {
    "audited-reads": audited_reads,
    **{name: _more(name) for name in cluster_sections.SECTIONS},
}


# -- output --------------------------------------------------------------------------------


def format_table(rows: list[Row]) -> str:
    cells = [("figure", "value", "target", "verdict")] + [
        (r.figure, r.value, r.target, r.verdict) for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(4)).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS))
    parser.add_argument("--duration", type=float, help="seconds per run")
    parser.add_argument("--clients", type=int, default=6, help="client processes")
    parser.add_argument("--rounds", type=int, help="alternations of the runs")
    args = parser.parse_args(argv)
    opts = Options(
        duration=args.duration or (3.0 if args.quick else 10.0),
        clients=args.clients,
        rounds=args.rounds or (1 if args.quick else 2),
        quick=args.quick,
    )
    rows: list[Row] = []
    data: dict[str, Any] = {}
    for name in args.only or list(SECTIONS):
        print(f"{name}:", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            section = SECTIONS[name](opts, Path(tmp))
        rows += section.rows
        data[name] = {"rows": [asdict(r) for r in section.rows], **section.data}
    table = format_table(rows)
    print()
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": mp.cpu_count()},
        "command": "python bench/cluster_bench.py " + " ".join(argv or sys.argv[1:]),
        "options": asdict(opts),
        "sections": data,
        "table": table,
    }
    (RESULTS / "cluster_bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'cluster_bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
