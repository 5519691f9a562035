"""Background work each server process runs on its poll loop, by capability.

A job that must run once per cluster (not once per process) takes a database lock
itself; the loop only decides when each job is due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keysafe.server.services import Services
from keysafe.system.nodes import HEARTBEAT_SECONDS


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every_seconds: float
    run: Callable[[Services], object]
    # Most jobs need the keyring; a sealed process skips them.
    needs_unsealed: bool = True


class Schedule:
    """When each job of a poll loop is next due; every job first runs on the first poll."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self._due = dict.fromkeys((job.name for job in jobs), 0.0)

    def take(self, job: Job, now: float, sealed: bool) -> bool:
        """True when ``job`` is to run at ``now`` (its next run is then booked); a job
        that needs the keyring waits while the process is sealed."""
        if now < self._due[job.name] or (job.needs_unsealed and sealed):
            return False
        self._due[job.name] = now + job.every_seconds
        return True


def background_jobs() -> list[Job]:
    """Every periodic job, in the order a poll runs them."""
    from keysafe.server import monitoring
    from keysafe.server.app import sweep_unused_keys

    return [
        Job("unused-key rule", 600.0, sweep_unused_keys),
        Job("session last-seen", 5.0, lambda svc: svc.users.sessions.flush_touches(), False),
        Job("anomaly detection", 2.0, detect_anomalies),
        Job("lease sweep", 5.0, sweep_expired_leases),
        Job("usage flush", 5.0, monitoring.flush_usage, False),
        Job("rate-limit key rates", 10.0, monitoring.refresh_key_rates, False),
        Job("usage retention", 3600.0, monitoring.prune_usage, False),
        Job("rotation scheduler", 2.0, rotate_due),
        # A dead writer thread is restarted by the next write; this brings back a node
        # nobody writes to (health answers 503 meanwhile).
        Job("writer watchdog", 2.0, lambda svc: svc.revive_writers(), False),
        # Sealed nodes register too: ``operator members`` shows them sealed.
        Job("node heartbeat", HEARTBEAT_SECONDS, heartbeat, False),
    ]


def heartbeat(svc: Services) -> None:
    """Register this node or refresh its row in the node registry."""
    svc.nodes.heartbeat(svc.barrier.sealed)


def detect_anomalies(svc: Services) -> int:
    """Score the audit events written since the last run (at most about a second of
    work per poll, exactly once across processes), then wake the alert deliverer, which
    sends webhooks and e-mail on its own thread so a slow receiver delays nobody."""
    scored = svc.anomaly.run(budget_seconds=1.0)
    svc.alerts.outbox.kick()
    return scored


def sweep_expired_leases(svc: Services) -> object:
    """Drop the database logins of expired leases. Every process runs it: the service
    claims each lease atomically, so a login is dropped once. Runs in a worker thread
    of the poll loop, hence the hop back onto the event loop."""
    import anyio.from_thread

    return anyio.from_thread.run(svc.leases.sweep)


def rotate_due(svc: Services) -> object:
    """Rotate due secrets, resume rotations a crash left in flight, retire previous
    values past their grace. Every process runs it; each policy is claimed atomically,
    so exactly one process works it."""
    from keysafe.rotation.scheduler import tick

    return tick(svc.rotation)
