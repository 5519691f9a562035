"""Benchmark of the vault core: HTTPS throughput and latency, write rate, store-size
sensitivity and the CLI's whole-process time.

One command: ``python bench/vault_bench.py`` (``--quick`` for a short smoke run,
``--duration N`` for N-second wrk runs). On this machine it measures, in one run:

1. ``GET /api/v1/sys/health`` throughput: the reference (same server, workers and TLS);
2. audited secret reads ``GET /api/v1/secrets/<path>`` with the root token, spread
   randomly over 1,000 stored secrets: throughput, p50, p99, ratio to health;
3. writes ``PUT /api/v1/secrets/<path>`` spread over 1,000 paths: throughput;
4. read throughput with 1,000 vs 100,000 stored secrets (random paths over all of them);
5. ``keysafe secret get <path>`` as a whole process (hyperfine), next to ``python -c pass``.

Servers are started exactly as a user starts one: ``keysafe up --port P`` with
``KEYSAFE_HOME`` set to a temporary directory (SQLite, 2 uvicorn workers, HTTPS with the
locally generated CA and certificate). Each vault is initialised and seeded in-process
BEFORE its server starts: ``prepare_embedded`` (what ``keysafe up`` calls) creates it,
the root token goes into the profile (``keysafe up`` keeps the token it finds there), and
the secrets are written through ``SecretsService.write`` (the function behind
``PUT /api/v1/secrets/<path>``: encryption, versioning, pruning and the audit event in the
same transaction), with many writes grouped in one transaction to save commits.

HTTP load comes from wrk (``wrk -t2 -c64 -d<N>s --latency`` plus a Lua script for the
headers, paths and a machine-readable summary). A wrk run with any non-2xx response or
socket error is reported as INVALID, never as a number that passes.

Results: a table on stdout, bench/results/vault.md and bench/results/vault.json. wrk and
the servers share the same cores, and the machine may be shared with other work: read the
figures as rough.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent

READ_PREFIX = "bench/r"
WRITE_PREFIX = "bench/w"
WRITE_PATHS = 1000
SEED_BATCH = 1000

TARGET_READ_RATIO = 0.50
TARGET_READS = 5000.0
TARGET_READ_P99_MS = 25.0
TARGET_WRITES = 1000.0
TARGET_STORE_DRIFT = 0.20
TARGET_CLI_MS = 250.0


class BenchError(Exception):
    """The benchmark cannot run or a step failed; the message says why."""


def read_path(i: int) -> str:
    return f"{READ_PREFIX}/{i:06d}"


def seed_value(i: int) -> str:
    return f"bench-value-{i:06d}-" + "x" * 32


# -- environment -------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any KEYSAFE_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    env.update(extra)
    return env


def find_tools() -> dict[str, str]:
    tools: dict[str, str] = {}
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (needed for the HTTP load): apt-get install wrk")
    hyperfine = shutil.which("hyperfine")
    if hyperfine is None:
        raise BenchError(
            "hyperfine is not installed (needed for the CLI timing): apt-get install "
            "hyperfine (or cargo install hyperfine)"
        )
    keysafe = shutil.which("keysafe", path=str(BIN)) or shutil.which("keysafe")
    if keysafe is None:
        raise BenchError("the keysafe CLI is not installed: pip install -e . in the venv")
    tools.update(wrk=wrk, hyperfine=hyperfine, keysafe=keysafe)
    return tools


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def machine_info(tools: dict[str, str]) -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.rstrip("\n")
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit + (" (src/ has uncommitted changes)" if dirty else ""),
        "src_uncommitted": dirty.splitlines(),
        "wrk": tool_version([tools["wrk"], "-v"]),
        "hyperfine": tool_version([tools["hyperfine"], "--version"]),
        "loadavg_start": os.getloadavg(),
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- seeding -----------------------------------------------------------------------------


@dataclass
class Store:
    name: str
    home: Path
    secrets: int
    root_token: str = ""
    seed_seconds: float = 0.0


def init_and_seed(store: Store, progress: bool) -> None:
    """Create the vault under ``store.home`` and write ``store.secrets`` secrets into it,
    in this process, before any server runs on it."""
    from keysafe.access.models import RequestContext
    from keysafe.cli.profile import write_profile
    from keysafe.client._config import PROFILE_NAME
    from keysafe.config import load_settings
    from keysafe.server.runner import prepare_embedded
    from keysafe.server.services import build_services

    settings = load_settings(home=store.home)
    init = prepare_embedded(settings)
    if init.root_token is None:
        raise BenchError(f"{store.home} already held a vault; expected a fresh directory")
    store.root_token = init.root_token
    # `keysafe up` keeps the token it finds in the profile (it has no other way to learn
    # the root token of a vault it did not initialise itself).
    write_profile(store.home / PROFILE_NAME, {"token": init.root_token})

    svc = build_services(settings, unseal_key=init.unseal_key_file.read_text().strip())
    try:
        if not svc.system.auto_unseal():
            raise BenchError(f"could not unseal the new vault under {store.home}")
        svc.audit.start()
        principal = svc.tokens.authenticate(init.root_token)
        ctx = RequestContext(principal, "127.0.0.1", "bench-seed")
        started = time.perf_counter()

        async def seed() -> None:
            # The public, audited write path; concurrent writes are group-committed by
            # the service's write batcher, as they are in the server.
            for start in range(0, store.secrets, SEED_BATCH):
                stop = min(start + SEED_BATCH, store.secrets)
                await asyncio.gather(
                    *(
                        svc.secrets.write(ctx, read_path(i), seed_value(i))
                        for i in range(start, stop)
                    )
                )
                if progress and (stop % 10_000 == 0 or stop == store.secrets):
                    elapsed = time.perf_counter() - started
                    print(
                        f"    {store.name}: {stop:,} secrets seeded ({elapsed:.1f} s)", flush=True
                    )

        asyncio.run(seed())
        store.seed_seconds = time.perf_counter() - started
        last = asyncio.run(svc.secrets.read(ctx, read_path(store.secrets - 1)))
        if last.value != seed_value(store.secrets - 1):
            raise BenchError(f"seeded value of {last.path} does not read back")
    finally:
        svc.close()


# -- servers -----------------------------------------------------------------------------


@dataclass
class Server:
    store: Store
    keysafe: str
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    cacert: Path | None = None
    _log: Any = None

    @property
    def addr(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        # A new session: the server, its uvicorn supervisor and both workers form one
        # process group that stop() signals as a whole.
        self.proc = subprocess.Popen(
            [self.keysafe, "up", "--port", str(self.port)],
            env=clean_env(KEYSAFE_HOME=str(self.store.home)),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(text[-lines:])
        return ""

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait for the profile (addr, CA) and then for health 200, verified with the CA."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"`keysafe up` for the {self.store.name} store exited with status "
                    f"{self.proc.returncode}; its output:\n{self.log_tail()}"
                )
            if self.cacert is None:
                profile = read_profile(self.store.home)
                if profile.get("addr") == self.addr and profile.get("cacert"):
                    self.cacert = Path(profile["cacert"])
            if self.cacert is not None:
                try:
                    status, _ = https_request(self, "GET", "/api/v1/sys/health")
                    if status == 200:
                        return
                    last_error = f"health answered {status}"
                except (OSError, http.client.HTTPException) as exc:
                    last_error = str(exc)
            time.sleep(0.2)
        raise BenchError(
            f"the {self.store.name} server on {self.addr} was not healthy within {timeout:.0f} s "
            f"({last_error}); its output:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is not None:
            pgid = self.proc.pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
            # Whatever is left of the group (workers of a supervisor that died first).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def read_profile(home: Path) -> dict[str, str]:
    try:
        with (home / "profile.toml").open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {k: v for k, v in raw.items() if isinstance(v, str)}


def https_request(
    server: Server,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """One request over HTTPS, the certificate verified against the vault's CA."""
    assert server.cacert is not None
    context = ssl.create_default_context(cafile=str(server.cacert))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=5)
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw.decode(errors="replace")
    return resp.status, doc


def check_api(server: Server) -> None:
    """One read and one write over HTTPS before any load: the routes answer correctly."""
    store = server.store
    status, doc = https_request(
        server,
        "GET",
        f"/api/v1/secrets/{read_path(0)}",
        token=store.root_token,
    )
    if status != 200 or doc.get("value") != seed_value(0):
        raise BenchError(f"GET {read_path(0)} on the {store.name} store answered {status}: {doc}")
    path = f"{WRITE_PREFIX}/check"
    status, doc = https_request(
        server,
        "PUT",
        f"/api/v1/secrets/{path}",
        token=store.root_token,
        body={"value": "check"},
    )
    if status != 200:
        raise BenchError(f"PUT {path} on the {store.name} store answered {status}: {doc}")


# -- wrk ---------------------------------------------------------------------------------

# Every script numbers its threads (setup runs in the main Lua state, `thread:set` defines
# a global in the thread's own state) and prints one machine-readable summary line.
LUA_COMMON = r"""
local thread_count = 0
function setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "stdev": %.1f, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"p999": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""

LUA_HEALTH = r"""
request = function()
  return wrk.format("GET", "/api/v1/sys/health")
end
"""

LUA_READ = r"""
local headers = {["Authorization"] = "Bearer %(token)s"}
local count = %(count)d

function init(args)
  math.randomseed(os.time() + 7919 * (thread_id + 1))
end

request = function()
  local path = string.format("/api/v1/secrets/%(prefix)s/%%06d", math.random(0, count - 1))
  return wrk.format("GET", path, headers)
end
"""

LUA_WRITE = r"""
local headers = {
  ["Authorization"] = "Bearer %(token)s",
  ["Content-Type"] = "application/json",
}
local body = '{"value": "bench-write-0123456789abcdef0123456789abcdef"}'
local paths = %(paths)d
local threads = %(threads)d
local counter = 0

request = function()
  -- Thread t writes paths t, t + threads, t + 2 * threads, ... (mod paths).
  local n = (counter * threads + thread_id) %% paths
  counter = counter + 1
  return wrk.format("PUT", string.format("/api/v1/secrets/%(prefix)s/%%04d", n), headers, body)
end
"""

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/sec, p50/p99 (ms), non-2xx and socket errors from wrk's report."""
    out: dict[str, Any] = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        if m := re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE):
            out[f"p{pct}_ms"] = float(m.group(1)) * _UNIT_MS[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
        if m
        else {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    )
    if m := re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", text):
        out["requests"] = int(m.group(1))
        out["elapsed_s"] = float(m.group(2)) * _UNIT_MS[m.group(3)] / 1000
    if m := re.search(r"^BENCHJSON (\{.*\})$", text, re.MULTILINE):
        out["lua_summary"] = json.loads(m.group(1))
    return out


@dataclass
class WrkRun:
    name: str
    url: str
    script: str
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        r = self.result
        found = []
        if "rps" not in r or "p99_ms" not in r:
            found.append("wrk's report could not be parsed")
        if r.get("non_2xx"):
            found.append(f"{r['non_2xx']} non-2xx responses")
        status_errors = r.get("lua_summary", {}).get("errors", {}).get("status", 0)
        if status_errors and not r.get("non_2xx"):
            found.append(f"{status_errors} responses with status >= 400")
        socket_errors = {k: v for k, v in r.get("socket_errors", {}).items() if v}
        if socket_errors:
            found.append("socket errors " + ", ".join(f"{k} {v}" for k, v in socket_errors.items()))
        if r.get("requests") == 0:
            found.append("no request completed")
        return found

    @property
    def valid(self) -> bool:
        return not self.problems


def run_wrk(
    wrk: str, run: WrkRun, tmp: Path, *, threads: int, conns: int, duration: int, warmup: int
) -> WrkRun:
    script = tmp / f"{run.name}.lua"
    script.write_text(LUA_COMMON + run.script)
    base = [wrk, f"-t{threads}", f"-c{conns}"]
    if warmup > 0:
        subprocess.run(
            [*base, f"-d{warmup}s", "-s", str(script), run.url],
            capture_output=True,
            text=True,
            check=False,
            timeout=warmup + 60,
        )
    cmd = [*base, f"-d{duration}s", "--latency", "-s", str(script), run.url]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=duration + 60)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}) on {run.name}: {proc.stderr.strip()}")
    run.result = parse_wrk(proc.stdout)
    run.result["command"] = shlex.join(cmd).replace(str(tmp), "$TMP")
    run.result["output"] = proc.stdout
    status = "ok" if run.valid else "INVALID: " + "; ".join(run.problems)
    print(
        f"    {run.name}: {run.result.get('rps', 0):,.0f} req/s, "
        f"p50 {run.result.get('p50_ms', 0):.2f} ms, p99 {run.result.get('p99_ms', 0):.2f} ms "
        f"({status})",
        flush=True,
    )
    return run


# -- hyperfine ---------------------------------------------------------------------------


def run_hyperfine(
    tools: dict[str, str], home: Path, path: str, tmp: Path, *, runs: int, warmup: int
) -> dict[str, Any]:
    env = clean_env(KEYSAFE_HOME=str(home))
    check = subprocess.run(
        [tools["keysafe"], "secret", "get", path],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if check.returncode != 0 or check.stdout.rstrip("\n") != seed_value(0):
        raise BenchError(
            f"`keysafe secret get {path}` exited {check.returncode}: "
            f"{check.stderr.strip() or check.stdout.strip()!r}"
        )
    export = tmp / "hyperfine.json"
    commands = {
        "keysafe secret get": shlex.join([tools["keysafe"], "secret", "get", path]),
        "python -c pass": shlex.join([sys.executable, "-c", "pass"]),
    }
    cmd = [
        tools["hyperfine"],
        "--warmup",
        str(warmup),
        "--runs",
        str(runs),
        "-N",  # no intermediate shell: the figure is the process itself
        "--style",
        "basic",
        "--export-json",
        str(export),
    ]
    for name, command in commands.items():
        cmd += ["--command-name", name, command]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise BenchError(f"hyperfine failed ({proc.returncode}):\n{proc.stderr or proc.stdout}")
    results: dict[str, Any] = {}
    for entry in json.loads(export.read_text())["results"]:
        times = sorted(entry["times"])
        results[entry["command"]] = {
            "command": entry["command"],
            "runs": len(times),
            "mean_ms": entry["mean"] * 1000,
            "stddev_ms": (entry["stddev"] or 0.0) * 1000,
            "median_ms": entry["median"] * 1000,
            "p95_ms": percentile(times, 95) * 1000,
            "min_ms": entry["min"] * 1000,
            "max_ms": entry["max"] * 1000,
        }
    results["hyperfine_command"] = shlex.join(cmd).replace(str(tmp), "$TMP")
    for name in commands:
        r = results[name]
        print(
            f"    {name}: mean {r['mean_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, "
            f"max {r['max_ms']:.1f} ms ({r['runs']} runs)",
            flush=True,
        )
    return results


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


# -- report ------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    measured: str
    target: str
    status: str  # pass | FAIL | INVALID | info


def verdict(ok: bool | None, *runs: WrkRun) -> str:
    """INVALID when a run behind the figure is; else pass/FAIL, or info without a target."""
    if any(not r.valid for r in runs):
        return "INVALID"
    if ok is None:
        return "info"
    return "pass" if ok else "FAIL"


def build_rows(
    health: WrkRun,
    reads: WrkRun,
    reads_large: WrkRun,
    reads_again: WrkRun,
    writes: WrkRun,
    cli: dict[str, Any],
    small: Store,
    large: Store,
) -> tuple[list[Row], dict[str, float]]:
    h, r, rl, w = health.result, reads.result, reads_large.result, writes.result
    ratio = r["rps"] / h["rps"] if h.get("rps") else float("nan")
    # Small store measured before and after the large one (A-B-A): drift on a shared
    # machine then shows up in both halves instead of biasing the ratio.
    small_rps = (r["rps"] + reads_again.result["rps"]) / 2
    store_ratio = rl["rps"] / small_rps if small_rps else float("nan")
    get = cli["keysafe secret get"]
    floor = cli["python -c pass"]
    n_small, n_large = f"{small.secrets:,}", f"{large.secrets:,}"
    rows = [
        Row(
            "1. health GET /api/v1/sys/health (reference)",
            f"{h['rps']:,.0f} req/s",
            "reference",
            verdict(None, health),
        ),
        Row(
            f"2. audited reads GET /api/v1/secrets/<path> ({n_small} stored)",
            f"{r['rps']:,.0f} reads/s",
            f">= {TARGET_READS:,.0f} reads/s",
            verdict(r["rps"] >= TARGET_READS, reads),
        ),
        Row(
            "2. reads / health",
            f"{ratio:.0%}",
            f">= {TARGET_READ_RATIO:.0%}",
            verdict(ratio >= TARGET_READ_RATIO, reads, health),
        ),
        Row("2. read latency p50", f"{r['p50_ms']:.2f} ms", "-", verdict(None, reads)),
        Row(
            "2. read latency p99",
            f"{r['p99_ms']:.2f} ms",
            f"< {TARGET_READ_P99_MS:.0f} ms",
            verdict(r["p99_ms"] < TARGET_READ_P99_MS, reads),
        ),
        Row(
            f"3. writes PUT /api/v1/secrets/<path> ({WRITE_PATHS:,} paths)",
            f"{w['rps']:,.0f} writes/s",
            f">= {TARGET_WRITES:,.0f} writes/s",
            verdict(w["rps"] >= TARGET_WRITES, writes),
        ),
        Row(
            "3. write latency p50 / p99",
            f"{w['p50_ms']:.2f} / {w['p99_ms']:.2f} ms",
            "-",
            verdict(None, writes),
        ),
        Row(
            f"4. reads, {n_small} stored (figure 2 run, and again after the {n_large} run)",
            f"{r['rps']:,.0f} / {reads_again.result['rps']:,.0f} reads/s",
            "-",
            verdict(None, reads, reads_again),
        ),
        Row(
            f"4. reads, {n_large} stored",
            f"{rl['rps']:,.0f} reads/s",
            "-",
            verdict(None, reads_large),
        ),
        Row(
            f"4. {n_large} / {n_small} stored read throughput (mean of both {n_small} runs)",
            f"{store_ratio:.2f}",
            f"within {TARGET_STORE_DRIFT:.0%} (0.80-1.20)",
            verdict(abs(store_ratio - 1) <= TARGET_STORE_DRIFT, reads, reads_large, reads_again),
        ),
        Row(
            f"4. read p99, {n_large} stored",
            f"{rl['p99_ms']:.2f} ms",
            "-",
            verdict(None, reads_large),
        ),
        Row(
            f"4. seeding {n_large} secrets in-process (SecretsService.write)",
            f"{large.seed_seconds:.1f} s ({large.secrets / large.seed_seconds:,.0f}/s)",
            "-",
            "info",
        ),
        Row(
            "5. `keysafe secret get` whole process, mean",
            f"{get['mean_ms']:.1f} ms",
            f"< {TARGET_CLI_MS:.0f} ms",
            "pass" if get["mean_ms"] < TARGET_CLI_MS else "FAIL",
        ),
        Row(
            "5. `keysafe secret get` p95 / max",
            f"{get['p95_ms']:.1f} / {get['max_ms']:.1f} ms",
            "-",
            "info",
        ),
        Row(
            "5. `python -c pass` (interpreter floor), mean / max",
            f"{floor['mean_ms']:.1f} / {floor['max_ms']:.1f} ms",
            "-",
            "info",
        ),
    ]
    derived = {"reads_over_health": ratio, "large_over_small_reads": store_ratio}
    return rows, derived


def format_table(rows: list[Row]) -> str:
    header = ("figure", "measured", "target", "result")
    cells = [header, *((r.figure, r.measured, r.target, r.status) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]

    def line(c: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(widths[i]) for i, v in enumerate(c)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(c) for c in cells[1:])])


def write_markdown(
    path: Path,
    rows: list[Row],
    info: dict[str, Any],
    config: dict[str, Any],
    command: str,
    notes: list[str],
) -> None:
    lines = [
        "# keysafe vault core benchmark",
        "",
        f"Run {info['date']} on {info['nproc']} CPUs ({info['cpu_model']}), Python "
        f"{info['python']}, keysafe at {info['git_commit']}; load average at start "
        f"{' / '.join(f'{x:.2f}' for x in info['loadavg_start'])}. The machine is shared "
        "with other work and wrk runs on the same cores as the server: read the figures "
        "as rough.",
        "",
        f"Server: `keysafe up --port P` with `KEYSAFE_HOME` a fresh temporary directory "
        "(SQLite, 2 uvicorn workers, HTTPS with the locally generated CA). Load: "
        f"`wrk -t{config['threads']} -c{config['connections']} -d{config['duration']}s "
        f"--latency -s <script>` after a {config['warmup']} s warm-up run (discarded); "
        "keep-alive, root token. Reads pick a random stored path per request (the small "
        "store is read before and after the large one); writes cycle "
        f"over {WRITE_PATHS:,} paths. Stores are seeded in-process through "
        "`SecretsService.write` before their server starts. CLI: "
        f"`hyperfine -N --warmup {config['hyperfine_warmup']} --runs "
        f"{config['hyperfine_runs']}` with `KEYSAFE_HOME` pointing at the running server's "
        "profile.",
        "",
        format_table(rows),
        "",
    ]
    if notes:
        lines += ["Notes:", "", *(f"- {n}" for n in notes), ""]
    lines += [
        "Machine:",
        "",
        f"- nproc: {info['nproc']}",
        f"- CPU: {info['cpu_model']}",
        f"- Python: {info['python']} ({info['platform']})",
        f"- wrk: {info['wrk']}; hyperfine: {info['hyperfine']}",
        f"- date: {info['date']}",
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    path.write_text("\n".join(lines))


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3 s wrk runs, 1 s warm-up, 10,000-secret large store, 10 hyperfine runs",
    )
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 10)")
    parser.add_argument("--warmup", type=int, help="seconds of discarded wrk warm-up (3)")
    parser.add_argument("--large", type=int, help="secrets in the large store (100,000)")
    parser.add_argument(
        "--small", type=int, default=1000, help="secrets in the small store (1,000)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=RESULTS,
        help="where vault.md and vault.json go (bench/results)",
    )
    parser.add_argument(
        "--keep-temp", action="store_true", help="keep the temporary vaults and server logs"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (3 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    args.large = args.large or (10_000 if quick else 100_000)
    args.hyperfine_runs = 10 if quick else 30
    args.hyperfine_warmup = 2 if quick else 3
    if args.small < 1 or args.large < 1 or args.duration < 1:
        parser.error("--small, --large and --duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C so the servers are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for key in [k for k in os.environ if k.startswith("KEYSAFE_")]:
        del os.environ[key]  # the in-process seeding must not pick up a user's vault
    try:
        tools = find_tools()
    except BenchError as exc:
        print(f"vault_bench: {exc}", file=sys.stderr)
        return 2
    info = machine_info(tools)
    command = shlex.join(
        [
            os.path.relpath(sys.executable, ROOT)
            if sys.executable.startswith(str(ROOT))
            else sys.executable,
            *sys.orig_argv[1:],
        ]
    )
    print(
        f"keysafe vault benchmark ({'quick' if args.quick else 'full'} run), "
        f"{info['nproc']} CPUs, Python {info['python']}",
        flush=True,
    )

    tmp = Path(tempfile.mkdtemp(prefix="keysafe-vault-bench-"))
    servers: list[Server] = []
    total_started = time.perf_counter()
    try:
        small = Store("small", tmp / "small", args.small)
        large = Store("large", tmp / "large", args.large)
        print(
            f"[1/5] seeding {small.secrets:,} and {large.secrets:,} secrets in-process", flush=True
        )
        init_and_seed(small, progress=False)
        print(f"    small: {small.secrets:,} secrets in {small.seed_seconds:.1f} s", flush=True)
        init_and_seed(large, progress=True)
        print(
            f"    large: {large.secrets:,} secrets in {large.seed_seconds:.1f} s "
            f"({large.secrets / large.seed_seconds:,.0f}/s)",
            flush=True,
        )

        print("[2/5] starting `keysafe up` on both stores (2 workers each, HTTPS)", flush=True)
        for store in (small, large):
            server = Server(store, tools["keysafe"], free_port(), tmp / f"{store.name}.log")
            servers.append(server)
            server.start()
        for server in servers:
            server.wait_healthy()
            check_api(server)
        srv_small, srv_large = servers

        print(
            f"[3/5] wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
            f"(+{args.warmup} s warm-up each)",
            flush=True,
        )
        wrk_opts = {
            "threads": args.threads,
            "conns": args.connections,
            "duration": args.duration,
            "warmup": args.warmup,
        }

        def lua_read(store: Store) -> str:
            return LUA_READ % {
                "token": store.root_token,
                "count": store.secrets,
                "prefix": READ_PREFIX,
            }

        health = run_wrk(
            tools["wrk"],
            WrkRun("health", srv_small.addr + "/api/v1/sys/health", LUA_HEALTH),
            tmp,
            **wrk_opts,
        )
        reads = run_wrk(
            tools["wrk"],
            WrkRun(f"reads-{small.secrets}", srv_small.addr + "/", lua_read(small)),
            tmp,
            **wrk_opts,
        )
        reads_large = run_wrk(
            tools["wrk"],
            WrkRun(f"reads-{large.secrets}", srv_large.addr + "/", lua_read(large)),
            tmp,
            **wrk_opts,
        )
        reads_again = run_wrk(
            tools["wrk"],
            WrkRun(f"reads-{small.secrets}-again", srv_small.addr + "/", lua_read(small)),
            tmp,
            **wrk_opts,
        )
        lua_write = LUA_WRITE % {
            "token": small.root_token,
            "paths": WRITE_PATHS,
            "threads": args.threads,
            "prefix": WRITE_PREFIX,
        }
        writes = run_wrk(
            tools["wrk"], WrkRun("writes", srv_small.addr + "/", lua_write), tmp, **wrk_opts
        )

        print(
            f"[4/5] hyperfine: `keysafe secret get` vs `python -c pass` "
            f"({args.hyperfine_runs} runs)",
            flush=True,
        )
        cli = run_hyperfine(
            tools,
            small.home,
            read_path(0),
            tmp,
            runs=args.hyperfine_runs,
            warmup=args.hyperfine_warmup,
        )
        for server in servers:  # every server still healthy after the load?
            if server.proc is not None and server.proc.poll() is not None:
                raise BenchError(
                    f"the {server.store.name} server died during the run:\n{server.log_tail()}"
                )
    except BenchError as exc:
        print(f"vault_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()
        logs = {s.store.name: s.log_tail(40) for s in servers}
        if args.keep_temp:
            print(f"temporary vaults and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print("[5/5] results", flush=True)
    runs = [health, reads, reads_large, reads_again, writes]
    rows, derived = build_rows(health, reads, reads_large, reads_again, writes, cli, small, large)
    notes = [f"{r.name}: INVALID run ({'; '.join(r.problems)})" for r in runs if not r.valid]
    if info["src_uncommitted"]:
        notes.append(
            "measured on a working tree with uncommitted changes under src/: "
            + ", ".join(f"`{line.strip()}`" for line in info["src_uncommitted"])
        )
    if args.quick:
        notes.insert(
            0,
            f"quick run (--quick): {args.duration} s wrk runs and a {large.secrets:,}-secret "
            "large store; not the reference figures",
        )
    info["loadavg_end"] = os.getloadavg()
    info["total_seconds"] = round(time.perf_counter() - total_started, 1)
    table = format_table(rows)
    print()
    print(table)
    for note in notes:
        print(f"note: {note}")
    config = {
        "mode": "quick" if args.quick else "full",
        "threads": args.threads,
        "connections": args.connections,
        "duration": args.duration,
        "warmup": args.warmup,
        "small_secrets": small.secrets,
        "large_secrets": large.secrets,
        "write_paths": WRITE_PATHS,
        "seed_batch": SEED_BATCH,
        "hyperfine_runs": args.hyperfine_runs,
        "hyperfine_warmup": args.hyperfine_warmup,
        "server": "keysafe up --port P (KEYSAFE_HOME=<temp dir>): SQLite, 2 workers, HTTPS",
    }
    raw = {
        "command": command,
        "machine": info,
        "config": config,
        "figures": [r.__dict__ for r in rows],
        "derived": derived,
        "seeding": {
            s.name: {"secrets": s.secrets, "seconds": round(s.seed_seconds, 3)}
            for s in (small, large)
        },
        "wrk": {r.name: {**r.result, "valid": r.valid, "problems": r.problems} for r in runs},
        "hyperfine": cli,
        "server_log_tail": logs,
        "all_valid": all(r.valid for r in runs),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = args.out_dir / "vault.md", args.out_dir / "vault.json"
    write_markdown(md_path, rows, info, config, command, notes)
    json_path.write_text(json.dumps(raw, indent=2, default=str) + "\n")
    print(
        f"\nwrote {os.path.relpath(md_path)} and {os.path.relpath(json_path)} "
        f"({info['total_seconds']:.0f} s in all)"
    )
    return 0 if raw["all_valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
