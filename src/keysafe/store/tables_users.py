"""Tables of the users capability, on the shared metadata (see tables.py).

People log in with a password and (once enrolled) a TOTP code; roles group policy
names; sessions hold only a keyed hash of their token. The TOTP secret is an envelope
sealed under the keyring (columns ``totp_*``), never plaintext.

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
    String,
    Table,
    Text,
)

from keysafe.store.tables import metadata

__all__ = [
    "login_name_failures",
    "metadata",
    "recovery_codes",
    "roles",
    "sessions",
    "user_roles",
    "users",
]

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),  # argon2id PHC string
    # The TOTP secret as an envelope under the keyring (NULL until enrolment starts).
    Column("totp_kek_version", Integer, nullable=True),
    Column("totp_wrapped_dek", LargeBinary, nullable=True),
    Column("totp_ciphertext", LargeBinary, nullable=True),
    Column("totp_confirmed", Boolean, nullable=False),
    # The last TOTP time step accepted: codes of that step or earlier are refused.
    Column("totp_last_step", BigInteger, nullable=True),
    Column("failed_count", Integer, nullable=False),  # consecutive failed logins
    Column("locked_until", BigInteger, nullable=True),  # unix microseconds
    Column("disabled_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("last_login_at", BigInteger, nullable=True),
    Column("last_login_from", String(64), nullable=True),
)

# Failed logins of names that belong to nobody, by a keyed hash of the name: kept in
# the database like a real user's count and lock, so that every worker and node answers
# an unknown name exactly as it answers a known one (no 401-versus-429 enumeration).
login_name_failures = Table(
    "login_name_failures",
    metadata,
    Column("name_hash", LargeBinary(32), primary_key=True),
    Column("failed_count", Integer, nullable=False),
    Column("locked_until", BigInteger, nullable=True),  # unix microseconds
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_login_name_failures_updated", login_name_failures.c.updated_at)

roles = Table(
    "roles",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("policies", Text, nullable=False),  # JSON list of policy names
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(128), ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True),
)
Index("ix_user_roles_role", user_roles.c.role)

# Single-use recovery codes: HMAC-SHA256 under the keyring's token key, never the code.
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("code_hash", LargeBinary(32), nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Written in batches (at most once a minute per session and process): see sessions.py.
    Column("last_seen_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # absolute lifetime
    Column("mfa_at", BigInteger, nullable=True),  # last second factor proved
    Column("revoked_at", BigInteger, nullable=True),
    Column("source", String(64), nullable=False),
)
Index("ix_sessions_user", sessions.c.user_id)
