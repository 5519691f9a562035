"""When to ask a failing unseal source again, and why the vault is still sealed."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from keysafe.errors import UnsealSourceFailed

log = logging.getLogger("keysafe.system")

FIRST_RETRY_SECONDS = 1.0


class SourceRetry:
    """Bounded exponential backoff (1 s doubling up to ``max_seconds``) plus the reason
    the last attempt failed. A permanent failure (a wrong PIN) is not retried: the
    operator fixes the setting and restarts."""

    def __init__(self, max_seconds: float, now: Callable[[], float] = time.monotonic) -> None:
        self._max = max_seconds
        self._now = now
        self._wait = 0.0
        self._next = 0.0
        self.reason = ""

    def due(self) -> bool:
        return self._now() >= self._next

    def failed(self, exc: UnsealSourceFailed) -> None:
        if exc.permanent:
            self._next = math.inf
            self.reason = f"{exc.detail}; fix the setting and restart"
        else:
            self._wait = min(self._max, max(FIRST_RETRY_SECONDS, self._wait * 2))
            self._next = self._now() + self._wait
            self.reason = f"{exc.detail}; retrying in {self._wait:g} s"
        log.warning("auto-unseal failed, staying sealed: %s", self.reason)

    def blocked(self, reason: str) -> None:
        """Sealed for a reason no retry fixes (an operator's seal, a missing source)."""
        if reason != self.reason:
            log.warning("staying sealed: %s", reason)
        self.reason = reason

    def succeeded(self) -> None:
        self._wait = 0.0
        self._next = 0.0
        self.reason = ""
