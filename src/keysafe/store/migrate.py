"""Run the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    from keysafe.store.engine import write_txn

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with write_txn(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
