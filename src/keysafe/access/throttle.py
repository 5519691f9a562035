"""Brute-force throttling of failed credential checks, per source address.

A source that fails more than ``limit`` checks within ``window`` seconds is refused
(429 with Retry-After) for ``cooldown`` seconds, whatever it presents: guessing keys
or tokens from one address stops being worth it. The counts live in each server
process (a cluster-wide store comes with the rate-limit work); failures are audited by
the caller.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from keysafe.errors import RateLimited


class FailureThrottle:
    def __init__(
        self,
        limit: int = 20,
        window: float = 60.0,
        cooldown: float = 60.0,
    ) -> None:
        self.limit = limit
        self.window = window
        self.cooldown = cooldown
        self._failures: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}
        self._lock = threading.Lock()
        self._now = time.monotonic

    def check(self, source: str) -> None:
        """Raise RateLimited while ``source`` is cooling down."""
        until = self._blocked.get(source)
        if until is None:
            return
        remaining = until - self._now()
        if remaining > 0:
            raise RateLimited(
                "too many failed credential checks from this address; try again later",
                retry_after=int(remaining) + 1,
            )
        with self._lock:
            self._blocked.pop(source, None)

    def failed(self, source: str) -> bool:
        """Count one failure; True when this one starts a cooldown (audit it once)."""
        now = self._now()
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a spray of addresses
                self._failures.clear()
            recent = self._failures.setdefault(source, deque())
            recent.append(now)
            while recent and recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) > self.limit and source not in self._blocked:
                self._blocked[source] = now + self.cooldown
                recent.clear()
                return True
        return False
