"""With several workers, anomaly scoring runs in the node's job process, not in them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from server_proc import ServerProc, database_url, init_vault, running
from sqlalchemy import func, select

from keysafe.server.jobprocess import ROLE_ENV
from keysafe.store.engine import make_engine, read_conn
from keysafe.store.tables import audit_events
from keysafe.store.tables_alerts import alert_cursor


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    with database_url("sqlite", tmp_path) as url:
        vault = init_vault("sqlite", tmp_path, url)
        with running(vault, workers=2) as proc:
            yield proc


def _job_processes(server: ServerProc) -> list[int]:
    found = []
    for pid in server.pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        # multiprocessing's resource tracker, started beside it, inherits the marker too.
        if f"{ROLE_ENV}=jobs".encode() in environ and b"spawn_main" in cmdline:
            found.append(pid)
    return found


def _wait(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def _scored_up_to_head(server: ServerProc) -> bool:
    engine = make_engine(server.vault.db_url)
    try:
        with read_conn(engine) as conn:
            head = conn.execute(select(func.max(audit_events.c.seq))).scalar_one()
            cursor = conn.execute(select(alert_cursor.c.seq)).scalar()
    finally:
        engine.dispose()
    return cursor is not None and cursor >= head


def _traffic(server: ServerProc, n: int = 10) -> None:
    with server.root() as root:
        for i in range(n):
            assert root.put(f"/api/v1/secrets/jobs/s{i}", json={"value": "v"}).status_code == 200
            assert root.get(f"/api/v1/secrets/jobs/s{i}").status_code == 200


@pytest.mark.timeout(120)
def test_scoring_runs_in_one_job_process_that_comes_back(server: ServerProc) -> None:
    assert _wait(lambda: len(_job_processes(server)) == 1)
    [first] = _job_processes(server)
    _traffic(server)
    assert _wait(lambda: _scored_up_to_head(server))
    # Without the job process nobody scores: the workers leave it to that process.
    os.kill(first, signal.SIGSTOP)
    try:
        _traffic(server)
        time.sleep(5)  # more than two of the workers' poll periods
        assert not _scored_up_to_head(server)
    finally:
        os.kill(first, signal.SIGKILL)
    # Started again by the main process; it catches up.
    assert _wait(lambda: len(_job_processes(server)) == 1 and first not in _job_processes(server))
    assert _wait(lambda: _scored_up_to_head(server))
    assert "job process exited" in server.log()


@pytest.mark.timeout(120)
def test_the_job_process_ends_with_the_server(server: ServerProc) -> None:
    assert _wait(lambda: len(_job_processes(server)) == 1)
    [job] = _job_processes(server)
    os.kill(server.proc.pid, signal.SIGKILL)  # the main process dies without cleaning up
    assert _wait(lambda: not Path(f"/proc/{job}").exists() or _zombie(job), 15)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
