"""Recording playbook steps: each step is stored in ``incident_steps`` with its audit
event (``incident:<phase>``) in one transaction, numbered per incident.

A change that belongs to the step (revoking a key) runs in that same transaction, so
the revocation, the step and its audit event commit or fail together.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, func, insert, select

from keysafe.access.models import MODE_ROOT, Principal, RequestContext
from keysafe.audit.models import OUTCOME_ERROR, OUTCOME_OK, AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.errors import KeysafeError
from keysafe.incident.models import FAILED, Step
from keysafe.store.engine import write_txn
from keysafe.store.tables_incidents import incident_steps, incidents


def system_context(actor: str, source: str, request_id: str) -> RequestContext:
    """The playbook's own identity where no operator's context exists (a leak report):
    root rights, the reporter's actor name, so audit events say who set it off."""
    return RequestContext(Principal(actor[:64], MODE_ROOT, MODE_ROOT, "", None), source, request_id)


class StepRecorder:
    """Stores each step with its audit event, numbering steps per incident."""

    def __init__(
        self,
        engine: Engine,
        audit: AuditLog,
        clock: Clock,
        incident_id: str,
        actor: str,
        source: str,
        request_id: str,
    ) -> None:
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self.incident_id = incident_id
        self.actor = actor
        self.source = source
        self.request_id = request_id
        self.ctx = system_context(actor, source, request_id)

    def step(self, phase: str, action: str, target: str, outcome: str, detail: str) -> Step:
        return self.step_with(phase, action, target, lambda _conn: (outcome, detail))

    def attempt(
        self, phase: str, action: str, target: str, work: Callable[[], tuple[str, str]]
    ) -> str:
        """Run ``work`` (which has its own transactions and audit), then record its
        outcome; a KeysafeError is recorded as a failed step, not raised."""
        try:
            outcome, detail = work()
        except KeysafeError as exc:
            outcome, detail = FAILED, f"{exc.code}: {exc.detail}"
        self.step(phase, action, target, outcome, detail)
        return outcome

    def step_with(
        self,
        phase: str,
        action: str,
        target: str,
        change: Callable[[Connection], tuple[str, str]],
    ) -> Step:
        with write_txn(self._engine) as conn:
            # Steps of one incident are numbered in order: lock its row first so that
            # two writers (the playbook and a close) never take the same number.
            conn.execute(
                select(incidents.c.id).where(incidents.c.id == self.incident_id).with_for_update()
            )
            outcome, detail = change(conn)
            ts = self._clock.now_us()
            seq = conn.execute(
                select(func.coalesce(func.max(incident_steps.c.seq), 0)).where(
                    incident_steps.c.incident_id == self.incident_id
                )
            ).scalar_one()
            step = Step(ts, phase, action, target[:512], self.actor, outcome, detail[:2000])
            conn.execute(
                insert(incident_steps).values(
                    incident_id=self.incident_id,
                    seq=int(seq) + 1,
                    ts=ts,
                    phase=phase,
                    action=action,
                    target=step.target,
                    actor=self.actor[:64],
                    outcome=outcome,
                    detail=step.detail,
                )
            )
            self._audit.append_in_txn(
                conn,
                [
                    AuditEvent(
                        ts,
                        self.request_id,
                        self.actor[:64],
                        self.source[:64],
                        f"incident:{phase}",
                        target[:512],
                        OUTCOME_ERROR if outcome == FAILED else OUTCOME_OK,
                        f"{self.incident_id} {action}: {outcome}",
                    )
                ],
            )
        return step
