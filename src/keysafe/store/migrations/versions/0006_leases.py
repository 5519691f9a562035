"""Tables of the leases capability (see keysafe.store.tables_leases).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dynamic_roles",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("connection_secret", sa.String(512), nullable=False),
        sa.Column("grants", sa.Text, nullable=False),
        sa.Column("default_ttl", sa.Integer, nullable=False),
        sa.Column("max_ttl", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("role", sa.String(256), nullable=False),
        sa.Column("username", sa.String(63), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("max_expires_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.Column("revoke_error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(40), nullable=True),
        sa.Column("claimed_until", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_leases_state_expires", "leases", ["state", "expires_at"])
    op.create_index("ix_leases_role", "leases", ["role"])


def downgrade() -> None:
    op.drop_index("ix_leases_role", "leases")
    op.drop_index("ix_leases_state_expires", "leases")
    op.drop_table("leases")
    op.drop_table("dynamic_roles")
