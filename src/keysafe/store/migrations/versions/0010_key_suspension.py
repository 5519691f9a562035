"""API keys can be suspended (reversibly) as well as revoked (for good).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("suspended_at", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("suspended_reason", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("suspended_reason")
        batch.drop_column("suspended_at")
