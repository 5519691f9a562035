"""The token-lineage migration gives tokens minted before it their creator, read from
``created_by``, so that they too die with it (both engines)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from keysafe.store.engine import make_engine, write_txn
from keysafe.store.migrate import MIGRATIONS_DIR, upgrade


def _before_lineage() -> str:
    """The revision just before the lineage migration (whatever number it was given)."""
    for script in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions():
        if Path(script.path or "").name.endswith("_token_lineage.py"):
            assert isinstance(script.down_revision, str)
            return script.down_revision
    raise AssertionError("no token lineage migration")


def test_existing_tokens_learn_their_creator(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with write_txn(engine) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, _before_lineage())
        rows = [
            ("tok_root", "root", "root", "system"),
            ("tok_byroot", "scoped", "policy", "tok_root"),
            ("tok_bykey", "scoped", "policy", "key_0123"),
            ("tok_byada", "scoped", "policy", "user:ada"),
            ("tok_byghost", "scoped", "policy", "user:ghost"),
        ]
        with write_txn(engine) as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, name, password_hash, totp_confirmed, failed_count,"
                    " created_at, created_by) VALUES ('usr_ada', 'ada', 'x', false, 0, 0, 't')"
                )
            )
            for i, (token_id, kind, mode, creator) in enumerate(rows):
                conn.execute(
                    text(
                        "INSERT INTO tokens (id, token_hash, kind, prefix, mode, description,"
                        " created_by, created_at, policies) VALUES"
                        " (:id, :hash, :kind, '', :mode, '', :creator, 0, '')"
                    ),
                    {
                        "id": token_id,
                        "hash": bytes([i]) * 32,
                        "kind": kind,
                        "mode": mode,
                        "creator": creator,
                    },
                )
        upgrade(engine)
        with engine.connect() as conn:
            got = {
                r.id: (r.parent_kind, r.parent_id)
                for r in conn.execute(text("SELECT id, parent_kind, parent_id FROM tokens"))
            }
        assert got == {
            "tok_root": ("root", "system"),
            "tok_byroot": ("token", "tok_root"),
            "tok_bykey": ("key", "key_0123"),
            "tok_byada": ("user", "usr_ada"),
            # A person deleted before the migration: a parent that is never alive.
            "tok_byghost": ("user", "deleted"),
        }
    finally:
        engine.dispose()
