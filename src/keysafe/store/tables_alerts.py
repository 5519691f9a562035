"""Tables of the alerts capability, on the shared metadata (see tables.py).

Table and column names are persisted: only ever add (with a migration).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from keysafe.store.tables import metadata

__all__ = [
    "alert_baselines",
    "alert_cursor",
    "alert_hooks",
    "alert_outbox",
    "alerts",
    "metadata",
]

# How far the anomaly job has read the audit trail. One row per reader (``anomaly``);
# a process advances it with a conditional UPDATE (``WHERE seq = <what it read>``), so
# exactly one process scores each event even when several servers share the database.
alert_cursor = Table(
    "alert_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Each actor's learned behaviour (keysafe.monitor.baseline), a compact JSON document.
alert_baselines = Table(
    "alert_baselines",
    metadata,
    Column("actor", String(64), primary_key=True),
    Column("state", LargeBinary, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("actor", String(64), nullable=False),
    # What makes two findings "the same alert" (a network, a path, or empty).
    Column("dedup_key", String(256), nullable=False),
    Column("evidence", Text, nullable=False),  # JSON: numbers and names, never values
    Column("first_at", BigInteger, nullable=False),  # unix microseconds (event time)
    Column("last_at", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # open | acknowledged
    Column("action", String(32), nullable=False),  # notify | suspend | require-mfa
    Column("action_result", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("acked_by", String(64), nullable=True),
    Column("acked_at", BigInteger, nullable=True),
)
Index("ix_alerts_open", alerts.c.actor, alerts.c.kind, alerts.c.dedup_key, alerts.c.status)
Index("ix_alerts_last_at", alerts.c.last_at)

# Where alerts go: a signed webhook (its signing secret sealed under the keyring) or an
# e-mail address (sent through the configured SMTP server).
alert_hooks = Table(
    "alert_hooks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),  # webhook | email
    Column("target", Text, nullable=False),  # URL or address
    Column("kek_version", Integer, nullable=True),
    Column("wrapped_dek", LargeBinary, nullable=True),
    Column("sealed_secret", LargeBinary, nullable=True),
    Column("description", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
)

# Notifications waiting to be delivered, retried with backoff; ``status`` becomes
# ``dead`` (the dead-letter record) when every attempt failed.
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("alert_id", String(40), nullable=False),
    Column("channel", String(16), nullable=False),  # webhook | email
    Column("hook_id", String(40), nullable=True),
    Column("target", Text, nullable=False),
    Column("body", Text, nullable=False),  # the alert document sent
    Column("status", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("next_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger, nullable=True),
    Column("last_error", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("done_at", BigInteger, nullable=True),
)
Index("ix_alert_outbox_due", alert_outbox.c.status, alert_outbox.c.next_at)
