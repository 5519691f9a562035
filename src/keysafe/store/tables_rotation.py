"""Tables of the rotation capability, on the shared metadata (see tables.py).

Table and column names are persisted: only ever add (with a migration).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from keysafe.store.tables import metadata

__all__ = ["metadata", "rotation_policies", "rotation_runs", "rotation_targets"]

# One rotation schedule per secret path. ``claimed_by``/``claimed_until`` are the lock:
# a process owns the policy (to rotate, resume or retire) only after an atomic
# conditional UPDATE that found the claim free or expired; it renews the claim while it
# works, so a process killed mid-rotation hands the policy on when the claim lapses.
rotation_policies = Table(
    "rotation_policies",
    metadata,
    Column("path", String(512), primary_key=True),
    Column("rotator", String(64), nullable=False),
    Column("options", Text, nullable=False),  # JSON object of strings, never a secret value
    Column("every_seconds", BigInteger, nullable=False),
    Column("grace_seconds", BigInteger, nullable=False),
    Column("next_due", BigInteger, nullable=False),  # unix microseconds
    Column("claimed_by", String(40), nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
    Column("failures", Integer, nullable=False),  # consecutive failed runs (backoff)
    Column("active_run", String(40), nullable=True),  # a run between generate and promote
    Column("retire_run", String(40), nullable=True),  # a promoted run awaiting retirement
    Column("retire_at", BigInteger, nullable=True),
    Column("last_run", String(40), nullable=True),
    Column("last_outcome", String(16), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_run_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(64), nullable=False),
)
Index("ix_rotation_policies_due", rotation_policies.c.next_due)

# One rotation attempt. Steps (persisted, only ever add): generated, applied, verified,
# promoted, retired, rolling_back, failed. The pending value is sealed here (never in
# the secret's version list) until it is proven and promoted; the ``base_version`` of a
# promoted run is the secret's "previous" version.
rotation_runs = Table(
    "rotation_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("path", String(512), nullable=False),
    Column("rotator", String(64), nullable=False),
    Column("trigger", String(16), nullable=False),  # "schedule" | "manual"
    Column("actor", String(64), nullable=False),
    Column("step", String(16), nullable=False),
    Column("base_version", Integer, nullable=True),
    Column("new_version", Integer, nullable=True),
    Column("pending_format", Integer, nullable=True),
    Column("pending_kek", Integer, nullable=True),
    Column("pending_dek", LargeBinary, nullable=True),  # NULL once promoted or discarded
    Column("pending_value", LargeBinary, nullable=True),
    Column("started_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("outcome", String(16), nullable=True),  # ok | failed | rolled_back
    Column("error", Text, nullable=True),  # never a secret value
)
Index("ix_rotation_runs_path", rotation_runs.c.path, rotation_runs.c.started_at)

# Network targets an admin approved for rotators (keysafe.rotation.targets): a rotator
# connects only to a (kind, host, port, database) listed here, with the normalised host
# it parsed. ``roles``: a JSON list of the logins it may change there; [] for any.
rotation_targets = Table(
    "rotation_targets",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),  # postgres | redis
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("database", String(64), nullable=False),
    Column("roles", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
    UniqueConstraint("kind", "host", "port", "database", name="uq_rotation_targets_where"),
)
