"""A private PostgreSQL cluster that checks passwords, for the credential-rotation tests.

The machine's shared PostgreSQL trusts every local connection (pg_hba ``trust``), so a
login with a wrong password succeeds there and proves nothing about rotated passwords.
This starts the same PostgreSQL installation as a throwaway cluster (``initdb`` in a
temporary directory, a free port on 127.0.0.1, ``scram-sha-256`` for every connection)
and stops and deletes it afterwards. As root, the server runs as the ``postgres`` user
(PostgreSQL refuses to run as root).

Skips when the PostgreSQL server binaries are missing, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    try:
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def password_postgres(max_connections: int = 100) -> Iterator[str]:
    """The superuser URL (with its password) of a fresh password-checking cluster."""
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL server binaries (initdb) are required in CI")
        pytest.skip("PostgreSQL server binaries (initdb) not installed")
    base = Path(tempfile.mkdtemp(prefix="ks-pgauth-"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    password = secrets.token_urlsafe(18)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(pwfile, "postgres")
    data = base / "data"
    port = _free_port()

    def run(*args: str) -> None:
        result = subprocess.run([*prefix, *args], capture_output=True, text=True)
        if result.returncode != 0:
            log = (base / "log").read_text() if (base / "log").exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stderr}{result.stdout}{log}")

    started = False
    try:
        run(
            str(bindir / "initdb"),
            "-D", str(data),
            "-U", "postgres",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
            f"-c max_connections={max_connections}"
        )
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"),
            "-w", "-t", "60", "start")  # fmt: skip
        started = True
        yield f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
            )
        shutil.rmtree(base, ignore_errors=True)
