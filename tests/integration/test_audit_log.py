"""The audit chain on a real database: tamper evidence, truncation, file sink, fail closed."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, delete, insert, select, update
from vaultkit import Vault

from keysafe.access.models import RequestContext
from keysafe.audit.models import AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.config import load_settings
from keysafe.errors import AuditUnavailable, CasMismatch
from keysafe.server.services import build_services
from keysafe.store.engine import write_txn
from keysafe.store.tables import audit_chains, audit_checkpoints, audit_events, audit_head
from keysafe.system.service import MODE_KEY

pytestmark = pytest.mark.anyio


async def _fill(vault: Vault, n: int = 6) -> None:
    for i in range(n):
        await vault.svc.secrets.write(vault.root, f"audit/K{i}", f"value-{i}")
        await vault.svc.secrets.read(vault.root, f"audit/K{i}")


def _writer_chains(vault: Vault) -> dict[str, list[Any]]:
    """Each writer chain's rows in chain order (the root chain left out)."""
    out: dict[str, list[Any]] = {}
    with vault.svc.engine.connect() as conn:
        for r in conn.execute(
            select(audit_events)
            .where(audit_events.c.chain != "")
            .order_by(audit_events.c.chain, audit_events.c.chain_seq)
        ):
            out.setdefault(r.chain, []).append(r)
    return out


def _writes(vault: Vault) -> tuple[str, list[Any]]:
    """The chain holding the secret writes (the batcher thread's)."""
    for name, rows in _writer_chains(vault).items():
        if rows[0].operation == "secret:write":
            return name, rows
    raise AssertionError("no chain of writes")


async def test_intact_chain_verifies(vault: Vault) -> None:
    await _fill(vault)
    result = vault.svc.audit.verify()
    assert result.ok, result.reason
    # Writes and reads come from two threads: two writer chains, each opened in the root.
    assert result.events == 12 + 2
    assert len(result.chains) == 3
    assert {r.events for r in result.chains if r.chain} == {6}
    assert vault.svc.audit.verify_file().ok


async def test_edited_event_is_named(vault: Vault) -> None:
    await _fill(vault)
    name, rows = _writes(vault)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(
            update(audit_events)
            .where(audit_events.c.seq == rows[2].seq)
            .values(actor="tok_innocent")
        )
    result = vault.svc.audit.verify()
    assert not result.ok
    assert result.first_bad == rows[2].seq
    assert result.chain == name
    assert f"event 3 of chain {name}" in result.reason
    assert "altered" in result.reason
    (bad,) = [r for r in result.chains if not r.ok]
    assert (bad.chain, bad.first_bad, bad.bad_seq) == (name, 3, rows[2].seq)


async def test_deleted_event_is_named(vault: Vault) -> None:
    await _fill(vault)
    name, rows = _writes(vault)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == rows[3].seq))
    result = vault.svc.audit.verify()
    assert not result.ok
    assert result.chain == name
    assert f"event 4 of chain {name} is missing" in result.reason


def _swap(vault: Vault, a: Any, b: Any, *columns: str) -> None:
    """Exchange ``columns`` (all but the order number by default) of two rows."""
    names = columns or tuple(c.name for c in audit_events.columns if c.name != "seq")
    with write_txn(vault.svc.engine) as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq.in_([a.seq, b.seq])))
        for row, other in ((a, b), (b, a)):
            values = {c.name: getattr(row, c.name) for c in audit_events.columns}
            values.update({c: getattr(other, c) for c in names})
            conn.execute(insert(audit_events).values(values))


async def test_reordered_events_are_named(vault: Vault) -> None:
    await _fill(vault)
    name, rows = _writes(vault)
    # Their order numbers swapped (the contents stay): the trail's order is hashed too.
    first, second = rows[1].seq, rows[2].seq
    with write_txn(vault.svc.engine) as conn:
        for old, new in ((first, -1), (second, first), (-1, second)):
            conn.execute(update(audit_events).where(audit_events.c.seq == old).values(seq=new))
    result = vault.svc.audit.verify()
    assert not result.ok
    assert result.chain == name
    assert "event 2 of chain" in result.reason


async def test_events_moved_within_a_chain_are_named(vault: Vault) -> None:
    await _fill(vault)
    name, rows = _writes(vault)
    _swap(vault, rows[2], rows[3], "ts", "request_id", "path", "detail", "prev_hash", "hash")
    result = vault.svc.audit.verify()
    assert not result.ok
    assert f"event 3 of chain {name} does not follow" in result.reason


async def test_cross_chain_swap_is_named(vault: Vault) -> None:
    await _fill(vault)
    chains = _writer_chains(vault)
    (a, rows_a), (b, rows_b) = sorted(chains.items())
    _swap(vault, rows_a[1], rows_b[1])  # the whole events, chain names included
    result = vault.svc.audit.verify()
    assert not result.ok
    assert {r.chain for r in result.chains if not r.ok} == {a, b}
    assert "event 2 of chain" in result.reason


async def test_inserted_events_are_named(vault: Vault) -> None:
    await _fill(vault)
    name, rows = _writes(vault)
    with write_txn(vault.svc.engine) as conn:
        fake = {c.name: getattr(rows[-1], c.name) for c in audit_events.columns}
        # Past the tail, linked to it (its hash cannot be made without the key).
        fake.update(seq=10_000, chain_seq=len(rows) + 1, prev_hash=rows[-1].hash)
        conn.execute(insert(audit_events).values(fake))
        # And a whole chain nobody opened.
        fake.update(seq=10_001, chain="intruder/1.1.aaaaaa", chain_seq=1)
        conn.execute(insert(audit_events).values(fake))
    result = vault.svc.audit.verify()
    assert not result.ok
    reasons = {r.chain: r.reason for r in result.chains if not r.ok}
    assert "beyond the chain's head" in reasons[name] or "altered" in reasons[name]
    assert "never opened" in reasons["intruder/1.1.aaaaaa"]


async def test_removed_tail_is_noticed(vault: Vault) -> None:
    await _fill(vault)
    name, rows = _writes(vault)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq >= rows[4].seq))
    result = _restarted(vault, None).verify()
    assert not result.ok
    assert result.chain == name
    assert "removed from the end" in result.reason
    # The head moved back too (it would need the key to sign it).
    with write_txn(vault.svc.engine) as conn:
        conn.execute(
            update(audit_chains)
            .where(audit_chains.c.chain == name)
            .values(seq=4, hash=rows[3].hash)
        )
    moved = _restarted(vault, None).verify()
    assert not moved.ok
    assert f"the head of chain {name} was altered or moved back" in moved.reason


async def test_removed_chain_is_noticed(vault: Vault) -> None:
    await _fill(vault)
    name, _ = _writes(vault)
    with write_txn(vault.svc.engine) as conn:
        for table in (audit_events, audit_chains, audit_checkpoints):
            conn.execute(delete(table).where(table.c.chain == name))
    result = _restarted(vault, None).verify()
    assert not result.ok
    assert result.chain == name
    assert "missing (chain removed)" in result.reason


async def test_rehashing_without_the_key_does_not_help(vault: Vault) -> None:
    """Someone holding the database file cannot recompute the keyed chain."""
    import hashlib

    await _fill(vault, 2)
    _, rows = _writes(vault)
    with write_txn(vault.svc.engine) as conn:
        forged = hashlib.sha256(rows[0].prev_hash + b"forged").digest()
        conn.execute(
            update(audit_events)
            .where(audit_events.c.seq == rows[0].seq)
            .values(detail="x", hash=forged)
        )
    assert vault.svc.audit.verify().first_bad == rows[0].seq


async def test_file_sink_mirrors_the_chain_and_detects_edits(vault: Vault, tmp_path: Path) -> None:
    await _fill(vault, 3)
    path = tmp_path / "audit.jsonl"
    lines = path.read_bytes().splitlines()
    # Two open lines (one per writer chain), then their events: never the root's.
    assert len(lines) == 2 + 6
    assert all("value-" not in line.decode() for line in lines)
    docs = [orjson.loads(line) for line in lines]
    assert sum("open" in d for d in docs) == 2
    at = next(i for i, d in enumerate(docs) if d.get("chain_seq") == 2)
    docs[at]["path"] = "audit/elsewhere"
    lines[at] = orjson.dumps(docs[at])
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = vault.svc.audit.verify_file()
    assert not result.ok
    assert result.chain == docs[at]["chain"]
    assert f"event 2 of chain {docs[at]['chain']} (seq {docs[at]['seq']}) was altered" in (
        result.reason
    )


async def test_failed_commit_writes_no_file_line(vault: Vault, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _fill(vault, 1)
    before = path.read_bytes()
    event = AuditEvent(1, "r", "tok_x", "127.0.0.1", "secret:write", "a/b", "ok")

    def fails_after_appending() -> None:
        with write_txn(vault.svc.engine) as conn:
            vault.svc.audit.append_in_txn(conn, [event])
            raise RuntimeError("the operation failed after its event was appended")

    with pytest.raises(RuntimeError):
        fails_after_appending()
    # A write refused by its check-and-set inside a group commit: its savepoint rolls back.
    with pytest.raises(CasMismatch):
        await vault.svc.secrets.write(vault.root, "audit/K0", "v", cas=7)
    after = path.read_bytes()
    assert after.startswith(before)
    # Only the refusal itself was recorded (committed on its own), nothing that rolled back.
    added = [orjson.loads(line) for line in after[len(before) :].splitlines()]
    assert [(d["operation"], d["outcome"]) for d in added if "operation" in d] == [
        ("secret:write", "error")
    ]
    assert vault.svc.audit.verify().ok
    assert vault.svc.audit.verify_file().ok


async def test_unwritable_sink_fails_closed(vault: Vault, tmp_path: Path) -> None:
    await vault.svc.secrets.write(vault.root, "fc/KEY", "must-not-leak")
    keyring = vault.svc.barrier.keyring()
    broken = AuditLog(
        vault.svc.engine, key=lambda: keyring.audit_hmac_key, file_path=tmp_path / "gone" / "a"
    )
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
    assert vault.svc.audit.verify().ok


async def test_full_disk_after_commit_refuses_what_follows(vault: Vault) -> None:
    """A commit cannot be taken back when its file write fails (disk full): the
    operation stands, the file lacks its line, and later appends are refused."""
    await vault.svc.secrets.write(vault.root, "fc/KEY", "v")
    keyring = vault.svc.barrier.keyring()
    full = AuditLog(
        vault.svc.engine, key=lambda: keyring.audit_hmac_key, file_path=Path("/dev/full")
    )
    full.start()
    vault.svc.secrets._audit = full
    try:
        # Committed, then its line fails (on PostgreSQL the chain's open line, written
        # before the first append commits, fails first and refuses it already).
        with contextlib.suppress(AuditUnavailable):
            await vault.svc.secrets.read(vault.root, "fc/KEY")
        with pytest.raises(AuditUnavailable):
            await vault.svc.secrets.read(vault.root, "fc/KEY")
        assert full.sink_problem() is not None
    finally:
        full.stop()
        vault.svc.secrets._audit = vault.svc.audit


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


async def test_fresh_vault_verifies_with_no_events(vault: Vault) -> None:
    for result in (vault.svc.audit.verify(), vault.svc.audit.verify_file()):
        assert (result.ok, result.events) == (True, 0)


async def test_cut_chain_is_recorded_before_appending_again(vault: Vault) -> None:
    await _fill(vault)
    name, rows = _writes(vault)
    with write_txn(vault.svc.engine) as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq > rows[3].seq))
        conn.execute(
            update(audit_chains)
            .where(audit_chains.c.chain == name)
            .values(seq=4, hash=rows[3].hash)
        )
    # Appending re-signs the head; the appender checks it first, records the cut and
    # goes on in a new chain.
    await _fill(vault, 1)
    later = _restarted(vault, None).verify()
    assert not later.ok
    reasons = " | ".join(r.reason for r in later.chains)
    assert "records that the trail was cut" in reasons
    assert f"chain {name}: its head (event 4) was altered" in reasons
    with vault.svc.engine.connect() as conn:
        cuts = conn.execute(
            select(audit_events.c.seq).where(audit_events.c.operation == "audit:chain-cut")
        ).all()
    assert len(cuts) == 1  # recorded once, not on every later append


async def test_tail_cut_with_an_old_head_copy_is_found(small_ckpt: Vault, tmp_path: Path) -> None:
    """An attacker who kept an older head row (MAC and all) cuts the tail and every newer
    checkpoint: the audit file's checkpoint and the server's memory still show it."""
    vault = small_ckpt
    await _fill(vault, 3)
    name, _ = _writes(vault)
    with vault.svc.engine.connect() as conn:
        old_head = conn.execute(select(audit_chains).where(audit_chains.c.chain == name)).one()
    assert old_head.seq == 3
    await _fill(vault, 5)
    with write_txn(vault.svc.engine) as conn:
        mine = audit_events.c.chain == name
        conn.execute(delete(audit_events).where(mine, audit_events.c.chain_seq > 3))
        conn.execute(
            update(audit_chains)
            .where(audit_chains.c.chain == name)
            .values(seq=3, hash=old_head.hash, mac=old_head.mac)
        )
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.chain == name))
    restarted = _restarted(vault, tmp_path / "audit.jsonl").verify()
    assert not restarted.ok
    assert restarted.chain == name
    assert "audit file checkpoint 2 records event 8" in restarted.reason
    assert "removed from the end" in restarted.reason
    # With the file gone too, the running server remembers what it committed.
    (tmp_path / "audit.jsonl").unlink()
    same_process = vault.svc.audit.verify()
    assert not same_process.ok
    assert "this server's last commit records event 8" in same_process.reason


async def test_everything_deleted_is_found(vault: Vault) -> None:
    await _fill(vault)
    with write_txn(vault.svc.engine) as conn:
        for table in (audit_events, audit_head, audit_chains, audit_checkpoints):
            conn.execute(delete(table))
    result = _restarted(vault, None).verify()
    assert not result.ok
    assert "every event was deleted" in result.reason
    # The server goes on writing: a chain begun again from nothing still shows.
    await _fill(vault, 1)
    again = _restarted(vault, None).verify()
    assert not again.ok
    assert "all earlier events were deleted" in again.reason


async def test_cut_file_is_found(vault: Vault, tmp_path: Path) -> None:
    await _fill(vault)
    path = tmp_path / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:5]))
    result = vault.svc.audit.verify_file()
    assert not result.ok
    assert "the database head records event 6" in result.reason
    path.write_bytes(b"")
    emptied = vault.svc.audit.verify_file()
    assert not emptied.ok
    assert "is in the database but not in the file" in emptied.reason


async def test_cut_file_with_its_checkpoints_is_found(small_ckpt: Vault, tmp_path: Path) -> None:
    vault = small_ckpt
    await _fill(vault, 9)
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
    await _fill(small_ckpt, 8)
    with small_ckpt.svc.engine.connect() as conn:
        stored = conn.execute(
            select(audit_checkpoints).order_by(audit_checkpoints.c.chain, audit_checkpoints.c.n)
        ).all()
    assert sorted(r.chain for r in stored) == sorted(2 * list(_writer_chains(small_ckpt)))
    assert [(r.n, r.seq) for r in stored] == [(1, 4), (2, 8)] * 2
    in_file = [
        orjson.loads(line)
        for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()
        if b'"checkpoint"' in line
    ]
    assert sorted(d["mac"] for d in in_file) == sorted(r.mac.hex() for r in stored)
    logged = [r.getMessage() for r in caplog.records if "audit checkpoint" in r.getMessage()]
    assert len(logged) == 4
    assert all(any(r.mac.hex() in line for line in logged) for r in stored)
    for result in (small_ckpt.svc.audit.verify(), small_ckpt.svc.audit.verify_file()):
        assert result.ok, result.reason


async def test_tampered_checkpoints_are_found(small_ckpt: Vault) -> None:
    vault = small_ckpt
    await _fill(vault, 12)
    name, _ = _writes(vault)
    mine = audit_checkpoints.c.chain == name
    with write_txn(vault.svc.engine) as conn:
        conn.execute(
            update(audit_checkpoints).where(mine, audit_checkpoints.c.n == 2).values(seq=7)
        )
    result = vault.svc.audit.verify()
    assert not result.ok
    assert "database checkpoint 2 was altered" in result.reason
    with write_txn(vault.svc.engine) as conn:
        conn.execute(delete(audit_checkpoints).where(mine, audit_checkpoints.c.n == 2))
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
        checked = legacy.verify()
        assert (checked.ok, checked.events) == (True, 4 + 2)
        legacy.record_sync(AuditEvent(1, "r", "tok_x", "127.0.0.1", "secret:read", "a/b", "ok"))
    finally:
        legacy.stop()
    assert _head(vault).mac is not None  # its chain opened in the root: the head re-signed
    result = vault.svc.audit.verify()
    assert (result.ok, result.events) == (True, 4 + 2 + 2)


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
        seqs = conn.execute(
            select(audit_checkpoints.c.seq)
            .where(audit_checkpoints.c.chain != "")
            .order_by(audit_checkpoints.c.n)
        )
        assert [r.seq for r in seqs] == [1, 2, 3]
    assert vault.svc.audit.verify().ok
