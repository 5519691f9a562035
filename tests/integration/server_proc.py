"""Helpers to run ``keysafe server`` as a real process over HTTPS, on SQLite or PostgreSQL.

The server is started through the installed CLI (``keysafe server ...``) in its own
process group, so that teardown (and the crash test) can signal every uvicorn worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from keysafe.config import load_settings
from keysafe.crypto.tls import LocalTls, ensure_local_tls
from keysafe.server.runner import prepare_embedded
from pgtest import pg_schema_url

KEYSAFE_CLI = str(Path(sys.executable).with_name("keysafe"))
# A bound on a start, not a timing check (a loaded 2-core machine is slow to start one).
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ssl_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


@contextlib.contextmanager
def database_url(engine: str, tmp: Path) -> Iterator[str]:
    """A fresh database for ``engine`` ("sqlite" or "postgres")."""
    if engine == "sqlite":
        data = tmp / "db"
        data.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{data / 'keysafe.db'}"
    else:
        with pg_schema_url() as url:
            yield url


def pg_connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(url, autocommit=True)


# -- the server process -------------------------------------------------------------------


@dataclass
class Vault:
    """One keysafe home and database: initialised once, served by successive processes."""

    engine: str
    home: Path
    db_url: str
    tls: LocalTls
    root_token: str | None
    unseal_key_file: Path | None

    @property
    def unseal_key(self) -> str:
        assert self.unseal_key_file is not None
        return self.unseal_key_file.read_text().strip()

    @property
    def sqlite_file(self) -> Path:
        assert self.engine == "sqlite"
        return Path(self.db_url.removeprefix("sqlite:///"))


def init_vault(engine: str, tmp: Path, db_url: str, *, embedded: bool = True) -> Vault:
    """Initialise with ``prepare_embedded`` (key mode) unless ``embedded`` is False."""
    home = tmp / "home"
    tls = ensure_local_tls(tmp / "tls")
    if not embedded:
        home.mkdir(parents=True, exist_ok=True)
        return Vault(engine, home, db_url, tls, None, None)
    settings = load_settings(home=home, database_url=db_url)
    init = prepare_embedded(settings)
    assert init.created
    assert init.root_token is not None
    return Vault(engine, home, db_url, tls, init.root_token, init.unseal_key_file)


@dataclass
class ServerProc:
    vault: Vault
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self, token: str | None = None, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=self.base_url,
            verify=ssl_context(self.vault.tls.ca_cert),
            headers=headers,
            timeout=30.0,
            **kw,  # type: ignore[arg-type]
        )

    def root(self) -> httpx.Client:
        assert self.vault.root_token is not None
        return self.client(self.vault.root_token)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the process group and wait; SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait(5)
        # Workers may outlive the master by a moment; make sure the group is gone.
        _wait_group_gone(self.proc.pid)
        return self.proc.returncode

    def pids(self) -> list[int]:
        """Every live process of the server's process group (the master and its workers)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.proc.pid and fields[0] != "Z":
                found.append(int(entry.name))
        return found

    def processes_with_open(self, path: Path) -> list[int]:
        """The server's processes that hold ``path`` open."""
        target = str(path.resolve())
        holders = []
        for pid in self.pids():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(fd) == target:
                        holders.append(pid)
                        break
                except OSError:
                    continue
        return holders

    def kill9(self) -> None:
        self.signal_group(signal.SIGKILL)
        self.proc.wait(10)
        _wait_group_gone(self.proc.pid)


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def server_env(vault: Vault, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSAFE_")}
    env["KEYSAFE_HOME"] = str(vault.home)
    env["KEYSAFE_DATABASE_URL"] = vault.db_url
    env.update(extra or {})
    return env


def start_server(
    vault: Vault,
    *,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    use_key_file: bool = True,
    expect_status: int | None = 200,
    port: int | None = None,
) -> ServerProc:
    """Start ``keysafe server`` over HTTPS and wait until health answers ``expect_status``
    (any status when None); on ``port`` when given (a restart at the same address)."""
    port = port or free_port()
    cmd = [
        KEYSAFE_CLI,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--tls-cert",
        str(vault.tls.cert),
        "--tls-key",
        str(vault.tls.key),
    ]
    if use_key_file and vault.unseal_key_file is not None:
        cmd += ["--unseal-key-file", str(vault.unseal_key_file)]
    log_path = vault.home.parent / f"server-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            env=server_env(vault, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProc(vault, proc, port, log_path, dict(extra_env or {}))
    try:
        wait_health(server, expect_status)
    except BaseException:
        server.stop()
        raise
    return server


def wait_health(server: ServerProc, expect_status: int | None = 200) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last: object = None
    with server.client() as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {server.proc.returncode}:\n{server.log()}"
                )
            try:
                resp = client.get("/api/v1/sys/health", timeout=2.0)
                last = resp.status_code
                if expect_status is None or resp.status_code == expect_status:
                    return
            except httpx.TransportError as exc:
                last = exc
            time.sleep(0.1)
    raise AssertionError(
        f"server not healthy after {START_TIMEOUT}s (last: {last})\n{server.log()}"
    )


@contextlib.contextmanager
def running(vault: Vault, **kw: object) -> Iterator[ServerProc]:
    server = start_server(vault, **kw)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
