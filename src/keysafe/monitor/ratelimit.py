"""Rate limits per API key (the key's own ``rate``) and per source address.

A **fixed window** strategy: one counter per (limit, subject, window), spent from quota
leases (``redislimits.QuotaLeases``): a process reserves a chunk of a window's tokens
from the shared counter and spends them locally, so a check is usually one dictionary
lookup, with Redis or the node's shared table touched once per chunk. The moving window
is exact but keeps one timestamp per allowed request (a 600/min key holds a 600-entry
list in Redis, rewritten by a Lua script on every hit); the sliding-window counter costs
two counters per check.
The fixed window's known weakness, up to twice the limit across a window boundary, is
the price of the cheapest check on the hottest path. Windows are aligned to the clock
(each whole minute for a per-minute rate). A limit under 200 per window reserves one
token at a time: exact in one process and with Redis, exact to one hit per other worker
for the workers of one node sharing a file (see ``nodelimits``). A larger one reserves
1% of the limit at a time: never more than the limit gets through (plus that one hit per
other worker on a node's file), and at most about (processes x chunk) fewer, tokens
reserved by one process being of no use to another (see ``redislimits``).

Counts: in Redis when ``KEYSAFE_REDIS_URL`` is set, so that several processes and nodes
share one count (``keysafe.monitor.redislimits``: each process reserves a chunk of a
window's tokens with one round trip and spends them locally; a limit under 200 per window
reserves one token at a time and stays exact; 1% of a larger limit at a time); else this
node's (``keysafe.monitor.nodelimits``): a dictionary for a single process, or a table
in a memory-mapped file shared by the workers of ``--workers N``, so that two workers
do not each allow the whole limit.
When Redis fails (refused, timed out, gone), the check falls back to the node's counts
with one warning and tries Redis again (a ``PING`` first) after ``retry_seconds``: never
to no limit. Falling back, a node allows only its share of each limit (the limit divided
by ``share()``, the live members: ``KEYSAFE_CLUSTER_SIZE`` until the node registry
counts them), so the cluster lets through about the limit in a failover window (plus
what Redis had already counted in it), not once per node.

Redis is called synchronously from the event loop, when a process runs out of reserved
tokens: measured here, one round trip costs about 100 us of wall time with redis-py's
blocking client (about 65 us of it CPU) and about 125 us wall / 100 us CPU with its
asyncio client, so the async client would cost more CPU for the same wait. Connect and
read timeouts are short (0.25 s) so that a Redis that hangs stalls a process briefly
before the fallback takes over.

A refusal carries what the answer needs (429, ``Retry-After``, ``RateLimit-*``) and
whether it is the first of its burst: a burst is audited once, then kept quiet until
its window resets.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from limits import RateLimitItem
from limits.limits import (
    RateLimitItemPerDay,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
    RateLimitItemPerSecond,
)
from limits.storage import Storage
from redis import RedisError
from sqlalchemy import Engine, select

from keysafe.errors import InvalidInput, RateLimited
from keysafe.monitor.nodelimits import ProcessStorage
from keysafe.monitor.redislimits import QuotaLeases, RedisLeases
from keysafe.store.engine import read_conn
from keysafe.store.tables import api_keys

log = logging.getLogger("keysafe.monitor")

# Units a rate may name, as keys accept them (``600/min``) and as ``limits`` spells them.
_UNITS: Final[dict[str, type[RateLimitItem]]] = {
    "s": RateLimitItemPerSecond,
    "sec": RateLimitItemPerSecond,
    "second": RateLimitItemPerSecond,
    "min": RateLimitItemPerMinute,
    "minute": RateLimitItemPerMinute,
    "h": RateLimitItemPerHour,
    "hour": RateLimitItemPerHour,
    "d": RateLimitItemPerDay,
    "day": RateLimitItemPerDay,
}
# Subject kinds of a refusal (persisted in audit event details and metric labels).
SCOPE_KEY = "key"
SCOPE_SOURCE = "source"
SCOPE_ANONYMOUS = "anonymous"  # one anonymous route group from one source address
_BOUND = 100_000  # remembered bursts before the memory is cleared (a spray of addresses)


def parse_rate(text: str) -> RateLimitItem:
    """``600/min``, ``10/s``, ``5000/hour``, ``1000/minute``, ``100/day`` as a limit.

    Raises InvalidInput for anything else (a count of at least 1 and a known unit).
    """
    count, _, unit = text.strip().partition("/")
    count = count.strip()
    item = _UNITS.get(unit.strip().lower())
    if item is None or not count.isdigit() or int(count) < 1 or len(count) > 9:
        raise InvalidInput(f"{text!r} is not a rate such as 600/min, 10/s or 5000/hour")
    return item(int(count))


@dataclass(frozen=True, slots=True)
class Refusal:
    """One request refused by a limit."""

    scope: str  # SCOPE_KEY or SCOPE_SOURCE
    subject: str  # the key id or the source address
    limit: int  # requests allowed per window
    window_seconds: int
    reset_after: int  # whole seconds until the window resets (at least 1)
    first_in_burst: bool  # audit this one; the rest of the burst stays quiet

    def error(self) -> RateLimited:
        """The 429 problem: ``retry_after`` plus the IETF ``RateLimit-*`` fields."""
        what = "this API key" if self.scope == SCOPE_KEY else "this address"
        return RateLimited(
            f"rate limit of {self.limit} requests per {self.window_seconds} s exceeded "
            f"for {what}; retry after {self.reset_after} s",
            retry_after=self.reset_after,
            limit=self.limit,
            remaining=0,
            reset=self.reset_after,
        )


class KeyRateSource(Protocol):
    def get(self, key_id: str) -> RateLimitItem | None:
        """The key's limit, or None when it has none."""
        ...

    def refresh(self) -> None:
        """Reload the limits (called by the poll loop)."""
        ...


class KeyRates:
    """The ``rate`` of every API key, cached in memory for the hot path.

    Refreshed from the database by the poll loop (``refresh``); a key this process has
    not seen yet is loaded once on first use (revoked keys never get this far).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._rates: dict[str, RateLimitItem | None] = {}
        self._warned: set[str] = set()

    def get(self, key_id: str) -> RateLimitItem | None:
        """The key's limit, or None when it has none."""
        try:
            return self._rates[key_id]
        except KeyError:
            pass
        with read_conn(self._engine) as conn:
            text = conn.execute(
                select(api_keys.c.rate_limit).where(api_keys.c.id == key_id)
            ).scalar()
        item = self._parse(key_id, text)
        if len(self._rates) > _BOUND:
            self._rates.clear()
        self._rates[key_id] = item
        return item

    def refresh(self) -> None:
        """Reload every live key's rate (a roll copies it; a new key appears here)."""
        with read_conn(self._engine) as conn:
            rows = conn.execute(
                select(api_keys.c.id, api_keys.c.rate_limit).where(api_keys.c.revoked_at.is_(None))
            ).all()
        self._rates = {row.id: self._parse(row.id, row.rate_limit) for row in rows}

    def _parse(self, key_id: str, text: str | None) -> RateLimitItem | None:
        if not text:
            return None
        try:
            return parse_rate(text)
        except InvalidInput:
            # Stored by an older release with a unit this one does not know: no silent
            # unlimited key without a word in the log.
            if key_id not in self._warned:
                self._warned.add(key_id)
                log.warning("key %s has an unreadable rate %r; not limited", key_id, text)
            return None


class RateLimits:
    """Per-key and per-source limits over Redis or in-process storage (see module doc)."""

    def __init__(
        self,
        *,
        key_rates: KeyRateSource,
        per_source: str | None = None,
        anonymous: str | None = None,
        redis_url: str | None = None,
        local: Storage | None = None,
        retry_seconds: float = 5.0,
        redis_timeout: float = 0.25,
        share: Callable[[], int] = lambda: 1,
        now: Callable[[], float] = time.time,
    ) -> None:
        """Raises InvalidInput for a malformed ``per_source`` rate. ``share()`` is the
        number of live members: while Redis is down this node allows limit / share."""
        self.key_rates = key_rates
        self.per_source = parse_rate(per_source) if per_source else None
        self.anonymous = parse_rate(anonymous) if anonymous else None
        self._now = now
        # In process, or shared by the workers of this node (see nodelimits).
        # In process, or shared by the workers of this node (see nodelimits), spent from
        # leases like Redis's: a large limit touches the shared table once per chunk.
        storage = local if local is not None else ProcessStorage()

        def reserve(key: str, chunk: int, seconds: int, ttl: int) -> int:
            return storage.incr(key, seconds, amount=chunk)

        self._local = QuotaLeases(reserve, now=now)
        self._redis: RedisLeases | None = None
        self.redis_url = redis_url
        if redis_url:
            try:
                self._redis = RedisLeases(redis_url, timeout=redis_timeout, now=now)
            except ValueError as exc:  # not a redis://, rediss:// or unix:// URL
                raise InvalidInput(f"KEYSAFE_REDIS_URL is not usable: {exc}") from exc
        self._retry_seconds = retry_seconds
        self._share = share
        self._redis_down_until = 0.0
        self._outage = False
        self._quiet_until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    @property
    def using_redis(self) -> bool:
        """True while checks go to Redis (False: in process, configured or fallen back)."""
        return self._redis is not None and self._now() >= self._redis_down_until

    def check_source(self, source: str) -> Refusal | None:
        """Count one request from ``source``; a Refusal when it is over the limit."""
        if self.per_source is None:
            return None
        return self._hit(self.per_source, SCOPE_SOURCE, source)

    def check_anonymous(self, route: str, source: str) -> Refusal | None:
        """Count one request to the anonymous route group ``route`` from ``source``
        (each group has its own count); a Refusal when it is over the limit."""
        if self.anonymous is None:
            return None
        return self._hit(self.anonymous, SCOPE_ANONYMOUS, f"{route}@{source}")

    def check_key(self, key_id: str) -> Refusal | None:
        """Count one request made with API key ``key_id`` against the key's own rate."""
        item = self.key_rates.get(key_id)
        if item is None:
            return None
        return self._hit(item, SCOPE_KEY, key_id)

    def _hit(self, item: RateLimitItem, scope: str, subject: str) -> Refusal | None:
        now = self._now()
        if self._redis is not None and now >= self._redis_down_until:
            try:
                if self._outage:  # back from an outage: ask before trusting old leases
                    self._redis.ping()
                window_end = self._redis.hit(scope, subject, item.amount, item.get_expiry(), now)
            except (RedisError, OSError) as exc:  # Redis went away: count here instead
                self._redis_failed(exc)
            else:
                if self._outage:
                    self._outage = False
                    log.warning(
                        "rate-limit store %s answers again", _redacted(self.redis_url or "")
                    )
                if window_end is None:
                    return None
                return self._refusal(item, scope, subject, now, window_end)
        return self._local_hit(item, scope, subject, now)

    def _local_hit(
        self, item: RateLimitItem, scope: str, subject: str, now: float
    ) -> Refusal | None:
        amount = item.amount
        if self._redis is not None:
            # Redis configured but down: every node counts alone, so each allows only
            # its share and the cluster's failover window stays near the limit.
            amount = max(1, amount // max(1, self._share()))
        window_end = self._local.hit(scope, subject, amount, item.get_expiry(), now)
        if window_end is None:
            return None
        return self._refusal(item, scope, subject, now, window_end)

    def _refusal(
        self, item: RateLimitItem, scope: str, subject: str, now: float, reset_at: float
    ) -> Refusal:
        reset_after = max(1, math.ceil(reset_at - now))
        return Refusal(
            scope=scope,
            subject=subject,
            limit=item.amount,
            window_seconds=item.get_expiry(),
            reset_after=reset_after,
            first_in_burst=self._burst_starts(scope, subject, now, now + reset_after),
        )

    def _redis_failed(self, exc: Exception) -> None:
        with self._lock:
            first, self._outage = not self._outage, True
            self._redis_down_until = self._now() + self._retry_seconds
        if first:
            log.warning(
                "rate-limit store %s unreachable (%s); limiting in this process until it "
                "answers again (retried every %.0f s)",
                _redacted(self.redis_url or ""),
                type(exc).__name__,
                self._retry_seconds,
            )

    def _burst_starts(self, scope: str, subject: str, now: float, until: float) -> bool:
        key = (scope, subject)
        with self._lock:
            if self._quiet_until.get(key, 0.0) > now:
                return False
            if len(self._quiet_until) > _BOUND:
                self._quiet_until.clear()
            self._quiet_until[key] = until
        return True


def _redacted(url: str) -> str:
    """The Redis URL without a password (``redis://:secret@host`` -> ``redis://***@host``)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"
