"""Incidents: open one for what leaked, run its playbook, show, report and close it.

:class:`IncidentService` opens an incident for what leaked (keys, tokens, secrets,
leases, or scan findings that name them), runs the playbook (contain, eradicate,
verify, record, report; see ``playbook``), shows its timeline and closes it. Leak
reports (``leaks.LeakService``) open incidents through it too.
"""

from __future__ import annotations

import secrets as pysecrets
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from keysafe.access.models import RequestContext
from keysafe.clock import Clock
from keysafe.errors import Conflict, InvalidInput, NotFound
from keysafe.incident.models import (
    DONE,
    PHASE_CLOSE,
    PHASE_OPEN,
    PHASE_RECORD,
    PHASE_REPORT,
    STATUS_CLOSED,
    STATUS_OPEN,
    Exposure,
    Incident,
    Item,
    Step,
    TimelineEntry,
)
from keysafe.incident.playbook import Playbook
from keysafe.incident.resolve import Named, Resolver
from keysafe.incident.timeline import build_timeline
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables_incidents import incident_items, incident_steps, incidents

MAX_LIST = 500


class IncidentService:
    def __init__(
        self, engine: Engine, playbook: Playbook, resolver: Resolver, clock: Clock
    ) -> None:
        self._engine = engine
        self._playbook = playbook
        self._resolver = resolver
        self._clock = clock

    @property
    def playbook(self) -> Playbook:
        return self._playbook

    async def resolve(self, named: Named, ctx: RequestContext | None) -> Exposure:
        """Items for what ``named`` names (see ``resolve.Resolver``)."""
        return await self._resolver.resolve(named, ctx)

    def plan(self, exposure: Exposure, actor: str) -> dict[str, Any]:
        """Dry run: the items and the steps the playbook would take. Changes nothing."""
        return {
            "dry_run": True,
            "items": [i.as_json() for i in exposure.items],
            "notes": [{"target": t, "outcome": o, "detail": d} for t, o, d in exposure.notes],
            "plan": [s.as_json() for s in self._playbook.plan(exposure, actor)],
        }

    def open(
        self,
        exposure: Exposure,
        *,
        title: str,
        origin: str,
        actor: str,
        source: str,
        request_id: str,
        ctx: RequestContext | None = None,
    ) -> Incident:
        """Store the incident and run the whole playbook; every step stored and audited.
        Rotation and lease revocation act with ``ctx``'s rights (see ``Playbook.run``).

        Runs in a worker thread (it writes and may call rotators)."""
        if not exposure.items and not exposure.notes:
            raise InvalidInput("nothing to open an incident for")
        incident_id = "inc_" + pysecrets.token_hex(8)
        now = self._clock.now_us()
        title = title.strip()[:200] or _default_title(exposure)
        with write_txn(self._engine) as conn:
            conn.execute(
                insert(incidents).values(
                    id=incident_id,
                    title=title,
                    status=STATUS_OPEN,
                    source=origin[:64],
                    opened_at=now,
                    opened_by=actor[:64],
                    closed_at=None,
                    closed_by=None,
                )
            )
            for seq, item in enumerate(exposure.items, start=1):
                conn.execute(
                    insert(incident_items).values(
                        incident_id=incident_id,
                        seq=seq,
                        kind=item.kind,
                        ref=item.ref[:512],
                        note=item.note[:2000],
                    )
                )
        book = self._playbook
        step = {"actor": actor, "source": source, "request_id": request_id}
        names = ", ".join(f"{i.kind} {i.ref}" for i in exposure.items) or "no stored item"
        book.record_step(incident_id, PHASE_OPEN, "open", "", DONE, f"{title}: {names}", **step)
        for target, outcome, detail in exposure.notes:
            book.record_step(incident_id, PHASE_OPEN, "resolve", target, outcome, detail, **step)
        book.run(incident_id, exposure, actor, source, request_id, ctx)
        timeline = self.timeline(incident_id)
        touching = sum(1 for e in timeline if e.kind == "audit")
        book.record_step(
            incident_id,
            PHASE_RECORD,
            "build-timeline",
            "",
            DONE,
            f"{touching} audit events touch the items",
            **step,
        )
        book.record_step(
            incident_id,
            PHASE_REPORT,
            "report-ready",
            "",
            DONE,
            f"keysafe incident report {incident_id} --format md|json",
            **step,
        )
        return self.get(incident_id)

    def get(self, incident_id: str) -> Incident:
        """The incident with its items and steps; NotFound if unknown."""
        with read_conn(self._engine) as conn:
            row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
            if row is None:
                raise NotFound(f"no incident {incident_id}")
            items = conn.execute(
                select(incident_items)
                .where(incident_items.c.incident_id == incident_id)
                .order_by(incident_items.c.seq)
            ).all()
            steps = conn.execute(
                select(incident_steps)
                .where(incident_steps.c.incident_id == incident_id)
                .order_by(incident_steps.c.seq)
            ).all()
        incident = _incident(row)
        incident.items = [Item(i.kind, i.ref, i.note) for i in items]
        incident.steps = [
            Step(int(s.ts), s.phase, s.action, s.target, s.actor, s.outcome, s.detail)
            for s in steps
        ]
        return incident

    def list_incidents(self, status: str | None = None) -> list[dict[str, Any]]:
        """Newest first, at most 500; ``status`` "open" or "closed" filters."""
        if status not in (None, STATUS_OPEN, STATUS_CLOSED):
            raise InvalidInput('status is "open" or "closed"')
        query = select(incidents).order_by(incidents.c.opened_at.desc()).limit(MAX_LIST)
        if status is not None:
            query = query.where(incidents.c.status == status)
        with read_conn(self._engine) as conn:
            rows = conn.execute(query).all()
            counts = {
                r[0]: int(r[1])
                for r in conn.execute(
                    select(incident_items.c.incident_id, func.count()).group_by(
                        incident_items.c.incident_id
                    )
                )
            }
        out = []
        for row in rows:
            doc = _incident(row).summary()
            doc["items"] = int(counts.get(row.id, 0))
            out.append(doc)
        return out

    def close(self, incident_id: str, actor: str, source: str, request_id: str) -> Incident:
        """Close an open incident (Conflict if it is closed already), audited."""
        now = self._clock.now_us()
        with write_txn(self._engine) as conn:
            done = conn.execute(
                update(incidents)
                .where(incidents.c.id == incident_id, incidents.c.status == STATUS_OPEN)
                .values(status=STATUS_CLOSED, closed_at=now, closed_by=actor[:64])
            )
            if done.rowcount == 0:
                exists = conn.execute(
                    select(incidents.c.id).where(incidents.c.id == incident_id)
                ).first()
                if exists is None:
                    raise NotFound(f"no incident {incident_id}")
                raise Conflict(f"incident {incident_id} is closed already")
        self._playbook.record_step(
            incident_id,
            PHASE_CLOSE,
            "close",
            "",
            DONE,
            "closed",
            actor=actor,
            source=source,
            request_id=request_id,
        )
        return self.get(incident_id)

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        """Steps plus the audit events touching the items (see ``timeline``)."""
        return build_timeline(self._engine, self.get(incident_id), self._clock.now_us())


def _incident(row: Any) -> Incident:
    return Incident(
        id=row.id,
        title=row.title,
        status=row.status,
        source=row.source,
        opened_at=int(row.opened_at),
        opened_by=row.opened_by,
        closed_at=None if row.closed_at is None else int(row.closed_at),
        closed_by=row.closed_by,
    )


def _default_title(exposure: Exposure) -> str:
    kinds = sorted({i.kind for i in exposure.items})
    return "leaked " + (", ".join(kinds) if kinds else "values")
