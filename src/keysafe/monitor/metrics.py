"""Prometheus metrics of one server application (prometheus-client).

Each application builds its own ``Metrics`` (its own registry: nothing module-global).
With several uvicorn workers the server runs prometheus-client's multiprocess mode: the
runner points ``PROMETHEUS_MULTIPROC_DIR`` at ``<data dir>/metrics`` (emptied at
start-up) before the workers start, each worker writes its values to memory-mapped
files there, and ``/metrics`` on any worker sums every worker's files. Without it (one
process, tests) values live in this object's registry.

Other capabilities count their own events through the small interface below:
``rotation(outcome)`` and ``lease(event)``.

Metric and label names are what dashboards and alerts query: only ever add.
"""

from __future__ import annotations

import bisect
import os
import shutil
import threading
from collections import deque
from pathlib import Path
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
# Request latency buckets, seconds: an audited read takes well under a millisecond.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_DENIAL_REASONS: Final = {401: "unauthenticated", 403: "forbidden"}
_CHILDREN_BOUND = 10_000
_LOG_BOUND = 8192  # requests logged before the request path sums them


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """Empty ``<data_dir>/metrics`` and point ``PROMETHEUS_MULTIPROC_DIR`` at it; call in
    the parent before worker processes start (values left by an earlier run would be
    summed into this one's)."""
    path = data_dir / "metrics"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def multiprocess_dir() -> Path | None:
    """The multiprocess directory when this process writes its values there."""
    raw = os.environ.get(MULTIPROC_ENV)
    # prometheus-client picks its value class when first imported: the directory
    # counts only if it was set before that (as the runner does for its workers).
    if not raw or values.ValueClass is values.MutexValue:
        return None
    return Path(raw)


class Metrics:
    """The application's counters, histograms and gauges, and their exposition."""

    def __init__(self) -> None:
        self.multiprocess_dir = multiprocess_dir()
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode the values live in files; the registry only collects.
        own = None if self.multiprocess_dir is not None else self.registry
        if self.multiprocess_dir is not None:
            # prometheus-client leaves this constructor unannotated.
            MultiProcessCollector(  # type: ignore[no-untyped-call]
                self.registry, path=str(self.multiprocess_dir)
            )
        self.requests = Counter(
            "keysafe_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "keysafe_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=own,
        )
        self.denials = Counter(
            "keysafe_denials",
            "Requests refused for their credential (unauthenticated) or permissions (forbidden)",
            ["reason"],
            registry=own,
        )
        self.rate_limit_hits = Counter(
            "keysafe_rate_limit_hits",
            "Requests refused by a rate limit, by scope (key or source)",
            ["scope"],
            registry=own,
        )
        self.sealed = Gauge(
            "keysafe_sealed",
            "1 while the vault is sealed, 0 while unsealed",
            registry=own,
            multiprocess_mode="mostrecent",
        )
        self.rotations = Counter(
            "keysafe_rotations",
            "Secret rotations, by outcome",
            ["outcome"],
            registry=own,
        )
        self.leases = Counter(
            "keysafe_lease_events",
            "Lease events (issued, renewed, revoked, expired, revoke_failed ...)",
            ["event"],
            registry=own,
        )
        # labels() costs a lock and a tuple per call: the flush reuses children.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # Requests not yet flushed: (method, route, status, latency bucket) -> count,
        # and each route's latency sum.
        self._pending: dict[tuple[str, str, int, int], int] = {}
        self._pending_sums: dict[str, float] = {}
        self._pending_lock = threading.Lock()
        # Requests answered and not yet summed into ``_pending`` (see ``request``).
        self._log: deque[tuple[str, str, int, float]] = deque()

    # -- the request path ---------------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency: one tuple appended to a log
        (``deque.append`` is atomic: no lock); ``flush`` adds the log to the exported
        values."""
        self._log.append((method, route, status, seconds))
        if len(self._log) >= _LOG_BOUND:
            self._absorb()

    def _absorb(self) -> None:
        """Sum the logged requests by series and latency bucket (any thread)."""
        log, popleft = self._log, self._log.popleft
        with self._pending_lock:
            pending, sums = self._pending, self._pending_sums
            for _ in range(len(log)):
                try:
                    method, route, status, seconds = popleft()
                except IndexError:  # another thread took the rest
                    break
                # The latency bucket observe() would pick: the first upper bound >= it.
                key = (method, route, status, bisect.bisect_left(_LATENCY_BUCKETS, seconds))
                pending[key] = pending.get(key, 0) + 1
                sums[route] = sums.get(route, 0.0) + seconds

    def flush(self) -> None:
        """Add the requests counted since the last flush to the exported values (the
        poll loop calls it twice a second, an exposition first of all).

        In multiprocess mode every ``inc``/``observe`` takes a lock, checks the process
        id (a system call) and writes the value's file: three of them per request cost
        about 5% of an audited read. Summed here, they cost that once per series and
        flush. The histogram's buckets and sum are added to the way ``observe`` does."""
        self._absorb()
        with self._pending_lock:
            pending, self._pending = self._pending, {}
            sums, self._pending_sums = self._pending_sums, {}
        for (method, route, status, bucket), count in pending.items():
            counter, histogram = self._series(method, route, status)
            counter.inc(count)
            histogram._buckets[bucket].inc(count)
            reason = _DENIAL_REASONS.get(status)
            if reason is not None:
                self.denials.labels(reason).inc(count)
        for route, total in sums.items():
            self.latency.labels(route)._sum.inc(total)

    def _series(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > _CHILDREN_BOUND:
                self._children.clear()
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(route),
            )
        return children

    def rate_limited(self, scope: str) -> None:
        """Count one request refused by a rate limit (``key`` or ``source``)."""
        self.rate_limit_hits.labels(scope).inc()

    # -- for other capabilities ---------------------------------------------------------

    def rotation(self, outcome: str) -> None:
        """Count one rotation; ``outcome`` is e.g. ``ok``, ``failed``, ``rolled_back``."""
        self.rotations.labels(outcome[:32]).inc()

    def lease(self, event: str) -> None:
        """Count one lease event, e.g. ``issued``, ``renewed``, ``revoked``, ``expired``."""
        self.leases.labels(event[:32]).inc()

    def set_sealed(self, sealed: bool) -> None:
        self.sealed.set(1 if sealed else 0)

    # -- exposition ---------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes (every worker's values in multiprocess
        mode; another worker's last half second may not be in yet)."""
        self.flush()
        return generate_latest(self.registry)
