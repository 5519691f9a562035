"""Tables of the incidents capability, on the shared metadata (see tables.py).

Table and column names are persisted: only ever add (with a migration).

- ``incidents``: one row per incident (what opened it, when, by whom, open/closed).
- ``incident_items``: what leaked: API keys, tokens, secrets, leases (ids or paths,
  never a value).
- ``incident_steps``: every playbook step as it ran, with its time, actor, outcome.
- ``leak_report_digests``: SHA-256 of every signed partner report body processed, so
  that a replayed report is refused.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from keysafe.store.tables import metadata

__all__ = ["incident_items", "incident_steps", "incidents", "leak_report_digests", "metadata"]

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("title", Text, nullable=False),
    Column("status", String(16), nullable=False),  # "open" | "closed"
    Column("source", String(64), nullable=False),  # "api", "cli", "leak-report", "partner:<id>"
    Column("opened_at", BigInteger, nullable=False),  # unix microseconds
    Column("opened_by", String(64), nullable=False),
    Column("closed_at", BigInteger, nullable=True),
    Column("closed_by", String(64), nullable=True),
)
Index("ix_incidents_opened_at", incidents.c.opened_at)

incident_items = Table(
    "incident_items",
    metadata,
    Column(
        "incident_id",
        String(40),
        ForeignKey("incidents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),  # "key" | "token" | "secret" | "lease"
    Column("ref", String(512), nullable=False),  # key id, token id, secret path, lease id
    Column("note", Text, nullable=False),  # where it was seen, which rule found it
)

incident_steps = Table(
    "incident_steps",
    metadata,
    Column(
        "incident_id",
        String(40),
        ForeignKey("incidents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("phase", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False),
)

leak_report_digests = Table(
    "leak_report_digests",
    metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("key_identifier", String(128), nullable=False),
    Column("received_at", BigInteger, nullable=False),
)
