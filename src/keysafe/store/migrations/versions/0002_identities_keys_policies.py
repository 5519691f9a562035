"""Least privilege: policies, services, scoped API keys.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "services",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("policies", sa.Text, nullable=False),  # JSON list of policy names
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("disabled_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("display_prefix", sa.String(24), nullable=False),
        # Key spaces keep keysafe's own keys apart from keys teams later issue to the
        # consumers of their APIs; only "keysafe" is used so far.
        sa.Column("key_space", sa.String(64), nullable=False),
        sa.Column("owner_type", sa.String(16), nullable=False),  # "service"
        sa.Column("owner_id", sa.String(40), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("policies", sa.Text, nullable=False),  # JSON list of policy names
        sa.Column("cidrs", sa.Text, nullable=False),  # JSON list; empty = anywhere
        sa.Column("rate_limit", sa.String(32), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.Column("grace_until", sa.BigInteger, nullable=True),
        sa.Column("replaced_by", sa.String(40), nullable=True),
        sa.Column("last_used_at", sa.BigInteger, nullable=True),
        sa.Column("last_used_from", sa.String(64), nullable=True),
        sa.Column("use_count", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_api_keys_owner", "api_keys", ["owner_type", "owner_id"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_owner", "api_keys")
    for name in ("api_keys", "services", "policies"):
        op.drop_table(name)
