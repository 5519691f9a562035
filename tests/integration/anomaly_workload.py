"""A generated but realistic recorded workload for the anomaly detector (deterministic).

50 API keys over 14 simulated days, three kinds of user:

- office (30 keys): weekdays from a start hour between 07:00 and 09:00 UTC (each day
  +-30 minutes) for 8 to 10 hours; a third of them also work some Saturdays;
- always-on (12 keys): every hour of every day, busier by day than by night;
- nightly batch (8 keys): a run of about 45 minutes starting near 02:00 every day.

Each key has its own rate (Poisson per active minute, times a day-to-day factor), one
to four source addresses in one or two networks, two to eight secret paths read with
skewed frequencies, and the odd denied request (a mistyped path).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from keysafe.audit.models import AuditEvent

MIN = 60_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
# Monday 2026-01-05 00:00 UTC.
START = 1_767_571_200 * 1_000_000
DAYS = 14


@dataclass(frozen=True)
class KeyProfile:
    actor: str
    kind: str  # office | always | nightly
    rate: float  # mean requests per active minute
    sources: tuple[str, ...]
    paths: tuple[str, ...]
    weights: tuple[float, ...]
    start_hour: float = 8.0
    hours: float = 9.0
    saturdays: bool = False


def profiles(seed: int = 7, keys: int = 50) -> list[KeyProfile]:
    rng = random.Random(seed)
    out = []
    for i in range(keys):
        kind = "office" if i < keys * 0.6 else ("always" if i < keys * 0.84 else "nightly")
        net = f"10.{i // 8}.{i % 8 * 16}"
        sources = tuple(f"{net}.{rng.randint(2, 250)}" for _ in range(rng.randint(1, 3)))
        if kind == "always":
            sources += (f"172.16.{i}.{rng.randint(2, 250)}",)
        count = rng.randint(2, 8)
        paths = tuple(f"team{i % 7}/prod/SECRET_{i}_{j}" for j in range(count))
        weights = tuple(1.0 / (j + 1) for j in range(count))
        rate = {
            "office": math.exp(rng.uniform(math.log(0.2), math.log(4.0))),
            "always": math.exp(rng.uniform(math.log(0.05), math.log(0.6))),
            "nightly": rng.uniform(1.5, 6.0),
        }[kind]
        out.append(
            KeyProfile(
                actor=f"key_{i:04d}",
                kind=kind,
                rate=rate,
                sources=sources,
                paths=paths,
                weights=weights,
                start_hour=rng.uniform(7.0, 9.0),
                hours=rng.uniform(8.0, 10.0),
                saturdays=rng.random() < 0.33,
            )
        )
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: fine for the small means used here.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _active_minutes(p: KeyProfile, day: int, rng: random.Random) -> Iterator[tuple[int, float]]:
    """(minute of the day, rate factor) for each minute the key works on ``day``."""
    weekday = day % 7
    if p.kind == "office":
        if weekday == 6 or (weekday == 5 and not (p.saturdays and rng.random() < 0.5)):
            return
        start = int((p.start_hour + rng.uniform(-0.5, 0.5)) * 60)
        end = start + int((p.hours + rng.uniform(-0.5, 0.5)) * 60)
        weekend = 0.3 if weekday == 5 else 1.0
        for minute in range(start, min(end, 24 * 60)):
            yield minute, weekend
    elif p.kind == "always":
        for minute in range(24 * 60):
            # Busier by day: a smooth curve between 0.4 (04:00) and 1.6 (16:00).
            yield minute, 1.0 - 0.6 * math.cos((minute / 60 - 4) / 24 * 2 * math.pi)
    else:
        start = 120 + rng.randint(-10, 10)
        for minute in range(start, start + 45 + rng.randint(-5, 5)):
            yield minute, 1.0


def generate(
    seed: int = 7, keys: int = 50, days: int = DAYS, start: int = START
) -> list[AuditEvent]:
    """Every event of the workload, in time order."""
    rng = random.Random(seed)
    events: list[AuditEvent] = []
    for p in profiles(seed, keys):
        for day in range(days):
            daily = math.exp(rng.gauss(0.0, 0.2))
            for minute, factor in _active_minutes(p, day, rng):
                n = _poisson(rng, p.rate * daily * factor)
                base = start + day * DAY + minute * MIN
                for _ in range(n):
                    ts = base + rng.randrange(MIN)
                    path = rng.choices(p.paths, p.weights)[0]
                    outcome = "ok"
                    if rng.random() < 0.002:  # a mistyped path, refused
                        path, outcome = path + "_TYPO", "denied"
                    events.append(
                        AuditEvent(
                            ts, "r", p.actor, rng.choice(p.sources), "secret:read", path, outcome
                        )
                    )
    events.sort(key=lambda e: e.ts)
    return events


def misuse(profile: KeyProfile, kind: str, at: int) -> list[AuditEvent]:
    """Injected misuse of one key at ``at`` (a business hour unless ``night_use``)."""
    usual = profile.sources[0]
    path = profile.paths[0]

    def ev(ts: int, source: str = usual, p: str = path, outcome: str = "ok") -> AuditEvent:
        return AuditEvent(ts, "misuse", profile.actor, source, "secret:read", p, outcome)

    if kind == "new_network":
        return [ev(at + i * 5_000_000, source="203.0.113.66") for i in range(3)]
    if kind == "rate_spike":
        return [ev(at + i * 200_000) for i in range(250)]  # 250 reads in 50 s
    if kind == "off_hours":
        return [ev(at + i * 30_000_000) for i in range(4)]
    if kind == "denied_burst":
        return [
            ev(at + i * 1_000_000, p=f"payments/prod/ROOT_{i}", outcome="denied") for i in range(40)
        ]
    if kind == "new_path":
        return [ev(at, p="payments/prod/STRIPE_ROOT_KEY")]
    raise ValueError(kind)
