"""The audit chain on a real database: tamper evidence, truncation, file sink, fail closed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, delete, select, update
from vaultkit import Vault

from keysafe.access.models import RequestContext
from keysafe.audit.models import AuditEvent
from keysafe.audit.service import AuditLog, VerifyResult
from keysafe.config import load_settings
from keysafe.errors import AuditUnavailable
from keysafe.server.services import build_services
from keysafe.store.engine import write_txn
from keysafe.store.tables import audit_checkpoints, audit_events, audit_head
from keysafe.system.service import MODE_KEY

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


# -- truncation: the chain alone cannot show a cut tail; the anchors must ---------------


@pytest.fixture
def small_ckpt(engine: Engine, tmp_path: Path) -> Iterator[Vault]:
    """A vault whose audit chain is checkpointed every 4 events, with an audit file."""
    settings = load_settings(
        home=tmp_path / "home", audit_file=tmp_path / "audit.jsonl", audit_checkpoint_events=4
    )
    result = build_services(settings, engine=engine).system.initialize(1, 1, mode=MODE_KEY)
    svc = build_services(settings, engine=engine, unseal_key=result.shares[0])
    assert svc.system.auto_unseal()
    svc.audit.start()
    yield Vault(svc, result.root_token, result.shares[0])
    svc.close()


def _restarted(vault: Vault, file_path: Path | None) -> AuditLog:
    """The same trail seen by a freshly started server (no memory of its own commits)."""
    keyring = vault.svc.barrier.keyring()
    return AuditLog(
        vault.svc.engine,
        key=lambda: keyring.audit_hmac_key,
        file_path=file_path,
        anchored=lambda: keyring.audit_anchored,
    )


def _head(vault: Vault) -> Any:
    with vault.svc.engine.connect() as conn:
        return conn.execute(select(audit_head)).one()


def _cut_tail(vault: Vault, keep: int, head: Any | None = None) -> None:
    """Delete events after ``keep`` and point the head at event ``keep``: with the MAC of
    ``head`` (an older head row copied earlier) or the current, newer MAC."""
    with write_txn(vault.svc.engine) as conn:
        row = conn.execute(select(audit_events).where(audit_events.c.seq == keep)).one()
        conn.execute(delete(audit_events).where(audit_events.c.seq > keep))
        values: dict[str, Any] = {"seq": keep, "hash": row.hash}
        if head is not None:
            values["mac"] = head.mac
        conn.execute(update(audit_head).values(**values))


async def test_fresh_vault_verifies_with_no_events(vault: Vault) -> None:
    assert vault.svc.audit.verify() == VerifyResult(True, 0)
    assert vault.svc.audit.verify_file() == VerifyResult(True, 0)


async def test_tail_cut_and_head_moved_back_is_found(vault: Vault) -> None:
    await _fill(vault)
    _cut_tail(vault, 8)
    for log in (vault.svc.audit, _restarted(vault, None)):
        result = log.verify()
        assert not result.ok
        assert "head was altered or moved back" in result.reason
    # Appending re-signs the head; the appender checks it first and records the cut.
    await _fill(vault, 1)
    later = _restarted(vault, None).verify()
    assert not later.ok
    assert later.first_bad == 9
    assert "records that the trail was cut" in later.reason
    assert "found before appending after event 8" in later.reason
    with vault.svc.engine.connect() as conn:
        cuts = conn.execute(
            select(audit_events.c.seq).where(audit_events.c.operation == "audit:chain-cut")
        ).all()
    assert [c.seq for c in cuts] == [9]  # recorded once, not on every later append


async def test_tail_cut_with_an_old_head_copy_is_found(small_ckpt: Vault, tmp_path: Path) -> None:
    """An attacker who kept an older head row (MAC and all) cuts the tail and every newer
    checkpoint: the audit file's checkpoint and the server's memory still show it."""
    vault = small_ckpt
    await _fill(vault, 3)
    old_head = _head(vault)
    assert old_head.seq == 6
    await _fill(vault, 4)
    _cut_tail(vault, 6, head=old_head)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > 6))
    restarted = _restarted(vault, tmp_path / "audit.jsonl").verify()
    assert not restarted.ok
    assert "audit file checkpoint 3 records event 12" in restarted.reason
    assert "removed from the end" in restarted.reason
    assert restarted.first_bad == 7
    # With the file gone too, the running server remembers what it committed.
    (tmp_path / "audit.jsonl").unlink()
    same_process = vault.svc.audit.verify()
    assert not same_process.ok
    assert "this server's last commit records event 14" in same_process.reason


async def test_everything_deleted_is_found(vault: Vault) -> None:
    await _fill(vault)
    with write_txn(vault.svc.engine) as conn:
        for table in (audit_events, audit_head, audit_checkpoints):
            conn.execute(delete(table))
    result = _restarted(vault, None).verify()
    assert not result.ok
    assert "every event was deleted" in result.reason
    # The server goes on writing: a chain begun again from nothing still shows.
    await _fill(vault, 1)
    again = _restarted(vault, None).verify()
    assert not again.ok
    assert again.first_bad == 1
    assert "all earlier events were deleted" in again.reason


async def test_cut_file_is_found(vault: Vault, tmp_path: Path) -> None:
    await _fill(vault)
    path = tmp_path / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:5]))
    result = vault.svc.audit.verify_file()
    assert not result.ok
    assert result.events == 5
    assert "the database head records event 12" in result.reason
    path.write_bytes(b"")
    emptied = vault.svc.audit.verify_file()
    assert not emptied.ok
    assert "removed from the end" in emptied.reason


async def test_cut_file_with_its_checkpoints_is_found(small_ckpt: Vault, tmp_path: Path) -> None:
    vault = small_ckpt
    await _fill(vault, 5)
    path = tmp_path / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    checkpoints = [i for i, line in enumerate(lines) if b'"checkpoint"' in line]
    assert len(checkpoints) >= 2
    path.write_bytes(b"".join(lines[: checkpoints[0] + 1]))
    result = vault.svc.audit.verify_file()
    assert not result.ok
    assert "removed from the end" in result.reason


async def test_checkpoints_go_to_table_file_and_log(
    small_ckpt: Vault, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keysafe.audit")
    await _fill(small_ckpt, 4)
    with small_ckpt.svc.engine.connect() as conn:
        stored = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.n)).all()
    assert [r.n for r in stored] == list(range(1, len(stored) + 1))
    assert [r.seq for r in stored] == [4, 8]
    in_file = [
        orjson.loads(line)
        for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()
        if b'"checkpoint"' in line
    ]
    assert [(d["checkpoint"], d["seq"]) for d in in_file] == [(1, 4), (2, 8)]
    assert [d["mac"] for d in in_file] == [r.mac.hex() for r in stored]
    logged = [r.getMessage() for r in caplog.records if "audit checkpoint" in r.getMessage()]
    assert len(logged) == 2
    assert stored[1].mac.hex() in logged[1]
    assert small_ckpt.svc.audit.verify() == VerifyResult(True, 8)
    assert small_ckpt.svc.audit.verify_file() == VerifyResult(True, 8)


async def test_tampered_checkpoints_are_found(small_ckpt: Vault) -> None:
    vault = small_ckpt
    await _fill(vault, 6)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(update(audit_checkpoints).where(audit_checkpoints.c.n == 2).values(seq=7))
    result = vault.svc.audit.verify()
    assert not result.ok
    assert "database checkpoint 2 was altered" in result.reason
    with write_txn(vault.svc.engine) as conn:
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.n == 2))
    gap = vault.svc.audit.verify()
    assert not gap.ok
    assert "database checkpoint 2 is missing" in gap.reason


async def test_head_without_mac_is_not_trusted(vault: Vault) -> None:
    await _fill(vault, 2)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(update(audit_head).values(mac=None))
    result = vault.svc.audit.verify()
    assert not result.ok
    assert "no MAC" in result.reason


async def test_legacy_head_without_mac_verifies_and_is_signed_by_the_next_append(
    vault: Vault,
) -> None:
    """A vault initialised before heads were signed (its keyring not anchored)."""
    await _fill(vault, 2)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(update(audit_head).values(mac=None))
    keyring = vault.svc.barrier.keyring()
    legacy = AuditLog(vault.svc.engine, key=lambda: keyring.audit_hmac_key)
    legacy.start()
    try:
        assert legacy.verify() == VerifyResult(True, 4)
        legacy.record_sync(AuditEvent(1, "r", "tok_x", "127.0.0.1", "secret:read", "a/b", "ok"))
    finally:
        legacy.stop()
    assert _head(vault).mac is not None
    assert vault.svc.audit.verify() == VerifyResult(True, 5)


async def test_checkpoints_also_come_with_time(vault: Vault) -> None:
    """Few events, but time passes: a checkpoint at least every ``checkpoint_seconds``."""
    keyring = vault.svc.barrier.keyring()
    slow = AuditLog(
        vault.svc.engine,
        key=lambda: keyring.audit_hmac_key,
        anchored=lambda: keyring.audit_anchored,
        checkpoint_every=1000,
        checkpoint_seconds=1e-9,
    )
    slow.start()
    try:
        for i in range(3):
            slow.record_sync(AuditEvent(i, "r", "tok_x", "127.0.0.1", "secret:read", "a/b", "ok"))
    finally:
        slow.stop()
    with vault.svc.engine.connect() as conn:
        seqs = conn.execute(select(audit_checkpoints.c.seq).order_by(audit_checkpoints.c.n))
        assert [r.seq for r in seqs] == [1, 2, 3]
    assert vault.svc.audit.verify() == VerifyResult(True, 3)
