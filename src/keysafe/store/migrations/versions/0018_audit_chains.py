"""Audit writer chains: one hash chain per writing thread of each process, so that nodes
append without waiting on one another (see keysafe.audit.chains).

Existing events stay in the root chain ("", chain_seq = seq) and verify as before;
checkpoints gain their chain in their key. On PostgreSQL the trail's order number comes
from a sequence (no lock), started after the highest event.

Revision ID: 0018
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("chain", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("chain_seq", sa.BigInteger, nullable=False, server_default="0"))
    op.execute("UPDATE audit_events SET chain_seq = seq")
    op.create_index("ix_audit_events_chain", "audit_events", ["chain", "chain_seq"], unique=True)
    op.create_table(
        "audit_chains",
        sa.Column("chain", sa.String(128), primary_key=True),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.Column("start", sa.LargeBinary(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("mac", sa.LargeBinary(32), nullable=False),
    )
    # The checkpoints' key becomes (chain, n): rebuilt (a handful of rows).
    op.create_table(
        "audit_checkpoints_new",
        sa.Column("chain", sa.String(128), primary_key=True, server_default=""),
        sa.Column("n", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("mac", sa.LargeBinary(32), nullable=False),
    )
    op.execute(
        "INSERT INTO audit_checkpoints_new (chain, n, seq, hash, ts, mac)"
        " SELECT '', n, seq, hash, ts, mac FROM audit_checkpoints"
    )
    op.drop_table("audit_checkpoints")
    op.rename_table("audit_checkpoints_new", "audit_checkpoints")
    if op.get_context().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE audit_events_seq")
        op.execute(
            "SELECT setval('audit_events_seq',"
            " COALESCE((SELECT MAX(seq) FROM audit_events), 0) + 1, false)"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE audit_events_seq")
    op.create_table(
        "audit_checkpoints_old",
        sa.Column("n", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("mac", sa.LargeBinary(32), nullable=False),
    )
    op.execute(
        "INSERT INTO audit_checkpoints_old (n, seq, hash, ts, mac)"
        " SELECT n, seq, hash, ts, mac FROM audit_checkpoints WHERE chain = ''"
    )
    op.drop_table("audit_checkpoints")
    op.rename_table("audit_checkpoints_old", "audit_checkpoints")
    op.drop_table("audit_chains")
    op.drop_index("ix_audit_events_chain", table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("chain_seq")
        batch.drop_column("chain")
