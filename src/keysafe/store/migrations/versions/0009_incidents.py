"""Tables of the incidents capability (see keysafe.store.tables_incidents).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("closed_at", sa.BigInteger, nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_incidents_opened_at", "incidents", ["opened_at"])
    for name, columns in (
        (
            "incident_items",
            [
                sa.Column("kind", sa.String(16), nullable=False),
                sa.Column("ref", sa.String(512), nullable=False),
                sa.Column("note", sa.Text, nullable=False),
            ],
        ),
        (
            "incident_steps",
            [
                sa.Column("ts", sa.BigInteger, nullable=False),
                sa.Column("phase", sa.String(16), nullable=False),
                sa.Column("action", sa.String(64), nullable=False),
                sa.Column("target", sa.String(512), nullable=False),
                sa.Column("actor", sa.String(64), nullable=False),
                sa.Column("outcome", sa.String(16), nullable=False),
                sa.Column("detail", sa.Text, nullable=False),
            ],
        ),
    ):
        op.create_table(
            name,
            sa.Column(
                "incident_id",
                sa.String(40),
                sa.ForeignKey("incidents.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            *columns,
        )
    op.create_table(
        "leak_report_digests",
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("key_identifier", sa.String(128), nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leak_report_digests")
    op.drop_table("incident_steps")
    op.drop_table("incident_items")
    op.drop_index("ix_incidents_opened_at", table_name="incidents")
    op.drop_table("incidents")
