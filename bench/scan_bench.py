"""Benchmark of ``keysafe scan`` against detect-secrets and CredSweeper.

One command: ``python bench/scan_bench.py`` (``--quick`` for a smaller run). It builds a
>= 50 MB corpus of real source text (the Python standard library and site-packages,
replicated) with planted fake credentials under bench/corpus/, then measures:

- keysafe's single-process throughput (MB/s) and its parallel throughput;
- the same scan with 20 rules and with 200 rules (180 synthetic custom rules added);
- detect-secrets and CredSweeper (installed in bench/.venv-peers, never project
  dependencies) on a slice of the same corpus, as whole processes;
- precision, recall and F1 of keysafe and of each peer on the labelled corpus
  (tests/data/scan_corpus);
- ``keysafe scan`` whole-process time on a 10-file tree.

Results go to bench/results/scan.md and bench/results/scan.json. Ratios are measured in
one run on one machine; the machine is shared and noisy, so read them as rough.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
CORPUS = BENCH / "corpus" / "full"  # bench/corpus/ is gitignored
PEERS = BENCH / ".venv-peers" / "bin"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT / "tests" / "unit" / "scan"))

from corpus_eval import FILES as LABELLED  # noqa: E402
from corpus_eval import Score, score  # noqa: E402
from scan_fakes import Fakes  # noqa: E402

from keysafe.scan.engine import Engine  # noqa: E402
from keysafe.scan.rules import Rule, builtin_rules, rule  # noqa: E402
from keysafe.scan.service import ScanOptions, ScanService  # noqa: E402

MB = 1_000_000


def source_files() -> list[Path]:
    """Python sources of the standard library and the venv's site-packages."""
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    found: list[Path] = []
    for root in roots:
        found += sorted(p for p in root.rglob("*.py") if p.is_file() and "corpus" not in p.parts)
    return found


def build_corpus(target_mb: int) -> tuple[int, int]:
    """Write >= target_mb of source under bench/corpus/ with planted credentials."""
    marker = CORPUS.parent / f".built-{target_mb}"
    if marker.exists():
        size = sum(p.stat().st_size for p in CORPUS.glob("part*/*"))
        return size, int(marker.read_text())
    shutil.rmtree(CORPUS.parent, ignore_errors=True)
    fakes = Fakes(seed=1234)
    makers: list[Callable[[], str]] = [
        fakes.github,
        fakes.aws_id,
        fakes.stripe,
        fakes.openai,
        fakes.slack_bot,
        fakes.npm,
        fakes.sendgrid,
        fakes.keysafe,
    ]
    size = planted = index = 0
    sources = source_files()
    while size < target_mb * MB:
        for src in sources:
            try:
                data = src.read_bytes()
            except OSError:
                continue
            index += 1
            if index % 150 == 0:  # one planted credential per ~150 files
                data += f"\nLEAKED_TOKEN = '{makers[planted % len(makers)]()}'\n".encode()
                planted += 1
            dest = CORPUS / f"part{index // 2000:03d}" / f"{index:06d}_{src.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            size += len(data)
            if size >= target_mb * MB:
                break
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(planted))
    return size, planted


def slice_dir(limit_mb: float) -> tuple[Path, int]:
    """A directory of hard links to the first ``limit_mb`` of the corpus."""
    dest = CORPUS.parent / f"slice-{limit_mb}"
    if dest.exists():
        return dest, sum(p.stat().st_size for p in dest.iterdir())
    dest.mkdir(parents=True)
    size = 0
    for path in sorted(CORPUS.glob("part*/*")):
        os.link(path, dest / path.name)
        size += path.stat().st_size
        if size >= limit_mb * MB:
            break
    return dest, size


def timed(func: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def keysafe_scan(rules: list[Rule], target: Path, jobs: int) -> int:
    service = ScanService(Engine(rules), ScanOptions(no_ignore=True, jobs=jobs))
    return len(service.scan_paths([str(target)]).findings)


def synthetic_rules(count: int) -> list[Rule]:
    """``count`` custom rules in the shape teams write: a prefix keyword and a regex."""
    return [
        rule(
            f"synthetic-{i}",
            f"Synthetic vendor {i} token",
            rf"\b(vnd{i:03d}_[0-9A-Za-z]{{32}})\b",
            [f"vnd{i:03d}_"],
            secret_group=1,
        )
        for i in range(count)
    ]


def run_peer(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    return time.perf_counter() - start, done


def detect_secrets_cmd() -> list[str]:
    return [str(PEERS / "detect-secrets"), "scan", "--all-files", "."]


def credsweeper_cmd(out: Path) -> list[str]:
    return [
        str(PEERS / "python"),
        "-m",
        "credsweeper",
        "--path",
        ".",
        "--save-json",
        str(out),
        "--jobs",
        "1",
    ]


def detect_secrets_found(stdout: str) -> set[tuple[str, int]]:
    results = json.loads(stdout)["results"]
    return {
        (path.removeprefix("./"), hit["line_number"])
        for path, hits in results.items()
        for hit in hits
    }


def credsweeper_found(path: Path) -> set[tuple[str, int]]:
    found = set()
    for candidate in json.loads(path.read_text()):
        if candidate.get("severity") == "info":
            continue  # informational rules (UUIDs and the like) are not credential claims
        for line in candidate["line_data_list"]:
            found.add((line["path"].removeprefix("./"), line["line_num"]))
    return found


def process_time_10_files(cmd: list[str]) -> float:
    """Median whole-process time of ``cmd`` (a ``keysafe scan``) on a 10-file tree, in ms."""
    fakes = Fakes(seed=77)
    sources = source_files()[:10]
    with tempfile.TemporaryDirectory() as tmp:
        for i, src in enumerate(sources):
            text = src.read_text(encoding="utf-8", errors="replace")
            if i == 3:
                text += f"\nTOKEN = '{fakes.github()}'\n"
            (Path(tmp) / f"f{i}.py").write_text(text)
        times = []
        for _ in range(7):
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            assert done.returncode == 1, done.stderr
    return statistics.median(times) * 1000


def fmt_score(s: Score) -> dict[str, float]:
    return {
        "precision": round(s.precision, 3),
        "recall": round(s.recall, 3),
        "f1": round(s.f1, 3),
        "false_positives": len(s.false_positives),
        "missed": len(s.missed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 MB corpus, 1 MB peer slice")
    parser.add_argument("--corpus-mb", type=int, default=50)
    parser.add_argument("--peer-mb", type=float, default=4.0)
    args = parser.parse_args()
    corpus_mb = 10 if args.quick else args.corpus_mb
    peer_mb = 1.0 if args.quick else args.peer_mb
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}

    size, planted = build_corpus(corpus_mb)
    corpus_files = sum(1 for _ in CORPUS.glob("part*/*"))
    out["corpus"] = {"bytes": size, "files": corpus_files, "planted": planted}
    print(f"corpus: {size / MB:.1f} MB in {corpus_files} files, {planted} planted credentials")

    builtin = builtin_rules()
    keysafe_scan(builtin, CORPUS / "part000", 1)  # warm the page cache
    t1, found1 = timed(lambda: keysafe_scan(builtin, CORPUS, 1), repeat=3)
    tn, _ = timed(lambda: keysafe_scan(builtin, CORPUS, 0))
    out["keysafe"] = {
        "rules": len(builtin),
        "single_s": round(t1, 3),
        "single_mb_s": round(size / MB / t1, 1),
        "parallel_s": round(tn, 3),
        "parallel_mb_s": round(size / MB / tn, 1),
        "findings": found1,
    }
    print(
        f"keysafe 1 process: {size / MB / t1:.1f} MB/s ({found1} findings); "
        f"parallel: {size / MB / tn:.1f} MB/s"
    )

    twenty = builtin[:20]
    two_hundred = twenty + synthetic_rules(180)
    t20, _ = timed(lambda: keysafe_scan(twenty, CORPUS, 1), repeat=2)
    t200, _ = timed(lambda: keysafe_scan(two_hundred, CORPUS, 1), repeat=2)
    out["rules_scaling"] = {
        "rules_20_s": round(t20, 3),
        "rules_200_s": round(t200, 3),
        "ratio": round(t200 / t20, 2),
    }
    print(f"20 rules {t20:.2f}s, 200 rules {t200:.2f}s, ratio {t200 / t20:.2f}")

    peer_dir, peer_size = slice_dir(peer_mb)
    tk_slice, _ = timed(lambda: keysafe_scan(builtin, peer_dir, 1), repeat=2)
    ks_cmd = [sys.executable, "-m", "keysafe.scan", "--no-progress", "--no-ignore", "-j", "1", "."]
    tk_process, _ = run_peer(ks_cmd, peer_dir)
    out["slice"] = {
        "bytes": peer_size,
        "keysafe_s": round(tk_slice, 3),
        "keysafe_process_s": round(tk_process, 3),
    }
    peers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cs_out = Path(tmp) / "cs.json"
        for name, cmd in (
            ("detect-secrets", detect_secrets_cmd()),
            ("credsweeper", credsweeper_cmd(cs_out)),
        ):
            if not (PEERS / "python").exists():
                peers[name] = {"error": "bench/.venv-peers missing"}
                continue
            elapsed, done = run_peer(cmd, peer_dir)
            if done.returncode not in (0, 1):
                peers[name] = {"error": done.stderr.strip().splitlines()[-1:]}
                continue
            peers[name] = {"slice_s": round(elapsed, 3), "mb_s": round(peer_size / MB / elapsed, 2)}
            print(f"{name}: {peer_size / MB / elapsed:.2f} MB/s on a {peer_size / MB:.1f} MB slice")
        # Quality on the labelled corpus.
        quality: dict[str, Any] = {}
        service = ScanService(Engine(builtin), ScanOptions(no_ignore=True, jobs=1))
        prefix = str(LABELLED) + "/"
        quality["keysafe"] = fmt_score(
            score(
                (f.file.removeprefix(prefix), f.line)
                for f in service.scan_paths([str(LABELLED)]).findings
            )
        )
        if "error" not in peers.get("detect-secrets", {"error": 1}):
            _, done = run_peer(detect_secrets_cmd(), LABELLED)
            quality["detect-secrets"] = fmt_score(score(detect_secrets_found(done.stdout)))
        if "error" not in peers.get("credsweeper", {"error": 1}):
            run_peer(credsweeper_cmd(cs_out), LABELLED)
            quality["credsweeper"] = fmt_score(score(credsweeper_found(cs_out)))
    out["peers"] = peers
    out["quality"] = quality
    module_cmd = [sys.executable, "-m", "keysafe.scan", "--no-progress", "."]
    out["process_10_files_ms"] = round(process_time_10_files(module_cmd), 1)
    program = Path(sys.executable).with_name("keysafe")
    if program.exists():  # the real entry point, through the whole CLI app
        cli_cmd = [str(program), "scan", "--no-progress", "."]
        out["cli_10_files_ms"] = round(process_time_10_files(cli_cmd), 1)
    write_results(out)


def write_results(out: dict[str, Any]) -> None:
    """Print the table and write bench/results/scan.md and scan.json."""
    ks = out["keysafe"]
    slice_mb = out["slice"]["bytes"] / MB
    ks_slice = slice_mb / out["slice"]["keysafe_s"]
    ks_proc_mb_s = slice_mb / out["slice"]["keysafe_process_s"]
    rows = [
        ("keysafe MB/s, 1 process", f"{ks['single_mb_s']}", ">= 50"),
        ("keysafe MB/s, parallel", f"{ks['parallel_mb_s']}", "-"),
        (
            "keysafe findings on the benchmark corpus / planted credentials",
            f"{ks['findings']} / {out['corpus']['planted']}",
            "-",
        ),
        (f"keysafe MB/s on the {slice_mb:.1f} MB peer slice, in process", f"{ks_slice:.1f}", "-"),
        ("keysafe MB/s on the slice, whole process", f"{ks_proc_mb_s:.1f}", "-"),
    ]
    for name, target in (("detect-secrets", ">= 20x"), ("credsweeper", "> 1x")):
        peer = out["peers"].get(name, {})
        if "mb_s" in peer:
            rows.append((f"{name} MB/s (same slice, whole process)", f"{peer['mb_s']}", "-"))
            speed_up = ks_proc_mb_s / peer["mb_s"]
            rows.append(
                (f"keysafe speed-up over {name} (both whole processes)", f"{speed_up:.1f}x", target)
            )
        else:
            rows.append((name, f"not measured: {peer.get('error')}", "-"))
    scaling = out["rules_scaling"]
    rows.append(
        ("20 rules / 200 rules, s", f"{scaling['rules_20_s']} / {scaling['rules_200_s']}", "-")
    )
    rows.append(("200-rule time / 20-rule time", f"{scaling['ratio']}", "<= 1.5"))
    for name, q in out["quality"].items():
        rows.append(
            (
                f"{name} precision / recall / F1",
                f"{q['precision']} / {q['recall']} / {q['f1']}",
                ">= 0.95 each, best F1" if name == "keysafe" else "-",
            )
        )
    if "cli_10_files_ms" in out:
        label = "`keysafe scan .` on 10 files, whole process (ms, median of 7)"
        rows.append((label, f"{out['cli_10_files_ms']}", "< 300"))
    label = "`python -m keysafe.scan .` on 10 files, whole process (ms, median of 7)"
    rows.append((label, f"{out['process_10_files_ms']}", "< 300"))
    width = max(len(r[0]) for r in rows)
    table = [f"| {'measure'.ljust(width)} | value | target |", f"|{'-' * (width + 2)}|---|---|"]
    table += [f"| {a.ljust(width)} | {b} | {c} |" for a, b, c in rows]
    corpus = out["corpus"]
    text = "\n".join(
        [
            "# keysafe scan benchmark",
            "",
            f"Corpus: {corpus['bytes'] / MB:.1f} MB of Python sources (stdlib + site-packages,"
            f" replicated) in {corpus['files']} files, {corpus['planted']} planted fake"
            " credentials."
            f" Peers run as whole processes on a {slice_mb:.1f} MB slice of it, and so does"
            " keysafe (`python -m keysafe.scan -j 1`) for the speed-up ratios. Quality is"
            " measured on the labelled"
            " corpus tests/data/scan_corpus (CredSweeper's severity=info results, such as UUIDs,"
            " are not counted as claims). Machine: "
            f"{out['machine']['cpus']} CPUs shared with other work,"
            f" Python {out['machine']['python']}.",
            "",
            *table,
            "",
        ]
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scan.md").write_text(text)
    (RESULTS / "scan.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
