"""The anomaly job: read new audit events, score them, store baselines and alerts.

Reads the audit trail (never the request path) from a cursor kept in the database.
A batch is scored against the stored baselines first, then committed in one write
transaction that advances the cursor with a conditional UPDATE (``WHERE seq = <the seq
this process read>``) and stores the baselines and alerts: if another process advanced
the cursor meanwhile, the batch is dropped, so across several server processes each
event is scored exactly once, and its baselines, alerts and notifications commit with
the cursor or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from keysafe.audit.models import AuditEvent, event_from_row
from keysafe.clock import Clock
from keysafe.monitor.alerts import AlertService, Raised
from keysafe.monitor.anomaly import AnomalyDetector
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables import audit_events
from keysafe.store.tables_alerts import alert_baselines, alert_cursor

CURSOR_NAME = "anomaly"
BATCH = 5000
# Nodes take audit order numbers from a PostgreSQL sequence without a lock, so a lower
# number may commit after a higher one: a gap younger than this is waited for (it may
# still be committing; an older one stays a gap, e.g. a rolled-back append).
SETTLE_US = 15_000_000


@dataclass(frozen=True, slots=True)
class BatchResult:
    events: int
    raised: list[Raised]
    claimed: bool = True


class AnomalyRunner:
    def __init__(self, engine: Engine, clock: Clock, alerts: AlertService) -> None:
        self._engine = engine
        self._clock = clock
        self.alerts = alerts

    def cursor(self) -> int:
        with read_conn(self._engine) as conn:
            row = conn.execute(
                select(alert_cursor.c.seq).where(alert_cursor.c.name == CURSOR_NAME)
            ).first()
        return int(row.seq) if row is not None else 0

    def run(self, budget_seconds: float = 1.0, batch: int = BATCH) -> int:
        """Score batches until caught up or ``budget_seconds`` passed; returns the
        number of events this process scored."""
        deadline = time.monotonic() + budget_seconds
        total = 0
        while True:
            done = self.run_once(batch)
            total += done.events if done.claimed else 0
            if done.events < batch or time.monotonic() >= deadline:
                return total

    def run_once(self, batch: int = BATCH) -> BatchResult:
        """Score the next ``batch`` audit events after the cursor (see the module doc)."""
        start = self.cursor()
        with read_conn(self._engine) as conn:
            rows = conn.execute(
                select(audit_events)
                .where(audit_events.c.seq > start)
                .order_by(audit_events.c.seq)
                .limit(batch)
            ).all()
        rows = _settled(list(rows), start, self._clock.now_us() - SETTLE_US)
        if not rows:
            return BatchResult(0, [])
        events = [event_from_row(r) for r in rows]
        end = int(rows[-1].seq)
        # Score before taking the write lock (on SQLite it stalls every writer): the
        # baselines read here can only have changed if another process advanced the
        # cursor past ``start`` meanwhile, and then the conditional UPDATE below fails
        # and this batch is dropped (optimistic concurrency).
        with read_conn(self._engine) as conn:
            detector, known = self._load(conn, events)
        findings = [f for event in events for f in detector.observe(event)]
        try:
            with write_txn(self._engine) as conn:
                if not self._advance(conn, start, end):
                    return BatchResult(len(events), [], claimed=False)
                self._store(conn, detector, known)
                raised = self.alerts.record(conn, findings)
        except IntegrityError:
            # Two processes created the cursor at once; the other one won this batch.
            return BatchResult(len(events), [], claimed=False)
        return BatchResult(len(events), raised)

    def score(self, conn: Connection, events: Iterable[AuditEvent]) -> list[Raised]:
        """Judge ``events`` (in order) against the stored baselines inside the caller's
        write transaction; store the updated baselines and the alerts (no cursor: for
        replaying recorded events)."""
        events = list(events)
        detector, known = self._load(conn, events)
        findings = [f for event in events for f in detector.observe(event)]
        self._store(conn, detector, known)
        return self.alerts.record(conn, findings)

    @staticmethod
    def _load(conn: Connection, events: list[AuditEvent]) -> tuple[AnomalyDetector, set[str]]:
        """A detector holding the stored baselines of the actors in ``events``, and the
        set of actors that had one."""
        detector = AnomalyDetector()
        actors = sorted({e.actor for e in events})
        for chunk in range(0, len(actors), 500):
            for row in conn.execute(
                select(alert_baselines).where(
                    alert_baselines.c.actor.in_(actors[chunk : chunk + 500])
                )
            ):
                detector.load(row.actor, bytes(row.state))
        return detector, set(detector.baselines)

    def _store(self, conn: Connection, detector: AnomalyDetector, known: set[str]) -> None:
        now = self._clock.now_us()
        for actor in detector.dirty:
            blob = detector.baselines[actor].to_bytes()
            if actor in known:
                conn.execute(
                    update(alert_baselines)
                    .where(alert_baselines.c.actor == actor)
                    .values(state=blob, updated_at=now)
                )
            else:
                conn.execute(
                    insert(alert_baselines).values(actor=actor, state=blob, updated_at=now)
                )

    def _advance(self, conn: Connection, start: int, end: int) -> bool:
        """Move the cursor from ``start`` to ``end``; False if another process did."""
        now = self._clock.now_us()
        moved = conn.execute(
            update(alert_cursor)
            .where(alert_cursor.c.name == CURSOR_NAME, alert_cursor.c.seq == start)
            .values(seq=end, updated_at=now)
        ).rowcount
        if moved == 1:
            return True
        exists = conn.execute(
            select(alert_cursor.c.seq).where(alert_cursor.c.name == CURSOR_NAME)
        ).first()
        if exists is not None or start != 0:
            return False
        # First run ever: create the cursor. A concurrent first run fails on the primary
        # key and its transaction rolls back, which is the same answer.
        conn.execute(insert(alert_cursor).values(name=CURSOR_NAME, seq=end, updated_at=now))
        return True


def _settled(rows: list[Any], start: int, settled_before: int) -> list[Any]:
    """``rows`` up to the first gap in the order numbers that may still fill."""
    expected = start + 1
    for i, row in enumerate(rows):
        if int(row.seq) != expected and int(row.ts) > settled_before:
            return rows[:i]
        expected = int(row.seq) + 1
    return rows
