"""Value types of incidents: what leaked (items), what was done (steps), the incident.

Kinds, phases, outcomes and statuses are persisted in the incident tables and shown in
reports: only ever add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keysafe.timefmt import iso_us

# What can leak.
KIND_KEY = "key"  # an API key, by id
KIND_TOKEN = "token"  # noqa: S105 (a kind name, not a password): a vault token, by id
KIND_SECRET = "secret"  # noqa: S105 (a kind name, not a password): a secret, by path
KIND_LEASE = "lease"  # a dynamic-credential lease, by id
KINDS = (KIND_KEY, KIND_TOKEN, KIND_SECRET, KIND_LEASE)

# The playbook, in order.
PHASE_OPEN = "open"
PHASE_CONTAIN = "contain"
PHASE_ERADICATE = "eradicate"
PHASE_VERIFY = "verify"
PHASE_RECORD = "record"
PHASE_REPORT = "report"
PHASE_CLOSE = "close"
PHASES = (
    PHASE_OPEN,
    PHASE_CONTAIN,
    PHASE_ERADICATE,
    PHASE_VERIFY,
    PHASE_RECORD,
    PHASE_REPORT,
    PHASE_CLOSE,
)

# How a step ended.
DONE = "done"  # it did what it says
ALREADY = "already"  # nothing to do: already in the wanted state (e.g. already revoked)
MANUAL = "manual"  # a person must do it; the detail says what
FAILED = "failed"  # it was tried and did not work; the detail says why
UNAVAILABLE = "unavailable"  # this keysafe has no capability for it
PLANNED = "planned"  # dry run: what would be done

STATUS_OPEN = "open"
STATUS_CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Item:
    """One leaked thing: never a value, only its id or path and where it was seen."""

    kind: str
    ref: str
    note: str = ""

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "ref": self.ref, "note": self.note}


@dataclass(frozen=True, slots=True)
class Step:
    """One playbook step as it ran (or, in a dry run, as it would run)."""

    ts: int  # unix microseconds
    phase: str
    action: str
    target: str
    actor: str
    outcome: str
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "time": iso_us(self.ts),
            "phase": self.phase,
            "action": self.action,
            "target": self.target,
            "actor": self.actor,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(slots=True)
class Incident:
    id: str
    title: str
    status: str
    source: str
    opened_at: int
    opened_by: str
    closed_at: int | None = None
    closed_by: str | None = None
    items: list[Item] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "source": self.source,
            "opened_at": iso_us(self.opened_at),
            "opened_by": self.opened_by,
            "closed_at": iso_us(self.closed_at),
            "closed_by": self.closed_by,
            "items": [i.as_json() for i in self.items],
            "steps": [s.as_json() for s in self.steps],
        }

    def summary(self) -> dict[str, Any]:
        """The list view: no steps."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "source": self.source,
            "opened_at": iso_us(self.opened_at),
            "opened_by": self.opened_by,
            "closed_at": iso_us(self.closed_at),
            "items": len(self.items),
        }


@dataclass(frozen=True, slots=True)
class Exposure:
    """What an incident is opened for: items, plus raw leaked values held in memory
    only for the verify step (a leaked key must be refused by the real verification).
    ``raw`` maps an item's (kind, ref) to the leaked value; it is never stored."""

    items: tuple[Item, ...]
    raw: dict[tuple[str, str], str] = field(default_factory=dict)
    # Steps taken while resolving the input (e.g. a finding that matched nothing).
    notes: tuple[tuple[str, str, str], ...] = ()  # (target, outcome, detail)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    ts: int
    kind: str  # "step" | "audit"
    what: str
    target: str
    actor: str
    outcome: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "time": iso_us(self.ts),
            "kind": self.kind,
            "what": self.what,
            "target": self.target,
            "actor": self.actor,
            "outcome": self.outcome,
            "detail": self.detail,
        }
