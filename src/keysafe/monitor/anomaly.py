"""Anomaly detection: each audit event is judged against its actor's own baseline.

The detectors (one small function each, all reading the baseline *before* the event is
learned):

============  ========  =====================================================================
kind          severity  fires when (only after the baseline's warm-up, see baseline.py)
============  ========  =====================================================================
new_network   high      the source's /24 (v4) or /48 (v6) network was never used by the actor
new_source    low       a new address inside a known network, unless the actor already used
                        ``POOL_SIZE`` addresses there (a pool: addresses churn, stay silent)
rate_spike    high      this minute's requests exceed ``spike_threshold`` of its history
                        (median + 10 robust deviations, 4x the median, median + 30)
off_hours     medium    at most 0.1% of its past requests fell within an hour of this time
                        of day (any weekday)
denied_burst  high      this minute's denials exceed the same robust rule (floor 10)
new_path      medium    a successful ``secret:read`` of a path it never read
============  ========  =====================================================================

Kinds and evidence field names are persisted (alerts, webhooks): only ever add.
Denied requests count towards ``denied_burst`` only, not towards ``rate_spike``, so one
burst of refusals is one alert. Actors ``anonymous`` (failed authentication: the
throttle handles those per address) and ``system`` (keysafe itself) are not judged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from keysafe.audit.models import OUTCOME_DENIED, OUTCOME_OK, AuditEvent
from keysafe.monitor.baseline import (
    MAX_PATHS,
    Baseline,
    hour_of,
    hour_of_week,
    minute_of,
    network_of,
)
from keysafe.timefmt import iso_us

KIND_NEW_NETWORK = "new_network"
KIND_NEW_SOURCE = "new_source"
KIND_RATE_SPIKE = "rate_spike"
KIND_OFF_HOURS = "off_hours"
KIND_DENIED_BURST = "denied_burst"
KIND_NEW_PATH = "new_path"

SEVERITY = {
    KIND_NEW_NETWORK: "high",
    KIND_NEW_SOURCE: "low",
    KIND_RATE_SPIKE: "high",
    KIND_OFF_HOURS: "medium",
    KIND_DENIED_BURST: "high",
    KIND_NEW_PATH: "medium",
}
KINDS = tuple(SEVERITY)

POOL_SIZE = 8
OFF_HOURS_SHARE = 0.001
UNJUDGED_ACTORS = frozenset({"anonymous", "system", ""})


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomalous observation; the alert store turns findings into alerts."""

    kind: str
    actor: str
    at: int  # the event's time, unix microseconds
    dedup_key: str  # findings with the same (actor, kind, key) are one alert
    evidence: dict[str, Any]

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]


Detector = Callable[[Baseline, AuditEvent], "Finding | None"]


def detect_new_network(b: Baseline, e: AuditEvent) -> Finding | None:
    if e.source in b.sources:
        return None
    network = network_of(e.source)
    if network in b.networks:
        return None
    evidence = {"source": e.source, "network": network, "known_networks": len(b.networks)}
    return Finding(KIND_NEW_NETWORK, e.actor, e.ts, network, evidence)


def detect_new_source(b: Baseline, e: AuditEvent) -> Finding | None:
    if e.source in b.sources:
        return None
    network = network_of(e.source)
    if network not in b.networks:
        return None  # new_network covers it
    known = b.addresses_in(network)
    if known >= POOL_SIZE:
        return None
    evidence = {"source": e.source, "network": network, "known_sources_in_network": known}
    return Finding(KIND_NEW_SOURCE, e.actor, e.ts, e.source, evidence)


def detect_rate_spike(b: Baseline, e: AuditEvent) -> Finding | None:
    if e.outcome == OUTCOME_DENIED or b.minute_ok <= b.rate_limit:
        return None
    if b.spiked_minute == b.minute:
        return None
    b.spiked_minute = b.minute
    return Finding(KIND_RATE_SPIKE, e.actor, e.ts, "", _rate_evidence(b, b.minute_ok, b.rate))


def detect_denied_burst(b: Baseline, e: AuditEvent) -> Finding | None:
    if e.outcome != OUTCOME_DENIED or b.minute_denied <= b.denied_limit:
        return None
    if b.burst_minute == b.minute:
        return None
    b.burst_minute = b.minute
    evidence = _rate_evidence(b, b.minute_denied, b.denied)
    return Finding(KIND_DENIED_BURST, e.actor, e.ts, "", evidence)


def detect_off_hours(b: Baseline, e: AuditEvent) -> Finding | None:
    hour = hour_of(e.ts)
    if b.off_hours_hour == hour:
        return None
    b.off_hours_hour = hour  # judged once per hour: the share moves slowly
    share = b.hour_share(e.ts)
    if share > OFF_HOURS_SHARE:
        return None
    how = hour_of_week(e.ts)
    evidence = {
        "weekday": how // 24,
        "hour_utc": how % 24,
        "share_of_history_near_this_hour": round(share, 6),
        "requests_learned": sum(b.hours),
    }
    return Finding(KIND_OFF_HOURS, e.actor, e.ts, "", evidence)


def detect_new_path(b: Baseline, e: AuditEvent) -> Finding | None:
    if e.operation != "secret:read" or e.outcome != OUTCOME_OK or e.path in b.paths:
        return None
    if len(b.paths) >= MAX_PATHS:
        return None  # reads too broadly for "first read" to mean anything
    evidence = {"path": e.path, "operation": e.operation, "known_paths": len(b.paths)}
    return Finding(KIND_NEW_PATH, e.actor, e.ts, e.path, evidence)


DETECTORS: tuple[Detector, ...] = (
    detect_new_network,
    detect_new_source,
    detect_rate_spike,
    detect_denied_burst,
    detect_off_hours,
    detect_new_path,
)


def _rate_evidence(b: Baseline, count: int, history: list[int]) -> dict[str, Any]:
    from keysafe.monitor.baseline import mad, median, robust_z

    return {
        "minute": iso_us(b.minute * 60_000_000),
        "count": count,
        "median": median(history),
        "mad": mad(history),
        "robust_z": round(robust_z(count, history), 2),
        "threshold": round(b.rate_limit if history is b.rate else b.denied_limit, 2),
        "minutes_learned": len(history),
    }


class AnomalyDetector:
    """Scores events against per-actor baselines and learns from them.

    Baselines are loaded (``load``) and read back (``dirty``) by the caller, which
    persists them; the detector itself does no I/O.
    """

    def __init__(self, detectors: Iterable[Detector] = DETECTORS) -> None:
        self.detectors = tuple(detectors)
        self.baselines: dict[str, Baseline] = {}
        self.dirty: set[str] = set()

    def load(self, actor: str, blob: bytes) -> None:
        self.baselines[actor] = Baseline.from_bytes(blob)

    def observe(self, e: AuditEvent) -> list[Finding]:
        """Judge ``e`` against its actor's baseline, then learn it. Returns the findings
        (none during warm-up, none for unjudged actors)."""
        actor = e.actor
        if actor in UNJUDGED_ACTORS or actor.startswith("system"):
            return []
        b = self.baselines.get(actor)
        if b is None:
            b = self.baselines[actor] = Baseline(first_at=e.ts, minute=minute_of(e.ts))
        self.dirty.add(actor)
        minute = minute_of(e.ts)
        if minute > b.minute:
            b.roll_minute(minute)
        denied = e.outcome == OUTCOME_DENIED
        if denied:
            b.minute_denied += 1
        else:
            b.minute_ok += 1
        found: list[Finding] = []
        if b.warmed(e.ts):
            for detector in self.detectors:
                finding = detector(b, e)
                if finding is not None:
                    found.append(finding)
        self._learn(b, e, denied)
        return found

    @staticmethod
    def _learn(b: Baseline, e: AuditEvent, denied: bool) -> None:
        b.events += 1
        b.hours[hour_of_week(e.ts)] += 1
        if e.source not in b.sources:
            b.learn_source(e.source, network_of(e.source))
        if (
            not denied
            and e.operation == "secret:read"
            and e.outcome == OUTCOME_OK
            and len(b.paths) < MAX_PATHS
        ):
            b.paths.add(e.path)
