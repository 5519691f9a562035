"""Audit truncation anchors (a MAC on the chain head, a table of signed checkpoints) and
failed logins of unknown names kept in the database (shared by every worker).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("mac", sa.LargeBinary(32), nullable=True))
    op.create_table(
        "audit_checkpoints",
        sa.Column("n", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("mac", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "login_name_failures",
        sa.Column("name_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("failed_count", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_login_name_failures_updated", "login_name_failures", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_login_name_failures_updated", table_name="login_name_failures")
    op.drop_table("login_name_failures")
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("mac")
