"""The audit log: group-committed, hash-chained, fail-closed.

Reads hand their events to ``record``; one flusher thread per process appends whatever
has queued in one transaction (group commit), so auditing does not cap throughput,
and each caller waits until its event is durable before it answers. Mutations append
their event inside their own transaction (``append_in_txn``), so a write and its audit
event commit together or not at all.

If no event can be written the caller gets ``AuditUnavailable`` (HTTP 503): fail closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from keysafe.audit.models import GENESIS_HASH, AuditEvent, ChainedEvent, chain, event_from_row, link
from keysafe.errors import AuditUnavailable, KeysafeError
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables import audit_events, audit_head

log = logging.getLogger("keysafe.audit")

_MAX_BATCH = 2048
_STOP = object()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    events: int
    first_bad: int | None = None
    reason: str = ""


class AuditLog:
    """Appends events to the database chain and, optionally, a JSON-lines file."""

    def __init__(
        self, engine: Engine, key: Callable[[], bytes], file_path: Path | None = None
    ) -> None:
        self._engine = engine
        self._key = key
        self._file_path = file_path
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._postgres = engine.dialect.name == "postgresql"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-flusher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None

    # -- appending -----------------------------------------------------------------------

    def submit(self, event: AuditEvent) -> Future[None]:
        """Queue ``event`` for the next group commit; the future completes when durable."""
        fut: Future[None] = Future()
        if self._thread is None:
            fut.set_exception(AuditUnavailable("audit log is not running"))
            return fut
        self._queue.put((event, fut))
        return fut

    async def record(self, event: AuditEvent) -> None:
        """Append ``event`` and wait until it is durable; raises AuditUnavailable."""
        await asyncio.wrap_future(self.submit(event))

    def record_sync(self, event: AuditEvent) -> None:
        self.submit(event).result(timeout=30)

    def append_in_txn(self, conn: Connection, events: list[AuditEvent]) -> list[ChainedEvent]:
        """Append inside the caller's write transaction (commits or rolls back with it)."""
        try:
            return self._append(conn, events)
        except KeysafeError:
            raise
        except Exception as exc:
            raise AuditUnavailable(f"audit event could not be written: {exc}") from exc

    def _append(self, conn: Connection, events: list[AuditEvent]) -> list[ChainedEvent]:
        query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        if self._postgres:
            # Appenders in every process serialise on the head row.
            query = query.with_for_update()
        head = conn.execute(query).first()
        seq, prev = (int(head.seq), bytes(head.hash)) if head else (0, GENESIS_HASH)
        chained = chain(self._key(), seq, prev, events)
        conn.execute(insert(audit_events), [c.as_row() for c in chained])
        last = chained[-1]
        if head is None:
            conn.execute(insert(audit_head).values(id=1, seq=last.seq, hash=last.hash))
        else:
            conn.execute(
                update(audit_head).where(audit_head.c.id == 1).values(seq=last.seq, hash=last.hash)
            )
        if self._file_path is not None:
            self._write_file(chained)
        return chained

    def _write_file(self, chained: list[ChainedEvent]) -> None:
        data = b"".join(orjson.dumps(c.as_json()) + b"\n" for c in chained)
        # O_APPEND under the database write lock keeps the file in chain order across
        # processes. Flushed to the OS like SQLite's WAL (survives a process crash).
        fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # type: ignore[arg-type]
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._flush(batch)  # type: ignore[arg-type]
            if stop:
                return

    def _flush(self, batch: list[tuple[AuditEvent, Future[None]]]) -> None:
        try:
            with write_txn(self._engine) as conn:
                self._append(conn, [event for event, _ in batch])
        except Exception as exc:
            log.error("audit write failed, failing %d operations closed: %s", len(batch), exc)
            error = AuditUnavailable("the audit trail cannot be written; operation refused")
            for _, fut in batch:
                fut.set_exception(error)
            return
        for _, fut in batch:
            fut.set_result(None)

    # -- reading and verifying -----------------------------------------------------------

    def events(self, after: int = 0, limit: int = 100) -> list[ChainedEvent]:
        with read_conn(self._engine) as conn:
            rows = conn.execute(
                select(audit_events)
                .where(audit_events.c.seq > after)
                .order_by(audit_events.c.seq)
                .limit(limit)
            )
            return [
                ChainedEvent(int(r.seq), event_from_row(r), bytes(r.prev_hash), bytes(r.hash))
                for r in rows
            ]

    def verify(self) -> VerifyResult:
        """Walk the database chain; name the first event that is altered, missing or moved."""
        key = self._key()
        checker = _ChainChecker(key)
        with read_conn(self._engine) as conn:
            head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
            rows = conn.execution_options(yield_per=2000).execute(
                select(audit_events).order_by(audit_events.c.seq)
            )
            for r in rows:
                bad = checker.feed(int(r.seq), event_from_row(r), bytes(r.prev_hash), bytes(r.hash))
                if bad is not None:
                    return bad
        return checker.finish((int(head.seq), bytes(head.hash)) if head is not None else None)

    def verify_file(self, path: Path | None = None) -> VerifyResult:
        """Walk the JSON-lines copy of the chain the same way."""
        path = path or self._file_path
        if path is None:
            return VerifyResult(ok=False, events=0, reason="no audit file is configured")
        checker = _ChainChecker(self._key())
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                try:
                    doc = orjson.loads(line)
                    event = AuditEvent(**{k: doc[k] for k in AuditEvent.__slots__})
                    seq, prev, digest = (
                        int(doc["seq"]),
                        bytes.fromhex(doc["prev_hash"]),
                        bytes.fromhex(doc["hash"]),
                    )
                except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
                    return VerifyResult(
                        False,
                        checker.count,
                        checker.expected,
                        f"line {lineno} is not a valid audit event",
                    )
                bad = checker.feed(seq, event, prev, digest)
                if bad is not None:
                    return bad
        return checker.finish(None)


class _ChainChecker:
    def __init__(self, key: bytes) -> None:
        self.key = key
        self.expected = 1
        self.prev = GENESIS_HASH
        self.count = 0

    def feed(self, seq: int, event: AuditEvent, prev: bytes, digest: bytes) -> VerifyResult | None:
        if seq != self.expected:
            return VerifyResult(
                False,
                self.count,
                self.expected,
                f"event {self.expected} is missing or out of order (found {seq})",
            )
        if prev != self.prev:
            return VerifyResult(
                False,
                self.count,
                seq,
                f"event {seq} does not follow event {seq - 1} (reordered or removed)",
            )
        if link(self.key, seq, prev, event) != digest:
            return VerifyResult(False, self.count, seq, f"event {seq} was altered")
        self.count += 1
        self.expected += 1
        self.prev = digest
        return None

    def finish(self, head: tuple[int, bytes] | None) -> VerifyResult:
        if head is not None and (head[0] != self.count or head[1] != self.prev):
            return VerifyResult(
                False,
                self.count,
                self.count + 1,
                f"the chain ends at event {self.count} but the head records event {head[0]}"
                " (events removed from the end)",
            )
        return VerifyResult(True, self.count)
