"""The cluster's node registry, on the shared metadata (see tables.py).

Each server (one process group: its workers and its job process) keeps one row fresh
with a heartbeat; ``keysafe operator members`` lists them. Table and column names are
persisted: only ever add (with a migration).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, String, Table

from keysafe.store.tables import metadata

__all__ = ["metadata", "nodes"]

# Times are unix microseconds, like the audit trail's.
nodes = Table(
    "nodes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("address", String(255), nullable=False),
    Column("version", String(32), nullable=False),
    Column("pid", BigInteger, nullable=False),
    Column("sealed", Boolean, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
)
