"""The rotation scheduler: a job of every server process's poll loop.

Each pass claims the policies with work due (a rotation, a run a crash left in flight,
a previous value to retire) and works them. Several processes on one database never
work the same policy at once: each policy is taken by one conditional UPDATE of its
claim (see ``state.RotationStore.claim``), which the database serialises; the loser
skips it. A failed rotation is retried with a doubling delay (``models.backoff_seconds``)
and raises an alert: an audit event ``rotation:fail`` plus the service's notification
hook.
"""

from __future__ import annotations

import anyio.from_thread

from keysafe.rotation.service import RotationService

__all__ = ["EVERY_SECONDS", "tick"]

# How often a process looks for due work; a claim lapses after CLAIM_SECONDS, so a run
# left by a killed process resumes within about CLAIM_SECONDS + EVERY_SECONDS.
EVERY_SECONDS = 2.0


def tick(service: RotationService) -> bool:
    """From the poll loop's worker thread: start a pass on the event loop unless the
    previous one is still running (never waits for it). True when a pass started."""
    return anyio.from_thread.run_sync(service.kick)
