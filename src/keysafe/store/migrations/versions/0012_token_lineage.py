"""Tokens record the credential that minted them (kind and id), so that a token dies
with its creator; existing tokens get it from ``created_by`` where that says.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("parent_kind", sa.String(16), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.String(64), nullable=True))
    tokens = sa.table(
        "tokens",
        sa.column("id", sa.String),
        sa.column("mode", sa.String),
        sa.column("created_by", sa.String),
        sa.column("parent_kind", sa.String),
        sa.column("parent_id", sa.String),
    )
    users = sa.table("users", sa.column("id", sa.String), sa.column("name", sa.String))
    # Tokens minted before: the root token and tokens minted by a token or a key name
    # their creator's id; a person's ("user:<name>") is followed to the person.
    op.execute(
        tokens.update()
        .where(tokens.c.mode == "root")
        .values(parent_kind="root", parent_id=tokens.c.created_by)
    )
    for prefix, kind in (("tok_", "token"), ("key_", "key")):
        op.execute(
            tokens.update()
            .where(tokens.c.parent_kind.is_(None), tokens.c.created_by.like(prefix + "%"))
            .values(parent_kind=kind, parent_id=tokens.c.created_by)
        )
    person = (
        sa.select(users.c.id)
        .where(sa.literal("user:") + users.c.name == tokens.c.created_by)
        .scalar_subquery()
    )
    op.execute(
        tokens.update()
        .where(tokens.c.parent_kind.is_(None), tokens.c.created_by.like("user:%"))
        .values(parent_kind="user", parent_id=sa.func.coalesce(person, "deleted"))
    )


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("parent_id")
        batch.drop_column("parent_kind")
