"""Brute-force throttling of failed credential checks, per source address.

A source whose ``limit``-th failed check falls within ``window`` seconds is refused
(429 with Retry-After) for ``cooldown`` seconds, whatever it presents: guessing keys or
tokens from one address stops being worth it. The failure answered before the cooldown
is the ``limit``-th, so at most ``limit`` failures a window are answered 401.

Where the counts live: with a ``shared`` store in Redis (``keysafe.monitor.redisguards``)
every process and node counts into one moving window per address and sets one cooldown,
so a guesser gets ``limit`` answers from the whole cluster, not ``limit`` from each
process; without Redis, the workers of one node share a fixed-window count in the
node's table (``keysafe.monitor.nodeguards``); a single process without Redis counts
alone. A process remembers a cooldown it learnt and asks the store whether an address
it has not seen fail is cooling down at most once a ``recheck`` seconds (the hot path
stays off Redis); a failure always asks, and a failure from an address that is already
cooling down elsewhere is refused 429 instead of 401. While the store fails (one
warning, retried after ``retry_seconds``), the counts are this process's, at the limit
divided by ``share()`` (the live members of the cluster), so that N nodes counting
alone still allow about the limit. Failures are audited by the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from keysafe.errors import RateLimited

log = logging.getLogger("keysafe.access")
_BOUND = 100_000  # addresses remembered before the memory is cleared (a spray of them)


class SharedFailures(Protocol):
    """A failure store several processes share (may raise on its own failures)."""

    def failed(self, source: str, limit: int, window: float, cooldown: float) -> tuple[float, bool]:
        """Count one failure: (seconds ``source`` is cooling down, 0 when not; True when
        this failure started the cooldown). Counts nothing while it cools down."""
        ...

    def blocked(self, source: str) -> float:
        """Seconds ``source`` is still cooling down (0 when it is not)."""
        ...


class FailureThrottle:
    def __init__(
        self,
        limit: int = 20,
        window: float = 60.0,
        cooldown: float = 60.0,
        *,
        shared: SharedFailures | None = None,
        share: Callable[[], int] = lambda: 1,
        recheck: float = 1.0,
        retry_seconds: float = 5.0,
        shared_errors: tuple[type[Exception], ...] = (OSError,),
    ) -> None:
        self.limit = limit
        self.window = window
        self.cooldown = cooldown
        self._shared = shared
        self._share = share
        self._recheck = recheck
        self._retry_seconds = retry_seconds
        self._errors = shared_errors
        self._down_until = 0.0
        self._outage = False
        self._failures: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}
        self._asked: dict[str, float] = {}  # address -> when the store may be asked again
        self._lock = threading.Lock()
        self._now = time.monotonic

    def check(self, source: str) -> None:
        """Raise RateLimited while ``source`` is cooling down."""
        now = self._now()
        until = self._blocked.get(source)
        store = self._store(now)
        if until is None and store is not None and self._asked.get(source, 0.0) <= now:
            with self._lock:
                if len(self._asked) > _BOUND:
                    self._asked.clear()
                self._asked[source] = now + self._recheck
            try:
                remaining = store.blocked(source)
            except self._errors as exc:
                self._store_failed(exc)
            else:
                self._store_back()
                if remaining > 0:
                    until = self._block(source, now + remaining)
        if until is None:
            return
        remaining = until - now
        if remaining > 0:
            raise _refusal(remaining)
        with self._lock:
            self._blocked.pop(source, None)

    def failed(self, source: str) -> bool:
        """Count one failure; True when this one starts a cooldown (audit it once).

        Raises RateLimited when the shared store says ``source`` is already cooling
        down (another process started it): that attempt is refused, not answered 401."""
        now = self._now()
        store = self._store(now)
        if store is not None:
            try:
                remaining, started = store.failed(source, self.limit, self.window, self.cooldown)
            except self._errors as exc:
                self._store_failed(exc)
            else:
                self._store_back()
                if remaining > 0:
                    self._block(source, now + remaining)
                    if not started:
                        raise _refusal(remaining)
                return started
        return self._count_here(source, now)

    def _count_here(self, source: str, now: float) -> bool:
        # A configured store that is down: this process holds only its share of the limit.
        limit = self.limit if self._shared is None else max(1, self.limit // self._share())
        with self._lock:
            if len(self._failures) > _BOUND:
                self._failures.clear()
            recent = self._failures.setdefault(source, deque())
            recent.append(now)
            while recent and recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) >= limit and source not in self._blocked:
                self._blocked[source] = now + self.cooldown
                recent.clear()
                return True
        return False

    def _block(self, source: str, until: float) -> float:
        with self._lock:
            if len(self._blocked) > _BOUND:
                self._blocked = {k: v for k, v in self._blocked.items() if v > self._now()}
            self._blocked[source] = max(until, self._blocked.get(source, 0.0))
            return self._blocked[source]

    def _store(self, now: float) -> SharedFailures | None:
        """The shared store, unless there is none or it failed a moment ago."""
        return self._shared if now >= self._down_until else None

    def _store_failed(self, exc: Exception) -> None:
        with self._lock:
            first, self._outage = not self._outage, True
            self._down_until = self._now() + self._retry_seconds
        if first:
            log.warning(
                "failure-throttle store failed (%s); counting failures in this process at "
                "1/%d of the limit until it answers again",
                type(exc).__name__,
                self._share(),
            )

    def _store_back(self) -> None:
        if self._outage:
            self._outage = False
            log.warning("failure-throttle store answers again")


def _refusal(remaining: float) -> RateLimited:
    return RateLimited(
        "too many failed credential checks from this address; try again later",
        retry_after=int(remaining) + 1,
    )
