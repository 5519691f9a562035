"""A trail written before writer chains existed (one chain, its head, its checkpoints,
its file) still verifies after the migration, as the root chain, and goes on verifying
once new events arrive in writer chains (both engines)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import insert, text, update

from keysafe.audit.models import AuditEvent, Checkpoint, chain, head_mac
from keysafe.audit.service import AuditLog
from keysafe.store.engine import make_engine, write_txn
from keysafe.store.migrate import MIGRATIONS_DIR, upgrade
from keysafe.store.tables import audit_events

KEY = os.urandom(32)


def _before_chains() -> str:
    for script in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions():
        if Path(script.path or "").name.endswith("_audit_chains.py"):
            assert isinstance(script.down_revision, str)
            return script.down_revision
    raise AssertionError("no audit chains migration")


def test_a_single_chain_trail_verifies_after_the_migration(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    audit_file = tmp_path / "audit.jsonl"
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with write_txn(engine) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, _before_chains())
        events = [
            AuditEvent(
                1_000 + i, f"r{i}", "tok_x", "10.0.0.1", "secret:read", "a/b", "ok", "", "n1"
            )
            for i in range(5)
        ]
        chained = chain(KEY, 0, os.urandom(32), events)  # the old format, seq 1..5
        cp = Checkpoint.make(KEY, 1, 4, chained[3].hash, 5_000)
        last = chained[-1]
        with write_txn(engine) as conn:
            for c in chained:
                row = c.as_row()
                del row["chain"], row["chain_seq"]  # the columns of then
                conn.execute(insert(audit_events).values(row))
            conn.execute(
                text("INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, :seq, :hash, :mac)"),
                {"seq": last.seq, "hash": last.hash, "mac": head_mac(KEY, last.seq, last.hash)},
            )
            conn.execute(
                text(
                    "INSERT INTO audit_checkpoints (n, seq, hash, ts, mac)"
                    " VALUES (:n, :seq, :hash, :ts, :mac)"
                ),
                {"n": cp.n, "seq": cp.seq, "hash": cp.hash, "ts": cp.ts, "mac": cp.mac},
            )
        lines = [orjson.dumps(c.as_json()) for c in chained]
        lines.insert(4, orjson.dumps(cp.as_json()))
        audit_file.write_bytes(b"\n".join(lines) + b"\n")

        upgrade(engine)

        log = AuditLog(engine, key=lambda: KEY, file_path=audit_file, anchored=lambda: True)
        log.start()
        try:
            for result in (log.verify(), log.verify_file()):
                assert (result.ok, result.events) == (True, 5), result
            # New events go to a writer chain, opened in the root chain after event 5.
            log.record_sync(AuditEvent(9_000, "r", "tok_y", "", "secret:write", "c/d", "ok"))
            log.record_sync(AuditEvent(9_001, "r", "tok_y", "", "secret:read", "c/d", "ok"))
            whole = log.verify()
            assert (whole.ok, whole.events) == (True, 5 + 1 + 2), whole
            assert [c.events for c in whole.chains] == [6, 2]
            own_file = log.verify_file()
            assert (own_file.ok, own_file.events) == (True, 5 + 2), own_file
            # An old event edited is still named by its number.
            with write_txn(engine) as conn:
                conn.execute(update(audit_events).where(audit_events.c.seq == 3).values(actor="x"))
            broken = log.verify()
            assert (broken.ok, broken.first_bad, broken.chain) == (False, 3, "")
            assert "event 3 was altered" in broken.reason
        finally:
            log.stop()
    finally:
        engine.dispose()


def test_the_order_numbers_continue_after_the_old_events(db_url: str) -> None:
    """On PostgreSQL the sequence starts after the highest old event."""
    engine = make_engine(db_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with write_txn(engine) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, _before_chains())
        (c,) = chain(KEY, 41, os.urandom(32), [AuditEvent(1, "r", "a", "", "x:y", "p", "ok")])
        with write_txn(engine) as conn:
            row = c.as_row()
            del row["chain"], row["chain_seq"]
            conn.execute(insert(audit_events).values(row))
        upgrade(engine)
        log = AuditLog(engine, key=lambda: KEY)
        log.start()
        try:
            log.record_sync(AuditEvent(2, "r", "a", "", "x:y", "p", "ok"))
        finally:
            log.stop()
        with engine.connect() as conn:
            seqs = [r.seq for r in conn.execute(audit_events.select().order_by(audit_events.c.seq))]
        assert seqs[0] == 42
        assert min(seqs[1:]) > 42
    finally:
        engine.dispose()
