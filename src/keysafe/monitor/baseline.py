"""Per-actor baselines: what one credential normally does, learned from its own history.

A baseline holds, for one actor (an API key, a token, a person):

- the source addresses it used (at most ``MAX_SOURCES``) and their networks (/24 for
  IPv4, /48 for IPv6);
- an hour-of-week histogram of its requests (168 buckets, UTC);
- its per-minute request counts over its last ``RATE_HISTORY`` active minutes (a
  minute with at least one request: about three working days), and its per-minute
  denied counts over the same minutes, for robust statistics (median and MAD, not
  means: one busy hour must not teach the detector that bursts are normal); the
  thresholds derived from them are refreshed every ``REFRESH_EVERY_MINUTES`` active
  minutes (sorting the history on every minute would cost more than the scoring);
- the secret paths it read (at most ``MAX_PATHS``).

Warm-up: no detector fires for an actor until its baseline spans ``WARMUP_SECONDS``
(three days) and holds ``WARMUP_EVENTS`` requests over ``WARMUP_MINUTES`` active
minutes. Before that everything it does is learned silently.

Stored as one small JSON document per actor; field names are persisted: only ever add.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

WARMUP_SECONDS = 3 * 86_400
WARMUP_EVENTS = 100
WARMUP_MINUTES = 30
RATE_HISTORY = 1440
QUANTILE_MIN_SAMPLES = 200
REFRESH_EVERY_MINUTES = 30
MAX_SOURCES = 64
MAX_NETWORKS = 32
MAX_PATHS = 2000
HOURS_PER_WEEK = 168

_MINUTE_US = 60_000_000
_HOUR_US = 3_600_000_000
# 1970-01-01 was a Thursday; bucket 0 is Monday 00:00 UTC.
_EPOCH_HOUR_OF_WEEK = 3 * 24
# MAD * 1.4826 estimates the standard deviation of normally distributed data.
_MAD_TO_SIGMA = 1.4826


# -- robust statistics ----------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def mad(values: Sequence[float]) -> float:
    """The median absolute deviation from the median (unscaled; 0.0 for none)."""
    centre = median(values)
    return median([abs(v - centre) for v in values])


def robust_scale(values: Sequence[float]) -> float:
    """A spread that is never zero: the MAD as a standard deviation, but at least the
    Poisson noise of the median count and at least 1 (a key that always makes exactly
    three requests a minute has MAD 0, and four must not be "infinitely" unusual)."""
    centre = median(values)
    return max(_MAD_TO_SIGMA * mad(values), math.sqrt(centre), 1.0)


def robust_z(value: float, values: Sequence[float]) -> float:
    """How many robust standard deviations ``value`` lies above the median."""
    return (value - median(values)) / robust_scale(values)


def busy_quantile(values: Sequence[float], q: float = 0.99) -> float:
    """The ``q`` quantile (nearest rank) once there are ``QUANTILE_MIN_SAMPLES`` values,
    else 0: with fewer, one unusual minute would be the quantile itself."""
    if len(values) < QUANTILE_MIN_SAMPLES:
        return 0.0
    ordered = sorted(values)
    return float(ordered[int(q * (len(ordered) - 1))])


def spike_threshold(
    values: Sequence[float], *, z: float = 10.0, factor: float = 4.0, floor: float = 30.0
) -> float:
    """The count above which one minute is a spike for this history: ``z`` robust
    deviations above the median, and ``factor`` times the median, and ``floor`` more than
    the median (a noise floor: 2 -> 9 requests a minute is not worth waking anyone), and
    1.5 times its busiest normal minutes (the 99th percentile: a daily batch is usual)."""
    centre = median(values)
    return max(
        centre + z * robust_scale(values),
        factor * centre,
        centre + floor,
        1.5 * busy_quantile(values),
    )


# -- time and address helpers ---------------------------------------------------------


def minute_of(ts_us: int) -> int:
    return ts_us // _MINUTE_US


def hour_of(ts_us: int) -> int:
    return ts_us // _HOUR_US


def hour_of_week(ts_us: int) -> int:
    """0 = Monday 00:00-00:59 UTC ... 167 = Sunday 23:00-23:59 UTC."""
    return (ts_us // _HOUR_US + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK


def network_of(source: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address; a non-address (``unknown``,
    a socket path) is its own network."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return source
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


# -- the baseline ---------------------------------------------------------------------


@dataclass(slots=True)
class Baseline:
    """One actor's learned behaviour plus the counters of its current minute."""

    first_at: int
    events: int = 0
    hours: list[int] = field(default_factory=lambda: [0] * HOURS_PER_WEEK)
    sources: dict[str, str] = field(default_factory=dict)  # address -> network
    networks: list[str] = field(default_factory=list)
    paths: set[str] = field(default_factory=set)
    rate: list[int] = field(default_factory=list)  # requests per past active minute
    denied: list[int] = field(default_factory=list)  # denials per past active minute
    minute: int = 0
    minute_ok: int = 0
    minute_denied: int = 0
    # Derived, not persisted: thresholds for the current minute, and which minute/hour
    # already produced a finding (one per minute or hour; the alert store merges more).
    rate_limit: float = math.inf
    denied_limit: float = math.inf
    spiked_minute: int = -1
    burst_minute: int = -1
    off_hours_hour: int = -1
    rolls_since_refresh: int = 0

    def warmed(self, ts_us: int) -> bool:
        """True once the baseline has enough history to judge (see the module doc)."""
        return (
            self.events >= WARMUP_EVENTS
            and len(self.rate) >= WARMUP_MINUTES
            and ts_us - self.first_at >= WARMUP_SECONDS * 1_000_000
        )

    def roll_minute(self, minute: int) -> None:
        """Close the current minute into the history when ``minute`` is a later one, and
        derive the thresholds the new minute is judged by."""
        if minute <= self.minute:
            return
        if self.minute_ok or self.minute_denied:
            self.rate.append(self.minute_ok)
            self.denied.append(self.minute_denied)
            if len(self.rate) > RATE_HISTORY:
                del self.rate[0]
                del self.denied[0]
        self.minute, self.minute_ok, self.minute_denied = minute, 0, 0
        self.rolls_since_refresh += 1
        if self.rolls_since_refresh >= REFRESH_EVERY_MINUTES or self.rate_limit == math.inf:
            self.refresh_limits()

    def refresh_limits(self) -> None:
        self.rolls_since_refresh = 0
        self.rate_limit = spike_threshold(self.rate) if self.rate else math.inf
        # Denials: the same robust rule with a lower floor (10 refusals in a minute is
        # already a lot for a credential that is normally allowed what it asks for).
        self.denied_limit = (
            spike_threshold(self.denied, factor=4.0, floor=10.0) if self.denied else math.inf
        )

    def hour_share(self, ts_us: int) -> float:
        """Share of this actor's past requests made at this hour of the day or the hour
        either side (any weekday): a job that starts at 8:55 instead of 9:05 is normal."""
        total = sum(self.hours)
        if total == 0:
            return 0.0
        hour = hour_of_week(ts_us) % 24
        near = 0
        for day in range(7):
            for delta in (-1, 0, 1):
                near += self.hours[day * 24 + (hour + delta) % 24]
        return near / total

    def learn_source(self, source: str, network: str) -> None:
        if len(self.sources) >= MAX_SOURCES:
            # Forget the address learned first (insertion order), keep its network.
            del self.sources[next(iter(self.sources))]
        self.sources[source] = network
        if network not in self.networks:
            if len(self.networks) >= MAX_NETWORKS:
                del self.networks[0]
            self.networks.append(network)

    def addresses_in(self, network: str) -> int:
        return sum(1 for net in self.sources.values() if net == network)

    # -- persistence ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": 1,
                "first_at": self.first_at,
                "events": self.events,
                "hours": self.hours,
                "sources": self.sources,
                "networks": self.networks,
                "paths": sorted(self.paths),
                "rate": self.rate,
                "denied": self.denied,
                "minute": self.minute,
                "minute_ok": self.minute_ok,
                "minute_denied": self.minute_denied,
            }
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> Baseline:
        doc: dict[str, Any] = orjson.loads(blob)
        baseline = cls(
            first_at=int(doc["first_at"]),
            events=int(doc["events"]),
            hours=[int(h) for h in doc["hours"]],
            sources={str(k): str(v) for k, v in doc["sources"].items()},
            networks=[str(n) for n in doc["networks"]],
            paths={str(p) for p in doc["paths"]},
            rate=[int(r) for r in doc["rate"]],
            denied=[int(d) for d in doc["denied"]],
            minute=int(doc["minute"]),
            minute_ok=int(doc["minute_ok"]),
            minute_denied=int(doc["minute_denied"]),
        )
        baseline.refresh_limits()
        return baseline
