"""Value types of the rotation capability: policies, runs, steps and their documents.

Step and outcome names are persisted (rotation_runs.step/outcome) and shown by
``keysafe rotation status``: only ever add.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from keysafe.errors import InvalidInput
from keysafe.timefmt import iso_us

__all__ = [
    "LABELS",
    "Policy",
    "Run",
    "backoff_seconds",
    "parse_options",
    "pending_context",
]

# Steps of a run, in order; a run is "in flight" until promoted or failed.
STEP_GENERATED = "generated"  # pending value sealed in the run row, target untouched
STEP_APPLIED = "applied"  # the target accepted the pending value
STEP_VERIFIED = "verified"  # the target proved it works with the pending value
STEP_PROMOTED = "promoted"  # written as the secret's new version; old = previous
STEP_RETIRED = "retired"  # the previous value no longer works on the target
STEP_ROLLING_BACK = "rolling_back"  # a failed run whose restore of the old value failed
STEP_FAILED = "failed"  # gave up; the old value is current and restored on the target
IN_FLIGHT = frozenset({STEP_GENERATED, STEP_APPLIED, STEP_VERIFIED, STEP_ROLLING_BACK})
PROMOTED = frozenset({STEP_PROMOTED, STEP_RETIRED})

OUTCOME_OK = "ok"
OUTCOME_FAILED = "failed"  # nothing changed on the target (or the restore succeeded)
OUTCOME_ROLLED_BACK = "rolled_back"

TRIGGER_SCHEDULE = "schedule"
TRIGGER_MANUAL = "manual"

LABELS = ("current", "pending", "previous")

MIN_EVERY_SECONDS = 60
MAX_EVERY_SECONDS = 5 * 365 * 86400
MAX_GRACE_SECONDS = 30 * 86400
BACKOFF_FIRST_SECONDS = 30
BACKOFF_LONGEST_SECONDS = 6 * 3600

_OPTION_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")


def parse_options(raw: Mapping[str, Any]) -> dict[str, str]:
    """Rotator options as a plain ``{name: string}`` map; InvalidInput for bad names,
    non-string values or oversized input."""
    if len(raw) > 32:
        raise InvalidInput("at most 32 rotator options")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _OPTION_NAME.fullmatch(key):
            raise InvalidInput(f"invalid option name {key!r}: lowercase letters, digits and '-'")
        if not isinstance(value, str) or len(value) > 2048 or "\x00" in value:
            raise InvalidInput(f"option {key!r} must be a string of at most 2048 characters")
        out[key] = value
    return out


def secret_options(options: Mapping[str, str]) -> list[str]:
    """Paths of other keysafe secrets a policy's options name (``*-secret``)."""
    return [value for key, value in sorted(options.items()) if key.endswith("-secret")]


def pending_context(path: str, run_id: str) -> bytes:
    """Associated data of a pending value: its path, the word "pending" and the run, so
    that it never opens as a version of any secret nor as another run's value."""
    return f"{path}\x00pending\x00{run_id}".encode()


def backoff_seconds(failures: int, every_seconds: int) -> int:
    """Delay before retrying after ``failures`` consecutive failures: doubling from 30 s,
    at most 6 h and never later than the regular interval."""
    delay = BACKOFF_FIRST_SECONDS * 2 ** max(failures - 1, 0)
    return int(min(delay, BACKOFF_LONGEST_SECONDS, every_seconds))


@dataclass(frozen=True, slots=True)
class Policy:
    path: str
    rotator: str
    options: dict[str, str]
    every_seconds: int
    grace_seconds: int
    next_due: int
    claimed_by: str | None
    claimed_until: int | None
    failures: int
    active_run: str | None
    retire_run: str | None
    retire_at: int | None
    last_run: str | None
    last_outcome: str | None
    last_error: str | None
    last_run_at: int | None
    updated_at: int
    updated_by: str

    @classmethod
    def from_row(cls, row: Any) -> Policy:
        return cls(
            path=row.path,
            rotator=row.rotator,
            options=orjson.loads(row.options),
            every_seconds=int(row.every_seconds),
            grace_seconds=int(row.grace_seconds),
            next_due=int(row.next_due),
            claimed_by=row.claimed_by,
            claimed_until=row.claimed_until,
            failures=int(row.failures),
            active_run=row.active_run,
            retire_run=row.retire_run,
            retire_at=row.retire_at,
            last_run=row.last_run,
            last_outcome=row.last_outcome,
            last_error=row.last_error,
            last_run_at=row.last_run_at,
            updated_at=int(row.updated_at),
            updated_by=row.updated_by,
        )

    def document(self, now: int) -> dict[str, Any]:
        """What ``rotation status`` shows: schedule, last run, outcome, work in flight."""
        running = self.claimed_until is not None and self.claimed_until >= now
        return {
            "path": self.path,
            "rotator": self.rotator,
            "options": self.options,
            "every_seconds": self.every_seconds,
            "grace_seconds": self.grace_seconds,
            "next_due": iso_us(self.next_due),
            "due": self.next_due <= now,
            "running": running,
            "in_flight_run": self.active_run,
            "retire_at": iso_us(self.retire_at),
            "failures": self.failures,
            "last_run": self.last_run,
            "last_run_at": iso_us(self.last_run_at),
            "last_outcome": self.last_outcome,
            "last_error": self.last_error,
            "updated_at": iso_us(self.updated_at),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    path: str
    rotator: str
    trigger: str
    actor: str
    step: str
    base_version: int | None
    new_version: int | None
    pending: tuple[int, int, bytes, bytes] | None  # format, kek version, wrapped DEK, value
    started_at: int
    finished_at: int | None
    outcome: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: Any) -> Run:
        pending = None
        if row.pending_value is not None:
            pending = (
                int(row.pending_format),
                int(row.pending_kek),
                bytes(row.pending_dek),
                bytes(row.pending_value),
            )
        return cls(
            id=row.id,
            path=row.path,
            rotator=row.rotator,
            trigger=row.trigger,
            actor=row.actor,
            step=row.step,
            base_version=row.base_version,
            new_version=row.new_version,
            pending=pending,
            started_at=int(row.started_at),
            finished_at=row.finished_at,
            outcome=row.outcome,
            error=row.error,
        )

    def document(self) -> dict[str, Any]:
        """A run as the API shows it (never the pending value)."""
        return {
            "id": self.id,
            "path": self.path,
            "rotator": self.rotator,
            "trigger": self.trigger,
            "step": self.step,
            "outcome": self.outcome,
            "previous_version": self.base_version,
            "new_version": self.new_version,
            "started_at": iso_us(self.started_at),
            "finished_at": iso_us(self.finished_at),
            "error": self.error,
        }
