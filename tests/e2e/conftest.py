"""End-to-end fixtures: the real ``keysafe`` CLI as processes against a real server.

``vault`` is one ``keysafe up`` for the whole session (a temp KEYSAFE_HOME, a free port);
``Cli.run`` runs ``keysafe ...`` with that home, the way a user in another shell would.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

KEYSAFE = [sys.executable, "-m", "keysafe.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    env.update(extra)
    return env


@dataclass
class Cli:
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*KEYSAFE, *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=timeout,
        )

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*KEYSAFE, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**self.env, **(env or {})},
        )


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C the server, then make sure it is gone; returns its output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


# A bound on a server's start, not a timing check: on a loaded 2-core machine a fresh
# `keysafe up` has taken over 70 s to answer.
START_DEADLINE = 180


def wait_healthy(
    url: str, proc: subprocess.Popen[str], verify: ssl.SSLContext | bool, statuses: set[int]
) -> None:
    deadline = time.monotonic() + START_DEADLINE
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"server exited with {proc.returncode}: {err}{out}")
        try:
            with httpx.Client(verify=verify, timeout=2) as client:
                status = client.get(url).status_code
            if status in statuses:
                return
            last = status
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    pytest.fail(f"server at {url} not ready: {last!r}")


@pytest.fixture(scope="session")
def unused_port() -> Callable[[], int]:
    return free_port


@dataclass
class Vault(Cli):
    addr: str = ""
    proc: subprocess.Popen[str] | None = None


def start_up(home: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    """Start ``keysafe up --port`` on ``home`` and wait until it is healthy over HTTPS."""
    env = clean_env(KEYSAFE_HOME=str(home))
    proc = subprocess.Popen(
        [*KEYSAFE, "up", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        ca = home / "tls" / "ca.pem"
        deadline = time.monotonic() + START_DEADLINE
        while not ca.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        context = ssl.create_default_context(cafile=str(ca)) if ca.exists() else True
        addr = f"https://127.0.0.1:{port}"
        wait_healthy(f"{addr}/api/v1/sys/health", proc, context, {200})
    except BaseException:
        stop(proc)
        raise
    return proc, addr


@pytest.fixture(scope="session")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    """One ``keysafe up`` for the session, healthy over HTTPS with its generated CA."""
    home = tmp_path_factory.mktemp("keysafe-home")
    proc, addr = start_up(home, free_port())
    try:
        yield Vault(home=home, env=clean_env(KEYSAFE_HOME=str(home)), addr=addr, proc=proc)
    finally:
        stop(proc)


@pytest.fixture
def up_runner() -> Iterator[Callable[[Path], tuple[subprocess.Popen[str], str]]]:
    """Start extra ``keysafe up`` processes (each on a free port); all stopped afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(home: Path) -> tuple[subprocess.Popen[str], str]:
        proc, addr = start_up(home, free_port())
        started.append(proc)
        return proc, addr

    yield start
    for proc in started:
        stop(proc)


@pytest.fixture
def prod_server(tmp_path: Path) -> Iterator[Cli]:
    """`keysafe server --insecure-http` on loopback with its own SQLite file; sealed."""
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    env = clean_env(
        KEYSAFE_HOME=str(tmp_path / "home"),
        KEYSAFE_DATABASE_URL=f"sqlite:///{tmp_path / 'vault.db'}",
        KEYSAFE_ADDR=addr,
    )
    proc: subprocess.Popen[str] = subprocess.Popen(
        [*KEYSAFE, "server", "--insecure-http", "--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # Not initialised yet: health answers 503, which is what "up and sealed" looks like.
        wait_healthy(f"{addr}/api/v1/sys/health", proc, False, {200, 503})
        yield Cli(home=tmp_path / "home", env=env)
    finally:
        stop(proc)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI with an empty KEYSAFE_HOME and no server."""
    return Cli(home=tmp_path, env=clean_env(KEYSAFE_HOME=str(tmp_path)))


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Cli]:
    """`keysafe server --tls-cert/--tls-key` with certificates from keysafe's local CA."""
    from keysafe.crypto.tls import ensure_local_tls

    tls = ensure_local_tls(tmp_path / "tls")
    port = free_port()
    addr = f"https://127.0.0.1:{port}"
    env = clean_env(
        KEYSAFE_HOME=str(tmp_path / "home"),
        KEYSAFE_DATABASE_URL=f"sqlite:///{tmp_path / 'vault.db'}",
        KEYSAFE_ADDR=addr,
        KEYSAFE_CACERT=str(tls.ca_cert),
    )
    args = ["server", "--port", str(port), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    proc = subprocess.Popen(
        [*KEYSAFE, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_cert))
        wait_healthy(f"{addr}/api/v1/sys/health", proc, context, {200, 503})
        yield Cli(home=tmp_path / "home", env=env)
    finally:
        stop(proc)
