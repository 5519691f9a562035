"""The node's job process: CPU-heavy background work kept out of the serving workers.

A job that scores thousands of audit events runs for tens of milliseconds at a time. In
a worker's thread it holds the GIL against that worker's event loop, and every request
the loop is serving waits behind it (measured with ``bench/vault_bench.py``: audited
read p99 16-19 ms with anomaly scoring off, 25-39 ms with it in the workers). With
several workers, ``run_server`` therefore starts this one extra process beside them;
it runs the jobs named in ``JOBS`` on the same poll schedule, and the workers skip them
(``JOB_PROCESS_ENV``). The jobs already take their own database locks, so correctness
never depended on which process runs them.

The process follows the seal state like a worker, unseals from the same key source, and
exits when its parent (the server's main process) is gone; a thread of the main process
starts it again if it dies, so a crash pauses those jobs for a second, not for good.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Final

log = logging.getLogger("keysafe.server")

JOB_PROCESS_ENV: Final = "KEYSAFE_INTERNAL_JOB_PROCESS"
# Set only in the job process's own environment, so that it can be told from the workers.
ROLE_ENV: Final = "KEYSAFE_INTERNAL_ROLE"
# The heartbeat too: one process keeps the node's registry row, not every worker.
JOBS: Final = frozenset({"anomaly detection", "node heartbeat"})
_POLL_SECONDS: Final = 0.5
_RESTART_SECONDS: Final = 1.0
_stopping = threading.Event()


def skipped_here() -> frozenset[str]:
    """The jobs this serving process leaves to the node's job process."""
    return JOBS if os.environ.get(JOB_PROCESS_ENV) else frozenset()


def start() -> None:
    """Start the job process (the settings travel in the environment, as for workers),
    mark the environment so that workers started afterwards skip its jobs, and keep it
    running from a daemon thread for as long as this process lives."""
    os.environ[JOB_PROCESS_ENV] = "1"
    # Runs before multiprocessing's own exit handler ends the child: no restart then.
    atexit.register(_stopping.set)
    first = _spawn(os.getpid())  # before any worker starts: see ``_spawn``
    threading.Thread(target=_keep, args=(first,), name="keysafe-jobs", daemon=True).start()


def _spawn(parent: int) -> multiprocessing.process.BaseProcess:
    # The role marker is in this process's environment only while the child starts.
    ctx = multiprocessing.get_context("spawn")
    process = ctx.Process(target=_main, args=(parent,), name="keysafe-jobs", daemon=True)
    os.environ[ROLE_ENV] = "jobs"
    try:
        process.start()
    finally:
        del os.environ[ROLE_ENV]
    return process


def _keep(process: multiprocessing.process.BaseProcess) -> None:
    parent = os.getpid()
    while True:
        process.join()
        # A server being stopped (the whole process group gets SIGTERM) sets
        # ``_stopping`` meanwhile: no restart then, and no warning.
        time.sleep(_RESTART_SECONDS)
        if _stopping.is_set():
            return
        log.warning("the job process exited (code %s); starting it again", process.exitcode)
        process = _spawn(parent)


def _main(parent: int) -> None:
    from keysafe.monitor.nodelimits import NODE_LIMITS_ENV
    from keysafe.server.app import settings_from_env
    from keysafe.server.jobs import Schedule, background_jobs
    from keysafe.server.services import build_services, read_unseal_key

    # Ctrl-C reaches the whole process group: the main process decides when this ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # It serves no request: the workers' rate-limit regions are theirs alone.
    os.environ.pop(NODE_LIMITS_ENV, None)
    settings = settings_from_env()
    svc = build_services(settings, unseal_key=read_unseal_key(settings))
    svc.audit.start()
    schedule = Schedule([job for job in background_jobs() if job.name in JOBS])
    while os.getppid() == parent:
        time.sleep(_POLL_SECONDS)
        try:
            if svc.barrier.sealed:
                svc.system.auto_unseal()
            svc.system.follow_seal_state()
        except Exception as exc:  # a database blip: try again next poll
            log.warning("job process: could not read the seal state: %s", exc)
            continue
        for job in schedule.jobs:
            if not schedule.take(job, time.monotonic(), svc.barrier.sealed):
                continue
            try:
                job.run(svc)
            except Exception as exc:  # retried when next due
                log.warning("background job %r failed: %s", job.name, exc)
    svc.close()
