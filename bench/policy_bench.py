"""Benchmark of the policy engine: decisions per second in one process, and compile time.

One command: ``python bench/policy_bench.py`` (``--quick`` for a short smoke run).

The policy set is generated, deterministic (``--seed``), and shaped like a real one: 1,000
rules in 10 policies, per team ``team{i}/{dev,staging,prod}/*`` read/list allows, a
``team{i}/dev/**`` write allow, a ``team{i}/prod/ROOT_*`` deny, a CIDR-restricted prod
write and an MFA step-up prod destroy, plus about twenty rules that start with a wildcard
(``**/shared/*``, ``*/prod/*`` rotate with MFA, ``**/ROOT_*`` destroy deny, ``*/audit/**``
read-audit from an office network, ``**/tmp/*`` during Paris office hours).
Requests mix capabilities (mostly read), teams with and without rules, sources in and
out of the networks, fresh, stale and missing MFA, and times across a week.

It measures, each figure the best of ``--repeat`` runs:

1. cold: every request has a path never seen before, so every decision computes its plan
   (the glob index and combined regexes; the LRU only costs);
2. warm: 2,000 distinct requests asked over and over (plans come from the LRU; conditions
   are still evaluated on each request);
3. warm, counting the construction of each ``AccessRequest`` as a server would;
4. the same cold and warm runs with 10 rules, for reference;
5. ``explain`` (no cache, scans every rule) with 1,000 rules;
6. parse (``parse_policy`` on the 10 TOML texts) and compile (``PolicySet``) of 1,000 rules.

Results: a table on stdout, bench/results/policy.md and bench/results/policy.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keysafe.access.policy import AccessRequest, Policy, PolicySet, parse_policy

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGET = 200_000
ENVS = ("dev", "staging", "prod")
START = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def team_rules(i: int) -> list[str]:
    """Seven rules for team ``i``."""
    rules = [
        f'[[rule]]\npath = "team{i}/{env}/*"\ncapabilities = ["read", "list"]\n' for env in ENVS
    ]
    rules += [
        f'[[rule]]\npath = "team{i}/dev/**"\ncapabilities = ["write", "delete"]\n',
        f'[[rule]]\npath = "team{i}/prod/ROOT_*"\ndeny = true\n',
        f'[[rule]]\npath = "team{i}/prod/*"\ncapabilities = ["write"]\n'
        f'source_cidrs = ["10.{i % 256}.0.0/16", "2001:db8:{i:x}::/48"]\n',
        f'[[rule]]\npath = "team{i}/prod/*"\ncapabilities = ["destroy"]\nmfa_within_minutes = 15\n',
    ]
    return rules


WILDCARD_RULES = [
    '[[rule]]\npath = "**/shared/*"\ncapabilities = ["read", "list"]\n',
    '[[rule]]\npath = "*/prod/*"\ncapabilities = ["rotate"]\nmfa_within_minutes = 30\n',
    '[[rule]]\npath = "**/ROOT_*"\ndeny = true\ncapabilities = ["destroy"]\n',
    '[[rule]]\npath = "*/audit/**"\ncapabilities = ["read-audit"]\n'
    'source_cidrs = ["192.0.2.0/24"]\n',
    '[[rule]]\npath = "**/tmp/*"\ncapabilities = ["write"]\nhours = "08:00-18:00"\n'
    'days = ["mon", "tue", "wed", "thu", "fri"]\ntimezone = "Europe/Paris"\n',
]


def policy_texts(total: int) -> list[str]:
    """TOML texts holding ``total`` rules, in 10 policies (1 when ``total`` is small)."""
    rules: list[str] = []
    for j in range(4):  # 20 wildcard-first rules: the five kinds, four variants each
        rules += [
            r.replace("shared", f"shared{j}").replace("tmp", f"tmp{j}") for r in WILDCARD_RULES
        ]
    rules = rules[: max(3, total // 50)]
    i = 0
    while len(rules) < total:
        rules += team_rules(i)
        i += 1
    rules = rules[:total]
    parts = 10 if total >= 100 else 1
    size = -(-total // parts)
    return ["\n".join(rules[k : k + size]) for k in range(0, total, size)]


def build(total: int) -> tuple[list[Policy], PolicySet]:
    policies = [parse_policy(f"policy{k}", text) for k, text in enumerate(policy_texts(total))]
    return policies, PolicySet(policies)


CAPS = ["read"] * 12 + ["list"] * 2 + ["write"] * 3 + ["destroy", "rotate", "read-audit"]
SOURCES = ["10.{t}.3.4", "10.200.1.1", "192.0.2.10", "203.0.113.5", "2001:db8:{t:x}::7"]


def requests(n: int, teams: int, rng: random.Random, unique: bool) -> list[AccessRequest]:
    out = []
    for k in range(n):
        team = rng.randrange(teams + teams // 10 + 1)  # about 10 % of teams have no rules
        folder = rng.choice([*ENVS, "prod", "prod", "shared0", "audit", "tmp1"])
        name = f"S{k}" if unique else rng.choice(["DB_URL", "API_KEY", "ROOT_TOKEN", "X"])
        deep = rng.random() < 0.2
        path = f"team{team}/{folder}/{'svc/' if deep else ''}{name}"
        now = START + dt.timedelta(minutes=rng.randrange(7 * 24 * 60))
        mfa = rng.choice([None, now - dt.timedelta(minutes=5), now - dt.timedelta(hours=2)])
        source = rng.choice(SOURCES).format(t=team % 256)
        out.append(AccessRequest(rng.choice(CAPS), path, source=source, now=now, mfa_at=mfa))
    return out


def _renamed(req: AccessRequest, marker: str) -> AccessRequest:
    path = req.path.replace("/S", marker)
    return AccessRequest(req.capability, path, source=req.source, now=req.now, mfa_at=req.mfa_at)


def rate(fn: Callable[[], int], repeat: int) -> float:
    """Best calls/s over ``repeat`` runs of ``fn`` (which returns how many calls it made)."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        calls = fn()
        best = max(best, calls / (time.perf_counter() - t0))
    return best


def decide_all(rules: PolicySet, reqs: list[AccessRequest]) -> Callable[[], int]:
    def run() -> int:
        decide = rules.decide
        for req in reqs:
            decide(req)
        return len(reqs)

    return run


def measure(total: int, n: int, repeat: int, rng: random.Random) -> dict[str, Any]:
    policies, rules = build(total)
    teams = max(1, (total - 20) // 7)
    # Cold: unique paths, so no plan is ever reused. A fresh engine per run first answers
    # other unique paths ("P" names) so that its per-prefix buckets exist, as they do in a
    # server that has been up for a moment; "first use" counts building them too.
    cold = requests(n, teams, rng, unique=True)
    prime = [_renamed(r, "/P") for r in requests(20_000, teams, rng, unique=True)]
    cold_rate = first_use = 0.0
    for _ in range(repeat):
        fresh = PolicySet(policies)
        first_use = max(first_use, rate(decide_all(fresh, cold), 1))
        fresh = PolicySet(policies)
        decide_all(fresh, prime)()
        cold_rate = max(cold_rate, rate(decide_all(fresh, cold), 1))
    pool = requests(2_000, teams, rng, unique=False)
    warm = [pool[k % len(pool)] for k in range(n)]
    decide_all(rules, pool)()  # fill the cache
    warm_rate = rate(decide_all(rules, warm), repeat)
    raw = [(r.capability, r.path, r.source, r.now, r.mfa_at) for r in warm]

    def build_and_decide() -> int:
        decide = rules.decide
        for cap, path, source, now, mfa_at in raw:
            decide(AccessRequest(cap, path, source=source, now=now, mfa_at=mfa_at))
        return len(raw)

    with_build = rate(build_and_decide, repeat)
    allowed = sum(1 for r in warm[:20_000] if rules.decide(r)) / min(len(warm), 20_000)
    info = rules.cache_info()
    return {
        "rules": total,
        "policies": len(policies),
        "cold_per_s": cold_rate,
        "cold_first_use_per_s": first_use,
        "warm_per_s": warm_rate,
        "warm_with_request_build_per_s": with_build,
        "allowed_fraction": allowed,
        "cache": {"hits": info.hits, "misses": info.misses, "size": info.currsize},
        "teams": teams,
    }


def compile_time(total: int, repeat: int) -> dict[str, float]:
    texts = policy_texts(total)
    parse_s, compile_s = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        policies = [parse_policy(f"policy{k}", text) for k, text in enumerate(texts)]
        t1 = time.perf_counter()
        PolicySet(policies)
        t2 = time.perf_counter()
        parse_s.append(t1 - t0)
        compile_s.append(t2 - t1)
    return {"parse_s": statistics.median(parse_s), "compile_s": statistics.median(compile_s)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--decisions", type=int, default=300_000, help="decisions per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (best is kept)")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    n, repeat = (30_000, 2) if args.quick else (args.decisions, args.repeat)
    rng = random.Random(args.seed)

    big = measure(1_000, n, repeat, rng)
    small = measure(10, n, repeat, rng)
    _, rules = build(1_000)
    sample = requests(2_000, (1_000 - 20) // 7, rng, unique=False)
    explain_rate = rate(lambda: [rules.explain(r) for r in sample] and len(sample), repeat)
    comp = compile_time(1_000, repeat)

    rows = [
        ("decisions/s, 1,000 rules, cold (unique paths)", big["cold_per_s"], f">= {TARGET:,}"),
        (
            "decisions/s, 1,000 rules, warm (2,000 distinct requests)",
            big["warm_per_s"],
            f">= {TARGET:,}",
        ),
        (
            "decisions/s, 1,000 rules, cold, first use of a fresh engine",
            big["cold_first_use_per_s"],
            "-",
        ),
        (
            "decisions/s, 1,000 rules, warm, incl. building AccessRequest",
            big["warm_with_request_build_per_s"],
            "-",
        ),
        ("decisions/s, 10 rules, cold", small["cold_per_s"], "-"),
        ("decisions/s, 10 rules, warm", small["warm_per_s"], "-"),
        ("explain/s, 1,000 rules (no cache, every rule)", explain_rate, "-"),
        ("parse 1,000 rules (10 TOML policies), ms", comp["parse_s"] * 1000, "-"),
        ("compile 1,000 rules (PolicySet), ms", comp["compile_s"] * 1000, "-"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'measure':<{width}} | value | target |", f"|{'-' * (width + 2)}|---|---|"]
    for label, value, target in rows:
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
        lines.append(f"| {label:<{width}} | {shown} | {target} |")
    table = "\n".join(lines)
    ok = big["cold_per_s"] >= TARGET and big["warm_per_s"] >= TARGET
    machine = f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}"
    command = "python bench/policy_bench.py" + (" --quick" if args.quick else "")
    mix = (
        f"Allowed fraction of the warm mix: {big['allowed_fraction']:.0%} with 1,000 rules, "
        f"{small['allowed_fraction']:.0%} with 10. {n:,} decisions per run, best of {repeat}."
    )
    print(table)
    print(mix)
    print("target met" if ok else "TARGET MISSED")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    md = (
        "# keysafe policy engine benchmark\n\n"
        f"In-process, one thread. Machine: {machine} (possibly shared: figures are rough).\n"
        f"Command: `{command}`. {mix}\n\n{table}\n\n"
        "Cold: every request has a new path, so every decision walks the glob index and "
        "the combined regexes (the LRU only costs); each pass uses a fresh `PolicySet` primed "
        "with 20,000 other unique paths so that its per-prefix buckets are built. 'First use' "
        "is the same without priming: it also pays for building those buckets. Warm: the "
        "per-(capability, path) plan comes from the LRU; conditions (CIDR, MFA, hours) are "
        "evaluated on every request either way.\n"
    )
    (args.out_dir / "policy.md").write_text(md)
    raw = {
        "machine": machine,
        "command": command,
        "python": sys.version,
        "decisions_per_run": n,
        "repeat": repeat,
        "rules_1000": big,
        "rules_10": small,
        "explain_per_s": explain_rate,
        **comp,
        "target_met": ok,
    }
    (args.out_dir / "policy.json").write_text(json.dumps(raw, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
