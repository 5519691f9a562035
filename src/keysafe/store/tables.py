"""The tables, as SQLAlchemy Core metadata. Alembic migrations are written against them.

Table and column names are persisted: only ever add (with a migration).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Key/value rows for the vault itself: seal configuration, the sealed keyring, seal flag.
sys_state = Table(
    "sys_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("path", String(512), nullable=False, unique=True),
    Column("current_version", Integer, nullable=False, default=0),
    Column("max_versions", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("owner", String(256), nullable=False, default=""),
    Column("tags", Text, nullable=False, default="{}"),
    Column("expires_at", BigInteger, nullable=True),  # unix microseconds
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

secret_versions = Table(
    "secret_versions",
    metadata,
    Column("secret_id", Integer, ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("format", Integer, nullable=False),
    Column("kek_version", Integer, nullable=False),
    Column("wrapped_dek", LargeBinary, nullable=True),  # NULL once destroyed
    Column("ciphertext", LargeBinary, nullable=True),  # NULL once destroyed
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    Column("destroyed", Boolean, nullable=False, default=False),
)
Index("ix_secret_versions_kek", secret_versions.c.kek_version)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # "root" | "scoped"
    Column("prefix", String(512), nullable=False, default=""),
    Column("mode", String(16), nullable=False),  # "root" | "read" | "write"
    Column("description", Text, nullable=False, default=""),
    Column("created_by", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    # Policy names (comma-separated) a policy-bound token carries; empty for mode tokens.
    Column("policies", Text, nullable=False, server_default=""),
    # The credential that minted it, which it may never outlive (access/lineage.py):
    # kind "root" | "token" | "key" | "session" | "user", and that credential's id.
    Column("parent_kind", String(16), nullable=True),
    Column("parent_id", String(64), nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("path", String(512), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    # The node that served the operation ("" on events written before migration 0018);
    # hashed into the chain when not empty (see keysafe.audit.models).
    Column("node", String(64), nullable=False, server_default=""),
    # The writer chain it belongs to and its place there (migration 0018): "" is the root
    # chain, which holds every earlier event (chain_seq = seq) (see keysafe.audit.chains).
    Column("chain", String(128), nullable=False, server_default=""),
    Column("chain_seq", BigInteger, nullable=False, server_default="0"),
)
Index("ix_audit_events_chain", audit_events.c.chain, audit_events.c.chain_seq, unique=True)
# A secret's usage (who touched it, when, from where) is read from the trail by path.
Index("ix_audit_events_path_ts", audit_events.c.path, audit_events.c.ts)

# The chain head: one row, updated in the same transaction as every append, so that
# a removed tail is noticed and appends from several processes serialise on it.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    # HMAC under the audit key over (seq, hash): moving the head back after cutting the
    # tail needs the key. NULL only on rows written before migration 0014.
    Column("mac", LargeBinary(32), nullable=True),
)

# The head of each writer chain (one per writing thread of a process, migration 0018):
# only its writer updates it, so no node waits on another to append. ``start`` is the
# chain's random first link, recorded in the root chain when it opened.
audit_chains = Table(
    "audit_chains",
    metadata,
    Column("chain", String(128), primary_key=True),
    Column("node", String(64), nullable=False),
    Column("opened_at", BigInteger, nullable=False),
    Column("start", LargeBinary(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("mac", LargeBinary(32), nullable=False),
)

# Signed checkpoints of each chain, numbered without gaps (see keysafe.audit.models).
# Also copied to the audit file and the server log, so a cut database is found.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("chain", String(128), primary_key=True, server_default=""),
    Column("n", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("mac", LargeBinary(32), nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("text", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

services = Table(
    "services",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("policies", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("disabled_at", BigInteger, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_hash", LargeBinary(32), nullable=False, unique=True),
    Column("display_prefix", String(24), nullable=False),
    Column("key_space", String(64), nullable=False),
    Column("owner_type", String(16), nullable=False),
    Column("owner_id", String(40), nullable=False),
    Column("description", Text, nullable=False),
    Column("policies", Text, nullable=False),
    Column("cidrs", Text, nullable=False),
    Column("rate_limit", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("grace_until", BigInteger, nullable=True),
    Column("replaced_by", String(40), nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
    Column("last_used_from", String(64), nullable=True),
    Column("use_count", BigInteger, nullable=False),
    # A suspended key is refused like a revoked one until an admin resumes it (0010).
    Column("suspended_at", BigInteger, nullable=True),
    Column("suspended_reason", String(200), nullable=True),
)
Index("ix_api_keys_owner", api_keys.c.owner_type, api_keys.c.owner_id)

jwt_revocations = Table(
    "jwt_revocations",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)

# Cache invalidations announced by writers and polled by every worker of a SQLite node
# (``keysafe.store.invalidations``); rows live about a minute (0020).
invalidations = Table(
    "invalidations",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("ident", String(200), nullable=False),
    Column("at", BigInteger, nullable=False),
    # Never reuse a number once rows are pruned: pollers track the last one they saw.
    sqlite_autoincrement=True,
)
Index("ix_invalidations_at", invalidations.c.at)

# Each capability added later keeps its tables in its own module on this metadata; they
# are imported here so that ``metadata`` always describes the whole schema.
from keysafe.store import (  # noqa: E402, F401
    tables_alerts,
    tables_incidents,
    tables_leases,
    tables_monitor,
    tables_nodes,
    tables_rotation,
    tables_users,
)
