"""Cache invalidations polled by the workers of a SQLite node (PostgreSQL nodes use
LISTEN/NOTIFY, Redis deployments pub/sub; the table is then simply unused).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invalidations",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ident", sa.String(200), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_invalidations_at", "invalidations", ["at"])


def downgrade() -> None:
    op.drop_index("ix_invalidations_at", table_name="invalidations")
    op.drop_table("invalidations")
