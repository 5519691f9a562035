"""Tables of the monitor capability (see keysafe.store.tables_monitor).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_buckets",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(512), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("ok", sa.Integer, nullable=False),
        sa.Column("denied", sa.Integer, nullable=False),
        sa.Column("limited", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("first_at", sa.BigInteger, nullable=False),
        sa.Column("last_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_buckets_hour", "usage_buckets", ["hour"])
    op.create_table(
        "usage_items",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(512), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("dim", sa.String(8), primary_key=True),
        sa.Column("value", sa.String(512), primary_key=True),
    )
    op.create_index("ix_usage_items_hour", "usage_items", ["hour"])


def downgrade() -> None:
    op.drop_index("ix_usage_items_hour", "usage_items")
    op.drop_table("usage_items")
    op.drop_index("ix_usage_buckets_hour", "usage_buckets")
    op.drop_table("usage_buckets")
