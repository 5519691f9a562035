"""Tables of the leases capability, on the shared metadata (see tables.py).

Table and column names are persisted: only ever add (with a migration).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from keysafe.store.tables import metadata

__all__ = ["dynamic_roles", "leases", "metadata"]

# A template for temporary database logins (``keysafe creds role write``).
dynamic_roles = Table(
    "dynamic_roles",
    metadata,
    Column("name", String(256), primary_key=True),  # e.g. postgres/reporting
    Column("engine", String(32), nullable=False),  # "postgres"
    # Path of the keysafe secret holding the admin connection URL (never the URL itself).
    Column("connection_secret", String(512), nullable=False),
    # JSON list of SQL statements run after CREATE ROLE, with {{name}}/{{expiration}}.
    Column("grants", Text, nullable=False),
    Column("default_ttl", Integer, nullable=False),  # seconds
    Column("max_ttl", Integer, nullable=False),  # seconds
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

# One issued login. States (persisted, only ever add): active, revoked, expired,
# revoke_failed. ``claimed_by``/``claimed_until`` let one process of several own a
# revocation; after a failure ``claimed_until`` alone holds the next retry time.
leases = Table(
    "leases",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("role", String(256), nullable=False),
    Column("username", String(63), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),  # unix microseconds
    Column("created_by", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("max_expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("revoke_error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("claimed_by", String(40), nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
)
Index("ix_leases_state_expires", leases.c.state, leases.c.expires_at)
Index("ix_leases_role", leases.c.role)
