"""Run the Alembic migrations that ship inside the package, one node at a time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# The advisory lock every keysafe node takes around its migrations on PostgreSQL (any
# constant both sides agree on: "keysafe1" as a big-endian 64-bit number). Persisted
# across versions: an old and a new node upgrading together must wait on the same lock.
MIGRATION_LOCK_ID: Final = 0x6B65_7973_6166_6531


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest revision, or to ``revision`` (idempotent).

    Several nodes may start at the same moment on an empty database: the migrations run
    in one transaction that first takes a lock, so the others wait for it, then find the
    schema current and do nothing. On PostgreSQL that is a transaction-scoped advisory
    lock, taken before Alembic reads ``alembic_version`` (DDL is transactional there,
    so a crashed node leaves nothing half done); on SQLite the transaction begins with
    ``BEGIN IMMEDIATE`` (``write_txn``), which already holds the database's write lock.
    """
    from alembic import command

    from keysafe.store.engine import write_txn

    cfg = alembic_config()
    with write_txn(engine) as conn:
        lock_for_migrations(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def known_revisions() -> list[str]:
    """Every revision the shipped migrations know, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def lock_for_migrations(conn: Connection) -> None:
    """Hold the migration lock until ``conn``'s transaction ends (PostgreSQL; SQLite's
    write transaction is the lock)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
