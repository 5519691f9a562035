"""Time, injectable so that expiry and TTL logic can be tested without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Unix time in microseconds."""
        ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000
