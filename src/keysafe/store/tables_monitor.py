"""Tables of the monitor capability, on the shared metadata (see tables.py).

Usage is kept compactly: one row per (subject kind, subject, hour) with counters, and
bounded sets of the addresses, paths and actors seen in that hour. Each server process
aggregates in memory and merges its counts in with upserts, so several processes (and
several flushes) add up instead of overwriting each other.

Table and column names, and the subject kinds and item dimensions stored in them, are
persisted: only ever add (with a migration).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table

from keysafe.store.tables import metadata

__all__ = ["metadata", "usage_buckets", "usage_items"]

# Counters of one subject in one hour. ``kind`` is "key" (an API key id), "identity"
# (a token or a person's session id) or "secret" (a secret path); ``hour`` is the unix
# time of the hour's start, in seconds.
usage_buckets = Table(
    "usage_buckets",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("subject", String(512), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("ok", Integer, nullable=False),  # answered below 400
    Column("denied", Integer, nullable=False),  # refused: 401, 403 (429 counted apart)
    Column("limited", Integer, nullable=False),  # refused by a rate limit (429)
    Column("errors", Integer, nullable=False),  # every other answer of 400 and more
    Column("first_at", BigInteger, nullable=False),  # unix microseconds
    Column("last_at", BigInteger, nullable=False),
)
Index("ix_usage_buckets_hour", usage_buckets.c.hour)

# The distinct values seen for one subject in one hour, a bounded number per dimension:
# ``dim`` is "source" (client address), "path" (secret path touched by a key or an
# identity) or "actor" (who touched a secret).
usage_items = Table(
    "usage_items",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("subject", String(512), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("dim", String(8), primary_key=True),
    Column("value", String(512), primary_key=True),
)
Index("ix_usage_items_hour", usage_items.c.hour)
