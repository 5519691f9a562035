"""Replay a recorded normal workload, then injected misuse, through the real detector and
alert store on SQLite and PostgreSQL: every misuse is alerted, the normal workload never.
"""

from __future__ import annotations

import functools

import pytest
from anomaly_workload import DAY, HOUR, START, generate, misuse, profiles
from sqlalchemy import func, select
from vaultkit import Vault

from keysafe.audit.models import AuditEvent
from keysafe.monitor.anomaly import KINDS
from keysafe.store.engine import write_txn
from keysafe.store.tables_alerts import alert_baselines

DAYS_NORMAL = 14
BATCH = 5000


@functools.cache
def workload() -> tuple[AuditEvent, ...]:
    # Two more normal days than replayed first: misuse is injected into live traffic.
    return tuple(generate(days=DAYS_NORMAL + 2))


def replay(vault: Vault, events: list[AuditEvent]) -> None:
    runner = vault.svc.anomaly
    for i in range(0, len(events), BATCH):
        with write_txn(vault.svc.engine) as conn:
            runner.score(conn, events[i : i + BATCH])


def test_normal_workload_raises_nothing_and_each_misuse_is_alerted(vault: Vault) -> None:
    events = list(workload())
    assert len(events) > 100_000
    cut = START + DAYS_NORMAL * DAY
    normal = [e for e in events if e.ts < cut]
    replay(vault, normal)
    assert vault.svc.alerts.list_alerts() == []
    with vault.svc.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(alert_baselines)).scalar() == 50

    # Day 15 (a Tuesday): five office keys each misused once, amid their normal traffic.
    office = [p for p in profiles() if p.kind == "office"]
    day = START + (DAYS_NORMAL + 1) * DAY
    plan = {
        "new_network": (office[0], day + 11 * HOUR),
        "rate_spike": (office[1], day + 11 * HOUR + 7_000_000),
        "off_hours": (office[2], day + 3 * HOUR),
        "denied_burst": (office[3], day + 12 * HOUR),
        "new_path": (office[4], day + 13 * HOUR),
    }
    injected = [e for kind, (p, at) in plan.items() for e in misuse(p, kind, at)]
    rest = sorted([e for e in events if e.ts >= cut] + injected, key=lambda e: e.ts)
    replay(vault, rest)

    alerts = vault.svc.alerts.list_alerts()
    got = sorted((a["kind"], a["actor"]) for a in alerts)
    assert got == sorted((kind, p.actor) for kind, (p, _) in plan.items()), alerts
    by_kind = {a["kind"]: a for a in alerts}
    assert set(by_kind) <= set(KINDS)
    assert by_kind["new_network"]["evidence"]["network"] == "203.0.113.0/24"
    assert by_kind["new_network"]["severity"] == "high"
    assert (
        by_kind["rate_spike"]["evidence"]["count"] > by_kind["rate_spike"]["evidence"]["threshold"]
    )
    assert by_kind["off_hours"]["evidence"]["hour_utc"] == 3
    assert by_kind["denied_burst"]["count"] == 1  # one alert for the whole burst
    assert by_kind["new_path"]["evidence"]["path"] == "payments/prod/STRIPE_ROOT_KEY"
    for alert in alerts:
        assert alert["status"] == "open"
        assert alert["action"] == "notify"


@pytest.mark.parametrize("kind", ["new_network", "rate_spike", "denied_burst", "new_path"])
def test_misuse_through_the_audit_trail_and_the_job(vault: Vault, kind: str) -> None:
    """The production path: events in the audit trail, the job's cursor, exactly once."""
    events = [e for e in workload() if e.actor == "key_0000" and e.ts < START + 7 * DAY]
    replay(vault, events)
    assert vault.svc.alerts.list_alerts() == []
    profile = profiles()[0]
    bad = misuse(profile, kind, START + 8 * DAY + 11 * HOUR)  # a Tuesday
    with write_txn(vault.svc.engine) as conn:
        vault.svc.audit.append_in_txn(conn, bad)
    runner = vault.svc.anomaly
    assert runner.run(budget_seconds=5.0) >= len(bad)
    alerts = vault.svc.alerts.list_alerts()
    assert [(a["kind"], a["actor"]) for a in alerts] == [(kind, profile.actor)]
    # Scored once: running again (as another process would) only reads the job's own
    # "alert:raise" events, then nothing; the cursor is at the end of the trail.
    runner.run(budget_seconds=5.0)
    assert runner.run(budget_seconds=5.0) == 0
    assert len(vault.svc.alerts.list_alerts()) == 1
    assert runner.cursor() == vault.svc.audit.events(limit=10_000)[-1].seq
    # The alert itself is audited (and its audit event, by "system", is not judged).
    trail = vault.svc.audit.events(limit=10_000)
    assert any(c.event.operation == "alert:raise" for c in trail)
