"""Health a load balancer can trust: 200 only when this node can really serve.

A node serves when it is unsealed and every named check passes: the database answers a
trivial query within a short timeout, the audit trail can be written, and whatever
other checks are added (``HealthChecks.add``). The checks run together on their own
thread (never the event loop, never the shared thread pool that a hung database may
have filled), the answer waits for them at most ``timeout`` seconds, so health answers
within about that long even while PostgreSQL hangs, and their result is reused for
``cache_seconds`` so that frequent probes stay cheap.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from starlette.requests import Request

from keysafe.server.services import Services
from keysafe.store.engine import read_conn

# A blocking check: None when fine, else why not (shown to whoever probes: no secrets).
Check = Callable[[], str | None]

CACHE_SECONDS = 0.5


@dataclass(frozen=True)
class HealthReport:
    """What health says: ``initialized`` is None when the database could not tell."""

    initialized: bool | None
    sealed: bool
    problems: dict[str, str] = field(default_factory=dict)
    checks: tuple[str, ...] = ()
    seal_reason: str = ""  # why an auto-unseal has not happened (source down, ...)

    @property
    def healthy(self) -> bool:
        return bool(self.initialized) and not self.sealed and not self.problems

    def reason(self) -> str:
        """Why the node is not serving ("" when it is)."""
        reasons = []
        if self.initialized is False:
            reasons.append("not initialised")
        elif self.sealed:
            reasons.append(f"sealed: {self.seal_reason}" if self.seal_reason else "sealed")
        reasons.extend(f"{name}: {why}" for name, why in self.problems.items())
        return "; ".join(reasons)

    def as_document(self) -> dict[str, object]:
        return {
            "initialized": self.initialized,
            "sealed": self.sealed,
            "healthy": self.healthy,
            "checks": {name: self.problems.get(name, "ok") for name in self.checks},
            "reason": self.reason(),
        }


@dataclass
class _Probe:
    started: float
    result: Future[tuple[bool | None, dict[str, str]]]
    running: str = ""


class HealthChecks:
    """The named checks behind ``/api/v1/sys/health`` and ``/v1/sys/health``."""

    def __init__(
        self, services: Services, timeout: float, cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self._svc = services
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._initialized: bool | None = None
        self._checks: list[tuple[str, Check]] = [
            ("database", self._database),
            ("audit", services.audit.sink_problem),
            ("writers", self._writers),
        ]
        self._lock = threading.Lock()
        self._probe: _Probe | None = None
        self._cached: tuple[float, bool | None, dict[str, str]] | None = None

    def add(self, name: str, check: Check) -> None:
        """Add a named check (blocking is fine: it runs on the probe thread)."""
        self._checks.append((name, check))

    def _writers(self) -> str | None:
        # Writes would wait on a dead group-commit thread: send them elsewhere meanwhile.
        return None if self._svc.writers_alive() else "down"

    def _database(self) -> str | None:
        config = self._svc.system.seal_config()  # read once, then kept by the service
        with read_conn(self._svc.engine) as conn:
            conn.exec_driver_sql("SELECT 1")
        self._initialized = config is not None
        return None

    def _run(self, probe: _Probe) -> None:
        problems: dict[str, str] = {}
        for name, check in self._checks:
            probe.running = name
            try:
                why = check()
            except Exception as exc:  # a failing check is an answer, not a crash
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if why is not None:
                problems[name] = why
        probe.result.set_result((self._initialized, problems))

    def _current_probe(self, now: float) -> _Probe:
        with self._lock:
            probe = self._probe
            if probe is None or probe.result.done():
                probe = self._probe = _Probe(now, Future())
                threading.Thread(
                    target=self._run, args=(probe,), name="ks-health", daemon=True
                ).start()
            return probe

    async def report(self) -> HealthReport:
        """This node's health; answers within about ``timeout`` seconds whatever hangs."""
        sealed = self._svc.barrier.sealed
        names = tuple(name for name, _ in self._checks)
        now = time.monotonic()
        cached = self._cached
        if cached is not None and now - cached[0] < self._cache_seconds:
            # Only a vault that was initialised can be unsealed: the live seal state
            # corrects a cached "not initialised" right after init and unseal.
            return HealthReport(
                True if not sealed else cached[1], sealed, cached[2], names, self._seal_reason()
            )
        probe = self._current_probe(now)
        remaining = probe.started + self._timeout - now
        try:
            if remaining <= 0:
                raise TimeoutError
            waited = asyncio.shield(asyncio.wrap_future(probe.result))
            initialized, problems = await asyncio.wait_for(waited, remaining)
        except TimeoutError:
            # A check that hangs (a stopped database) still answers: it failed.
            initialized = self._initialized
            problems = {probe.running or "database": f"no answer within {self._timeout:g} s"}
        self._cached = (time.monotonic(), initialized, problems)
        return HealthReport(
            True if not sealed else initialized, sealed, problems, names, self._seal_reason()
        )

    def _seal_reason(self) -> str:
        return self._svc.system.retry.reason if self._svc.barrier.sealed else ""


def health_checks(request: Request) -> HealthChecks:
    """The app's health checks (built in ``create_app``)."""
    checks: HealthChecks = request.app.state.health
    return checks
