"""Tables of the rotation capability (see keysafe.store.tables_rotation).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rotation_policies",
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("rotator", sa.String(64), nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("every_seconds", sa.BigInteger, nullable=False),
        sa.Column("grace_seconds", sa.BigInteger, nullable=False),
        sa.Column("next_due", sa.BigInteger, nullable=False),
        sa.Column("claimed_by", sa.String(40), nullable=True),
        sa.Column("claimed_until", sa.BigInteger, nullable=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("active_run", sa.String(40), nullable=True),
        sa.Column("retire_run", sa.String(40), nullable=True),
        sa.Column("retire_at", sa.BigInteger, nullable=True),
        sa.Column("last_run", sa.String(40), nullable=True),
        sa.Column("last_outcome", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_run_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_rotation_policies_due", "rotation_policies", ["next_due"])
    op.create_table(
        "rotation_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("rotator", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("base_version", sa.Integer, nullable=True),
        sa.Column("new_version", sa.Integer, nullable=True),
        sa.Column("pending_format", sa.Integer, nullable=True),
        sa.Column("pending_kek", sa.Integer, nullable=True),
        sa.Column("pending_dek", sa.LargeBinary, nullable=True),
        sa.Column("pending_value", sa.LargeBinary, nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_rotation_runs_path", "rotation_runs", ["path", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_rotation_runs_path", "rotation_runs")
    op.drop_table("rotation_runs")
    op.drop_index("ix_rotation_policies_due", "rotation_policies")
    op.drop_table("rotation_policies")
