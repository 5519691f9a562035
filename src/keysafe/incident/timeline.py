"""An incident's timeline: its own steps plus the audit events that touched its items.

An audit event touches an item when the item is the event's path (a secret's reads and
writes), its actor (every request an API key or token made), or is named in its detail
(``key:revoke`` and ``key:revoke-leaked`` name the key id there). The window starts
``lookback`` before the incident opened, so the use of a key before its leak was
noticed shows too, and ends when the incident closed (or now). The incident's own
``incident:*`` events are left out: its steps already say the same, with more detail.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Engine, and_, or_, select

from keysafe.incident.models import KIND_SECRET, Incident, TimelineEntry
from keysafe.store.engine import read_conn
from keysafe.store.tables import audit_events

DEFAULT_LOOKBACK_US = 7 * 86_400 * 1_000_000
MAX_AUDIT_EVENTS = 1000


def build_timeline(
    engine: Engine,
    incident: Incident,
    now_us: int,
    *,
    lookback_us: int = DEFAULT_LOOKBACK_US,
    limit: int = MAX_AUDIT_EVENTS,
) -> list[TimelineEntry]:
    """Steps and touching audit events in time order (audit events first at equal
    times); at most ``limit`` audit events, the latest ones."""
    entries = [
        TimelineEntry(s.ts, "step", f"{s.phase}:{s.action}", s.target, s.actor, s.outcome, s.detail)
        for s in incident.steps
    ]
    refs = sorted({i.ref for i in incident.items})
    ids = sorted({i.ref for i in incident.items if i.kind != KIND_SECRET})
    if refs:
        touching: list[ColumnElement[bool]] = [audit_events.c.path.in_(refs)]
        if ids:
            touching.append(audit_events.c.actor.in_(ids))
            # Ids are generated (key_<hex>, tok_<hex>): no LIKE wildcards to escape.
            touching.extend(audit_events.c.detail.contains(i, autoescape=True) for i in ids)
        end = incident.closed_at if incident.closed_at is not None else now_us
        query = (
            select(audit_events)
            .where(
                and_(
                    audit_events.c.ts >= incident.opened_at - lookback_us,
                    audit_events.c.ts <= end,
                    ~audit_events.c.operation.startswith("incident:"),
                    or_(*touching),
                )
            )
            .order_by(audit_events.c.seq.desc())
            .limit(limit)
        )
        with read_conn(engine) as conn:
            rows = conn.execute(query).all()
        entries.extend(
            TimelineEntry(
                int(r.ts),
                "audit",
                r.operation,
                r.path,
                r.actor,
                r.outcome,
                r.detail,
            )
            for r in rows
        )
    entries.sort(key=lambda e: (e.ts, e.kind != "audit"))
    return entries
