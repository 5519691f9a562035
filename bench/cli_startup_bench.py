"""Benchmark: the CLI's start-up, as whole processes, next to ``python -c pass``.

One command: ``python bench/cli_startup_bench.py`` (``--runs N``, default 15;
``--quick`` for 5). It starts one ``keysafe up`` (SQLite, HTTPS, a temporary home),
writes a few secrets, then times each command below as a whole process, the way a
script runs it (the ``keysafe`` console script of this venv), like ``hyperfine -N``:
one warm-up, then ``--runs`` rounds that interleave every command so that the machine's
load drifts over all of them alike.

- ``python -c pass``: the interpreter's floor, the reference;
- ``keysafe --help``, ``secret get``, ``secret set`` (value on stdin), ``secret list``,
  ``run --path F -- true`` and ``export --path F``: the commands scripts run most.

It reports the median and min of each, and each median's excess over the reference
(target: within 150 ms). Results: a table on stdout, bench/results/cli_startup.md and
.json. Server and CLI share the machine's cores: read the figures as rough.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPSConnection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGET_MS = 150.0
FOLDER = "bench/dev"


class BenchError(Exception):
    """The benchmark cannot run or a step failed; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def keysafe_program() -> list[str]:
    """The console script next to this interpreter (what users run), else ``-m``."""
    script = Path(sys.executable).with_name("keysafe")
    if script.exists():
        return [str(script)]
    found = shutil.which("keysafe")
    return [found] if found else [sys.executable, "-m", "keysafe.cli.main"]


def healthy(addr: str, ca: Path) -> bool:
    host = addr.removeprefix("https://")
    try:
        conn = HTTPSConnection(host, timeout=2, context=ssl.create_default_context(cafile=ca))
        conn.request("GET", "/api/v1/sys/health")
        return conn.getresponse().status == 200
    except OSError:
        return False


@contextmanager
def keysafe_up(home: Path, env: dict[str, str]) -> Iterator[None]:
    """``keysafe up`` on a free port with ``home``; healthy and profiled when yielded."""
    port = free_port()
    log = (home.parent / "server.log").open("wb")
    proc = subprocess.Popen(
        [*keysafe_program(), "up", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ca = home / "tls" / "ca.pem"
        deadline = time.monotonic() + 90
        while not (ca.exists() and healthy(f"https://127.0.0.1:{port}", ca)):
            if proc.poll() is not None:
                raise BenchError(f"keysafe up exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise BenchError("keysafe up did not become healthy in 90 s")
            time.sleep(0.2)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def commands() -> dict[str, tuple[list[str], str | None]]:
    """Name -> (argv, stdin) of every timed process."""
    ks = keysafe_program()
    return {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "keysafe --help": ([*ks, "--help"], None),
        "secret get": ([*ks, "secret", "get", f"{FOLDER}/DB_PASSWORD"], None),
        "secret set": ([*ks, "secret", "set", f"{FOLDER}/WRITTEN"], "a-new-value\n"),
        "secret list": ([*ks, "secret", "list", "bench/"], None),
        "run -- true": ([*ks, "run", "--path", FOLDER, "--", "true"], None),
        "export": ([*ks, "export", "--path", FOLDER], None),
    }


def time_once(argv: list[str], stdin: str | None, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one process; CPU (user + system, the process and its
    children) varies less than wall time with the machine's load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv,
        input=(stdin or "").encode(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv[1:])} failed: {done.stderr.decode().strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


Samples = dict[str, list[tuple[float, float]]]


def measure(runs: int, env: dict[str, str]) -> Samples:
    cmds = commands()
    for argv, stdin in cmds.values():  # warm-up: page cache, .pyc files
        time_once(argv, stdin, env)
    samples: Samples = {name: [] for name in cmds}
    for _ in range(runs):
        for name, (argv, stdin) in cmds.items():
            samples[name].append(time_once(argv, stdin, env))
    return samples


def report(samples: Samples, runs: int) -> tuple[str, dict[str, Any]]:
    def med(name: str, i: int) -> float:
        return statistics.median(s[i] for s in samples[name]) * 1000

    ref, ref_cpu = med("python -c pass", 0), med("python -c pass", 1)
    rows = []
    lines = [
        f"CLI start-up, whole processes, {runs} interleaved runs each (medians; excess "
        f"over `python -c pass` in the same run, target <= {TARGET_MS:.0f} ms)",
        "",
        "| command | wall ms | min wall ms | excess wall ms | ratio | CPU ms | excess CPU ms "
        "| within target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, values in samples.items():
        wall, cpu = med(name, 0), med(name, 1)
        low = min(v[0] for v in values) * 1000
        excess, excess_cpu = wall - ref, cpu - ref_cpu
        ok = name == "python -c pass" or excess <= TARGET_MS
        rows.append(
            {
                "command": name,
                "wall_ms": wall,
                "min_wall_ms": low,
                "excess_wall_ms": excess,
                "cpu_ms": cpu,
                "excess_cpu_ms": excess_cpu,
                "ok": ok,
            }
        )
        lines.append(
            f"| {name} | {wall:.1f} | {low:.1f} | {excess:+.1f} | {wall / ref:.1f}x | "
            f"{cpu:.1f} | {excess_cpu:+.1f} | {'yes' if ok else 'NO'} |"
        )
    load = os.getloadavg()
    lines += ["", f"load average at the end: {load[0]:.2f} on {os.cpu_count()} cores"]
    doc = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "runs": runs,
        "reference_ms": ref,
        "target_excess_ms": TARGET_MS,
        "load_average": load[0],
        "rows": rows,
        "samples_s": samples,
    }
    return "\n".join(lines), doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5 runs")
    args = parser.parse_args()
    runs = 5 if args.quick else max(1, args.runs)
    with tempfile.TemporaryDirectory(prefix="ks-startup-") as tmp:
        home = Path(tmp) / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
        env["KEYSAFE_HOME"] = str(home)
        env.pop("NO_COLOR", None)
        try:
            with keysafe_up(home, env):
                for name in ("DB_PASSWORD", "API_KEY", "WRITTEN"):
                    argv = [*keysafe_program(), "secret", "set", f"{FOLDER}/{name}"]
                    time_once(argv, f"value-of-{name.lower()}\n", env)
                samples = measure(runs, env)
        except BenchError as exc:
            print(f"cli_startup_bench: {exc}", file=sys.stderr)
            return 1
    table, doc = report(samples, runs)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cli_startup.md").write_text(table + "\n", encoding="utf-8")
    (RESULTS / "cli_startup.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
