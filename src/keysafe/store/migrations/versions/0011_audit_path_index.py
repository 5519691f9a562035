"""Audit events indexed by path and time: a secret's usage is read from the trail.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_path_ts", "audit_events", ["path", "ts"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_path_ts", table_name="audit_events")
