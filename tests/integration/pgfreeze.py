"""Freeze a PostgreSQL cluster (SIGSTOP of every process: sockets stay open, nothing
answers): shared by tests/integration/test_db_faults.py and bench/cluster_sections.py.
Only for a throwaway cluster (tests/pgauth.py), never the shared server."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from server_proc import pg_connect


def cluster_pids(url: str) -> tuple[int, list[int]]:
    """The postmaster and every process it started (backends, checkpointer, ...)."""
    with pg_connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    postmaster = _ppid(int(row[0]))
    children = [pid for pid in _all_pids() if _ppid(pid) == postmaster]
    return postmaster, children


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


class Frozen:
    """SIGSTOP the whole cluster (postmaster first, so it forks nothing new)."""

    def __init__(self, url: str) -> None:
        postmaster, children = cluster_pids(url)
        self.pids = [postmaster, *children]

    def __enter__(self) -> Frozen:
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc: object) -> None:
        for pid in reversed(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
