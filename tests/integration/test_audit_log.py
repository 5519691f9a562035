"""The audit chain on a real database: tamper evidence, file sink, fail closed."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete, select, update
from vaultkit import Vault

from keysafe.access.models import RequestContext
from keysafe.audit.models import AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.errors import AuditUnavailable
from keysafe.store.engine import write_txn
from keysafe.store.tables import audit_events, audit_head

pytestmark = pytest.mark.anyio


async def _fill(vault: Vault, n: int = 6) -> None:
    for i in range(n):
        await vault.svc.secrets.write(vault.root, f"audit/K{i}", f"value-{i}")
        await vault.svc.secrets.read(vault.root, f"audit/K{i}")


async def test_intact_chain_verifies(vault: Vault) -> None:
    await _fill(vault)
    result = vault.svc.audit.verify()
    assert result.ok
    assert result.events == 12
    assert vault.svc.audit.verify_file().ok


async def test_edited_event_is_named(vault: Vault) -> None:
    await _fill(vault)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(
            update(audit_events).where(audit_events.c.seq == 5).values(actor="tok_innocent")
        )
    result = vault.svc.audit.verify()
    assert not result.ok
    assert result.first_bad == 5
    assert "altered" in result.reason


async def test_deleted_event_is_named(vault: Vault) -> None:
    await _fill(vault)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 7))
    result = vault.svc.audit.verify()
    assert not result.ok
    assert result.first_bad == 7
    assert "missing" in result.reason


async def test_reordered_events_are_named(vault: Vault) -> None:
    await _fill(vault)
    with write_txn(vault.svc.engine) as conn:
        rows = {
            r.seq: r
            for r in conn.execute(select(audit_events).where(audit_events.c.seq.in_([3, 4])))
        }
        for seq, other in ((3, 4), (4, 3)):
            src = rows[other]
            conn.execute(
                update(audit_events)
                .where(audit_events.c.seq == seq)
                .values(
                    ts=src.ts,
                    request_id=src.request_id,
                    actor=src.actor,
                    source=src.source,
                    operation=src.operation,
                    path=src.path,
                    outcome=src.outcome,
                    detail=src.detail,
                    prev_hash=src.prev_hash,
                    hash=src.hash,
                )
            )
    result = vault.svc.audit.verify()
    assert not result.ok
    assert result.first_bad == 3


async def test_removed_tail_is_noticed(vault: Vault) -> None:
    await _fill(vault)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq > 10))
    result = vault.svc.audit.verify()
    assert not result.ok
    assert "removed from the end" in result.reason


async def test_rehashing_without_the_key_does_not_help(vault: Vault) -> None:
    """Someone holding the database file cannot recompute the keyed chain."""
    import hashlib

    await _fill(vault, 2)
    with write_txn(vault.svc.engine) as conn:
        row = conn.execute(select(audit_events).where(audit_events.c.seq == 1)).one()
        forged = hashlib.sha256(row.prev_hash + b"forged").digest()
        conn.execute(
            update(audit_events).where(audit_events.c.seq == 1).values(detail="x", hash=forged)
        )
    assert vault.svc.audit.verify().first_bad == 1


async def test_file_sink_mirrors_the_chain_and_detects_edits(vault: Vault, tmp_path: Path) -> None:
    await _fill(vault, 3)
    path = tmp_path / "audit.jsonl"
    lines = path.read_bytes().splitlines()
    assert len(lines) == 6
    assert all("value-" not in line.decode() for line in lines)
    doc = orjson.loads(lines[2])
    doc["path"] = "audit/elsewhere"
    lines[2] = orjson.dumps(doc)
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = vault.svc.audit.verify_file()
    assert not result.ok
    assert result.first_bad == 3


async def test_unwritable_sink_fails_closed(vault: Vault) -> None:
    await vault.svc.secrets.write(vault.root, "fc/KEY", "must-not-leak")
    broken = AuditLog(vault.svc.engine, key=lambda: b"k" * 32, file_path=Path("/dev/full"))
    broken.start()
    vault.svc.secrets._audit = broken  # the same service, its audit sink now failing
    try:
        with pytest.raises(AuditUnavailable):
            await vault.svc.secrets.read(vault.root, "fc/KEY")
        with pytest.raises(AuditUnavailable):
            await vault.svc.secrets.write(vault.root, "fc/KEY", "second")
    finally:
        broken.stop()
        vault.svc.secrets._audit = vault.svc.audit
    # The refused write left nothing behind: still one version, chain intact.
    assert (await vault.svc.secrets.read(vault.root, "fc/KEY")).version == 1
    with vault.svc.engine.connect() as conn:
        head = conn.execute(select(audit_head.c.seq)).scalar_one()
    assert vault.svc.audit.verify().events == head


async def test_database_gone_fails_closed(vault: Vault) -> None:
    await vault.svc.secrets.write(vault.root, "gone/KEY", "v")
    with write_txn(vault.svc.engine) as conn:
        conn.exec_driver_sql("DROP TABLE audit_head")
    with pytest.raises(AuditUnavailable):
        await vault.svc.secrets.read(vault.root, "gone/KEY")


def test_event_fields_never_include_a_value() -> None:
    fields = set(AuditEvent.__slots__)
    assert "value" not in fields
    assert fields >= {"ts", "actor", "source", "operation", "path", "outcome", "request_id"}
    assert RequestContext.__slots__ == ("principal", "source", "request_id")
