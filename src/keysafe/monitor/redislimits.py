"""Fixed-window limits shared through Redis, spent from quota leases held in process.

One counter per (limit, subject, window) lives in Redis under
``keysafe:rl:<scope>:<subject>:<amount>/<seconds>:<window start>``. Windows are aligned to
the clock, like the node's (a per-minute window is each whole minute), so every process
and node names the same key without asking; the key expires a little after its window
ends (``_MARGIN``: a node whose clock lags by a few seconds still finds it).

A process does not ask Redis for every request. It reserves a **chunk** of the window's
tokens with one round trip (``INCRBY`` and ``EXPIRE`` in one Lua script, so the counter
never outlives its window) and spends them locally, one per request, without a Redis call.
When the counter after the increment is ``c``, the process got
``max(0, min(chunk, limit - (c - chunk)))`` tokens: the part of its chunk that fitted
under the limit. Once the counter has reached the limit, the process remembers the window
as exhausted: its later refusals in that window cost no Redis call either.

``chunk = max(1, limit // 100)``: a limit under 200 per window reserves one token per
request (one round trip each, as before, and exact); a larger one reserves 1% of the
limit at a time, so a process pays one round trip per 1% of the limit it serves (a
10,000/min key: one per 100 requests; the benchmark's 999,999,999/min: one a minute).

Tolerance, one-sided: **never more than the limit** gets through a window, whatever the
number of processes (``INCRBY`` is atomic and every token spent was counted there first).
Fewer may: tokens one process reserved and did not spend are not usable by another, so
with P processes up to ``P x (chunk - 1)`` requests fewer than the limit can pass (at most
P% of a limit of 200 or more; zero for smaller limits). Windows rely on the nodes' clocks
agreeing (NTP): a node whose clock is off counts into its own idea of the window.

Errors from Redis (refused, timed out, gone) reach the caller as ``redis.RedisError`` or
``OSError``; ``ratelimit.RateLimits`` falls back to the node's counts on them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import redis

_MARGIN: Final = 10  # seconds a window's counter outlives the window
_BOUND: Final = 100_000  # leases kept before expired ones are swept
# KEYS[1] the window's counter, ARGV[1] the chunk, ARGV[2] seconds to live.
_RESERVE: Final = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return count
"""


def chunk_for(limit: int) -> int:
    """Tokens one reservation asks for: 1% of the limit, at least one (module doc)."""
    return max(1, limit // 100)


def granted(limit: int, chunk: int, count: int) -> int:
    """Tokens a reservation of ``chunk`` got when the counter reads ``count`` after it."""
    return max(0, min(chunk, limit - (count - chunk)))


@dataclass(slots=True)
class _Lease:
    """This process's share of one window: tokens reserved and not yet spent."""

    end: float  # the window's end (unix time)
    tokens: int = 0
    exhausted: bool = False  # Redis's counter reached the limit: nothing more to reserve


# reserve(key, chunk, window seconds, seconds to live) -> the counter after adding chunk
Reserve = Callable[[str, int, int, int], int]


class QuotaLeases:
    """Fixed-window hits counted in a shared store, spent from local leases (module doc).

    ``reserve`` adds a chunk to a window's shared counter and returns the counter after
    it: a Redis script here, the node's shared table for the workers of one node
    (``ratelimit``). Safe to call from several threads: the leases are guarded by a
    lock, which is never held across a reservation.
    """

    def __init__(self, reserve: Reserve, *, now: Callable[[], float] = time.time) -> None:
        self._reserve = reserve
        self._now = now
        self._leases: dict[tuple[str, str, int, int], _Lease] = {}
        self._lock = threading.Lock()
        self.reservations = 0  # reservations made by ``hit`` (tests and diagnostics)

    def hit(
        self, scope: str, subject: str, limit: int, seconds: int, now: float | None = None
    ) -> float | None:
        """Count one request against ``limit`` per ``seconds`` for ``subject`` (at
        ``now``, unix time; the clock's when None).

        None when it is allowed; else the end of the window (unix time) that refused it.
        Raises what ``reserve`` raises when a reservation fails (nothing is spent).
        """
        if now is None:
            now = self._now()
        lease_key = (scope, subject, limit, seconds)
        with self._lock:
            lease = self._leases.get(lease_key)
            if lease is not None and lease.end - seconds <= now < lease.end:
                end = lease.end  # the common case: this window's lease, no arithmetic
            else:  # none yet, or another window's
                end = math.floor(now / seconds) * seconds + seconds
                lease = self._lease(lease_key, end, now)
            if lease.tokens > 0:
                lease.tokens -= 1
                return None
            if lease.exhausted:
                return end
        start = math.floor(now / seconds) * seconds  # an int: part of the shared key
        chunk = chunk_for(limit)
        count = self._reserve(
            f"keysafe:rl:{scope}:{subject}:{limit}/{seconds}:{start}",
            chunk,
            seconds,
            math.ceil(end - now) + _MARGIN,
        )
        got = granted(limit, chunk, count)
        with self._lock:
            self.reservations += 1
            lease = self._lease(lease_key, end, now)
            if lease.end != end:  # the window moved on meanwhile: use this answer only
                return None if got > 0 else end
            lease.tokens += got
            lease.exhausted = lease.exhausted or count >= limit
            if lease.tokens > 0:
                lease.tokens -= 1
                return None
            return end

    def _lease(self, lease_key: tuple[str, str, int, int], end: float, now: float) -> _Lease:
        """The lease of the window ending at ``end`` (or a later one); call under the lock.
        A lease of an earlier window is dropped: its tokens are worth nothing now."""
        lease = self._leases.get(lease_key)
        if lease is None or lease.end < end:
            if len(self._leases) >= _BOUND:
                # A spray of subjects: keep live leases only. Dropping live ones too
                # would only strand their tokens (fewer requests, never more).
                self._leases = {k: v for k, v in self._leases.items() if v.end > now}
                if len(self._leases) >= _BOUND:
                    self._leases.clear()
            lease = self._leases[lease_key] = _Lease(end)
        return lease


class RedisLeases(QuotaLeases):
    """Quota leases over a Redis counter (``INCRBY`` and ``EXPIRE`` in one script)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.25,
        now: Callable[[], float] = time.time,
    ) -> None:
        """Raises ValueError for a URL redis-py does not accept (``redis://``,
        ``rediss://``, ``unix://``). Does not connect: the first reservation does.
        Reservations raise redis.RedisError or OSError when Redis fails."""
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        script = self._client.register_script(_RESERVE)

        def reserve(key: str, chunk: int, seconds: int, ttl: int) -> int:
            return int(script(keys=[key], args=[chunk, ttl]))

        super().__init__(reserve, now=now)

    def ping(self) -> None:
        """Raises redis.RedisError or OSError unless Redis answers."""
        self._client.ping()

    def close(self) -> None:
        self._client.close()
