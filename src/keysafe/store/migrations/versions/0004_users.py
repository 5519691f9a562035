"""Tables of the users capability (see keysafe.store.tables_users).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("policies", sa.Text, nullable=False, server_default=""))
    op.create_table(
        "users",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("totp_kek_version", sa.Integer, nullable=True),
        sa.Column("totp_wrapped_dek", sa.LargeBinary, nullable=True),
        sa.Column("totp_ciphertext", sa.LargeBinary, nullable=True),
        sa.Column("totp_confirmed", sa.Boolean, nullable=False),
        sa.Column("totp_last_step", sa.BigInteger, nullable=True),
        sa.Column("failed_count", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.BigInteger, nullable=True),
        sa.Column("disabled_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("last_login_at", sa.BigInteger, nullable=True),
        sa.Column("last_login_from", sa.String(64), nullable=True),
    )
    op.create_table(
        "roles",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("policies", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "user_roles",
        sa.Column(
            "user_id",
            sa.String(40),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "role",
            sa.String(128),
            sa.ForeignKey("roles.name", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_index("ix_user_roles_role", "user_roles", ["role"])
    op.create_table(
        "recovery_codes",
        sa.Column(
            "user_id",
            sa.String(40),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column(
            "user_id",
            sa.String(40),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_seen_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("mfa_at", sa.BigInteger, nullable=True),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.Column("source", sa.String(64), nullable=False),
    )
    op.create_index("ix_sessions_user", "sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_user", "sessions")
    op.drop_table("sessions")
    op.drop_table("recovery_codes")
    op.drop_index("ix_user_roles_role", "user_roles")
    op.drop_table("user_roles")
    op.drop_table("roles")
    op.drop_table("users")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("policies")
