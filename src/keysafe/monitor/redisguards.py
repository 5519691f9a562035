"""The failed-credential throttle's counts in Redis (``keysafe.access.throttle``).

Per source address, one sorted set of failure times (a moving window, exact: at most
``limit`` entries, since reaching the limit clears it) and one cooldown key with a
time to live. One Lua script counts a failure and starts the cooldown atomically, so
that every process and node of a cluster shares one count per address. Redis errors
reach the caller as ``redis.RedisError`` or ``OSError`` (the throttle falls back to
its process's counts at its share of the limit).
"""

from __future__ import annotations

import os
import time
from typing import Final

import redis

# KEYS: failures (zset), cooldown. ARGV: now ms, window ms, limit, cooldown ms, member.
_FAILED: Final = """
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {left, 0} end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
  redis.call('DEL', KEYS[1])
  return {tonumber(ARGV[4]), 1}
end
return {0, 0}
"""
ERRORS: Final = (redis.RedisError, OSError)


class RedisFailures:
    """``SharedFailures`` over Redis (see the module doc)."""

    def __init__(self, url: str, *, timeout: float = 0.25) -> None:
        """Raises ValueError for a URL redis-py does not accept. Does not connect."""
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._script = self._client.register_script(_FAILED)

    def failed(self, source: str, limit: int, window: float, cooldown: float) -> tuple[float, bool]:
        """Count one failure of ``source``: (seconds of cooldown left, started now)."""
        member = f"{time.time_ns()}-{os.urandom(4).hex()}"  # two failures in one ms count twice
        left, started = self._script(
            keys=[f"keysafe:af:{source}", f"keysafe:ab:{source}"],
            args=[int(time.time() * 1000), int(window * 1000), limit, int(cooldown * 1000), member],
        )
        return max(0.0, int(left) / 1000), bool(int(started))

    def blocked(self, source: str) -> float:
        """Seconds ``source`` still cools down (0 when it does not)."""
        left = int(self._client.pttl(f"keysafe:ab:{source}"))
        return left / 1000 if left > 0 else 0.0

    def close(self) -> None:
        self._client.close()
