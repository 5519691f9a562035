"""The audit log: group-committed, hash-chained, fail-closed.

Reads hand their events to ``record``; whatever has queued during one turn of the event
loop is appended in one transaction (group commit), so auditing does not cap throughput,
and each caller waits until its event is durable before it answers. Mutations append
their event inside their own transaction (``append_in_txn``), so a write and its audit
event commit together or not at all.

If no event can be written the caller gets ``AuditUnavailable`` (HTTP 503): fail closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select

from keysafe.audit.models import (
    GENESIS_HASH,
    OP_CHAIN_CUT,
    OUTCOME_ERROR,
    AuditEvent,
    ChainedEvent,
    Checkpoint,
    chain,
    event_from_row,
    head_mac,
)
from keysafe.audit.verify import Head, VerifyResult, verify_database, verify_file
from keysafe.errors import AuditUnavailable, KeysafeError, Sealed
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.offload import wait_bound
from keysafe.store.tables import audit_events, audit_head

log = logging.getLogger("keysafe.audit")
# Checkpoints on their own logger, which the server sends to its log at INFO.
CHECKPOINT_LOGGER = "keysafe.audit.checkpoint"
_checkpoint_log = logging.getLogger(CHECKPOINT_LOGGER)

_BUSY_RETRY_SECONDS = 0.0005
_BUSY_GIVE_UP_SECONDS = 5.0


class _WriteLockBusy(Exception):
    """SQLite's write lock is held by another connection right now."""


_INSERT_EVENT_SQL = (
    "INSERT INTO audit_events (seq, ts, request_id, actor, source, operation, path, outcome,"
    " detail, prev_hash, hash, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


_INSERT_CHECKPOINT_SQL = (
    "INSERT INTO audit_checkpoints (n, seq, hash, ts, mac) VALUES (?, ?, ?, ?, ?)"
)
_REFUSED = "the audit trail cannot be written; operation refused"

__all__ = ["CHECKPOINT_LOGGER", "AuditLog", "VerifyResult", "anchor_chain"]


def anchor_chain(conn: Connection, key: bytes) -> None:
    """Start the chain of a vault being initialised: a head at event 0 under a MAC.

    Its hash is random, so the first event links to something only this vault has; a
    chain begun again from nothing (after every row was deleted) shows (see verify.py).
    """
    if conn.execute(select(audit_head.c.id).where(audit_head.c.id == 1)).first() is not None:
        return
    start = os.urandom(32)
    conn.execute(insert(audit_head).values(id=1, seq=0, hash=start, mac=head_mac(key, 0, start)))


def _cut_event(seq: int, why: str) -> AuditEvent:
    return AuditEvent(
        ts=time.time_ns() // 1000,
        request_id="",
        actor="keysafe",
        source="",
        operation=OP_CHAIN_CUT,
        path="sys/audit",
        outcome=OUTCOME_ERROR,
        detail=f"found before appending after event {seq}: {why}",
    )


class AuditLog:
    """Appends events to the database chain and, optionally, a JSON-lines file.

    Every append (one per group commit) re-signs the head; every ``checkpoint_every``
    events or ``checkpoint_seconds`` a numbered checkpoint is signed, stored, appended
    to the file and logged. ``anchored`` says whether the vault's chain was anchored at
    initialisation (from the keyring). ``node`` (the serving node's id) is written into
    every event appended without one, and hashed with it.
    """

    def __init__(
        self,
        engine: Engine,
        key: Callable[[], bytes],
        file_path: Path | None = None,
        *,
        anchored: Callable[[], bool] = lambda: False,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        node: str = "",
    ) -> None:
        self._engine = engine
        self._node = node
        self._key = key
        self._anchored = anchored
        self._file_path = file_path
        self._checkpoint_every = max(1, checkpoint_every)
        self._checkpoint_seconds = checkpoint_seconds
        self._checkpoint_due = time.monotonic() + checkpoint_seconds
        # The highest event this process saw committed: a chain found shorter was cut.
        self._committed_seq = 0
        self._pending: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._scheduled = False
        self._running = False
        self._postgres = engine.dialect.name == "postgresql"
        self._raw_conn: Any = None
        self._busy_since: float | None = None
        self._last_flushed = 0
        # PostgreSQL: group commits run on one flusher thread and callers wait at most
        # this long (a hung server must not freeze the event loop or the request).
        self._wait = wait_bound(engine)
        self._flusher: ThreadPoolExecutor | None = None
        self._flushing = False
        # The last failed write (monotonic time, why), cleared by the next success.
        self._failed_at: float | None = None
        self._failure = ""

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._running = True

    def stop(self) -> None:
        self._running = False
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.shutdown(wait=False, cancel_futures=True)
        conn, self._raw_conn = self._raw_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # -- appending -----------------------------------------------------------------------

    async def record(self, event: AuditEvent) -> None:
        """Append ``event`` and wait until it is durable; raises AuditUnavailable.

        Events recorded in the same turn of the event loop are written in one group
        commit. On SQLite it runs on the loop itself right after the requests that
        produced them (a hand-off to a thread cost more in GIL switches than the write,
        and it never waits: busy_timeout is 0 there). On PostgreSQL it runs on a flusher
        thread and the wait is bounded.
        """
        if not self._running:
            raise AuditUnavailable("audit log is not running")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((event, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_pending)
        if self._wait is None:
            await fut
            return
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._wait)
        except TimeoutError:
            # Not written yet: take it back if no flush has taken it.
            with contextlib.suppress(ValueError):
                self._pending.remove((event, fut))
            fut.cancel()  # a flush that settles it later skips it (nobody awaits it)
            raise AuditUnavailable(
                f"the audit trail could not be written within {self._wait:g} s"
            ) from None

    def record_sync(self, event: AuditEvent) -> None:
        """Append one event from synchronous code (any thread), durable on return."""
        if not self._running:
            raise AuditUnavailable("audit log is not running")
        try:
            with write_txn(self._engine) as conn:
                chained = self.append_in_txn(conn, [event])
        except Exception as exc:
            log.error("audit write failed, failing the operation closed: %s", exc)
            self._failed(exc)
            raise AuditUnavailable(_REFUSED) from exc
        self._failed_at = None
        self._committed(chained[-1].seq)

    def _flush_pending(self) -> None:
        self._scheduled = False
        if self._wait is not None:
            self._flush_in_thread()
            return
        batch, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        try:
            self._flush_raw([event for event, _ in batch])
        except _WriteLockBusy:
            # Another process is committing. Retry in a moment instead of sleeping in
            # SQLite's busy handler, which would stall every request on this loop.
            now = loop.time()
            if self._busy_since is None:
                self._busy_since = now
            if now - self._busy_since < _BUSY_GIVE_UP_SECONDS:
                self._pending = batch + self._pending
                self._scheduled = True
                loop.call_later(_BUSY_RETRY_SECONDS, self._flush_pending)
                return
            self._fail(batch, "the audit database stayed locked")
            return
        except Exception as exc:
            self._fail(batch, str(exc), exc)
            return
        self._busy_since = None
        self._succeeded(batch)

    def _succeeded(self, batch: list[tuple[AuditEvent, asyncio.Future[None]]]) -> None:
        self._failed_at = None
        self._committed(self._last_flushed)
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    def _flush_in_thread(self) -> None:
        """One group commit on the flusher thread; what is recorded meanwhile waits for
        the next one (started when this one ends)."""
        if self._flushing or not self._pending or not self._running:
            return
        batch, self._pending = self._pending, []
        if self._flusher is None:
            self._flusher = ThreadPoolExecutor(1, thread_name_prefix="ks-audit")
        self._flushing = True
        events = [event for event, _ in batch]
        done = self._flusher.submit(self._flush_raw, events)
        loop = asyncio.get_running_loop()

        def settle(f: Future[None]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(self._flushed_in_thread, batch, f)

        done.add_done_callback(settle)

    def _flushed_in_thread(
        self, batch: list[tuple[AuditEvent, asyncio.Future[None]]], done: Future[None]
    ) -> None:
        self._flushing = False
        if done.cancelled():
            self._fail(batch, "the audit log stopped")
            return
        exc = done.exception()
        if exc is not None:
            self._fail(batch, str(exc), exc)
        else:
            self._succeeded(batch)
        self._flush_in_thread()

    def _committed(self, seq: int) -> None:
        self._committed_seq = max(self._committed_seq, seq)

    def _failed(self, exc: BaseException | str) -> None:
        if isinstance(exc, Sealed):
            return  # no key to sign with while sealed: health says "sealed" already
        why = str(exc)
        self._failed_at, self._failure = time.monotonic(), why.splitlines()[0] if why else ""

    def sink_problem(self, recent_seconds: float = 5.0) -> str | None:
        """Why the audit trail cannot be written now, or None (blocking: it opens the
        audit file; call it off the event loop). A failed write counts for
        ``recent_seconds`` unless one succeeded since: a node kept out of its balancer
        gets no traffic, so nothing else would ever clear it."""
        if not self._running:
            return "the audit log is not running"
        failed_at = self._failed_at
        if failed_at is not None and time.monotonic() - failed_at < recent_seconds:
            return f"the last audit write failed: {self._failure}"
        if self._file_path is not None:
            try:
                fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.close(fd)
            except OSError as exc:
                return f"the audit file cannot be written: {exc.strerror}"
        return None

    def _fail(
        self,
        batch: list[tuple[AuditEvent, asyncio.Future[None]]],
        why: str,
        exc: BaseException | None = None,
    ) -> None:
        self._failed(exc if exc is not None else why)
        self._busy_since = None
        log.error("audit write failed, failing %d operations closed: %s", len(batch), why)
        error = AuditUnavailable(_REFUSED)
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(error)

    def append_in_txn(self, conn: Connection, events: list[AuditEvent]) -> list[ChainedEvent]:
        """Append inside the caller's write transaction (commits or rolls back with it).

        Raises AuditUnavailable when a sink cannot be written.
        """
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            return self.append_with_cursor(cur, events)
        finally:
            cur.close()

    def _write_file(self, chained: list[ChainedEvent], checkpoint: Checkpoint | None) -> None:
        data = b"".join(orjson.dumps(c.as_json()) + b"\n" for c in chained)
        if checkpoint is not None:
            data += orjson.dumps(checkpoint.as_json()) + b"\n"
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

    def append_with_cursor(self, cur: Any, events: list[AuditEvent]) -> list[ChainedEvent]:
        """Append inside the transaction open on a driver cursor (no ORM overhead).

        Raises AuditUnavailable when a sink cannot be written (the caller rolls back).
        """
        try:
            return self._append_cursor(cur, events)
        except KeysafeError:
            raise
        except Exception as exc:
            # The reason (paths, driver text) goes to the log, never to the client.
            log.error("audit event could not be written: %s", exc)
            raise AuditUnavailable(_REFUSED) from exc

    def _append_cursor(self, cur: Any, events: list[AuditEvent]) -> list[ChainedEvent]:
        # Only placeholders and fixed clauses are interpolated into the SQL below (S608).
        p = "%s" if self._postgres else "?"
        lock = " FOR UPDATE" if self._postgres else ""
        cur.execute(f"SELECT seq, hash, mac FROM audit_head WHERE id = 1{lock}")  # noqa: S608
        head = cur.fetchone()
        seq, prev = (int(head[0]), bytes(head[1])) if head else (0, GENESIS_HASH)
        key = self._key()
        broken = self._head_problem(key, head)
        if broken:
            # Appending re-signs the head, which would bless a cut tail. Say so in the
            # chain itself first: verify reports this event until the trail is restored.
            log.error("the audit chain was cut or its head altered: %s", broken)
            events = [_cut_event(seq, broken), *events]
            # Recorded once: from here the chain is anchored at that event. (Rolled back
            # with the caller's transaction, the head is found behind it again.)
            self._committed_seq = seq + 1
        if self._node:
            node = self._node
            events = [e if e.node else replace(e, node=node) for e in events]
        chained = chain(key, seq, prev, events)
        cur.executemany(
            _INSERT_EVENT_SQL.replace("?", p),
            [
                (
                    c.seq,
                    e.ts,
                    e.request_id,
                    e.actor,
                    e.source,
                    e.operation,
                    e.path,
                    e.outcome,
                    e.detail,
                    c.prev_hash,
                    c.hash,
                    e.node,
                )
                for c in chained
                for e in (c.event,)
            ],
        )
        last = chained[-1]
        mac = head_mac(key, last.seq, last.hash)  # one MAC per group commit
        if head is None:
            cur.execute(
                f"INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, {p}, {p}, {p})",  # noqa: S608
                (last.seq, last.hash, mac),
            )
        else:
            cur.execute(
                f"UPDATE audit_head SET seq = {p}, hash = {p}, mac = {p} WHERE id = 1",  # noqa: S608
                (last.seq, last.hash, mac),
            )
        checkpoint = self._checkpoint_if_due(cur, key, seq, last)
        if self._file_path is not None:
            self._write_file(chained, checkpoint)
        if checkpoint is not None:
            # A third copy, outside the database and the file: the server log.
            _checkpoint_log.info(
                "audit checkpoint %d: seq=%d hash=%s ts=%d mac=%s",
                checkpoint.n,
                checkpoint.seq,
                checkpoint.hash.hex(),
                checkpoint.ts,
                checkpoint.mac.hex(),
            )
        return chained

    def _head_problem(self, key: bytes, head: Any) -> str:
        """Why the head row cannot be trusted to append after ("" when it can)."""
        if head is None:
            missing = "the chain head is missing (every event was deleted)"
            return missing if self._anchored() else ""
        stored = Head(int(head[0]), bytes(head[1]), None if head[2] is None else bytes(head[2]))
        if stored.seq < self._committed_seq:
            return (
                f"the head records event {stored.seq}, this server committed event"
                f" {self._committed_seq}"
            )
        if stored.mac is None:
            # Heads written before the MAC existed are re-signed by this append; an
            # anchored vault never had one without a MAC.
            return "the chain head carries no MAC" if self._anchored() else ""
        if not stored.valid(key):
            return f"the chain head (event {stored.seq}) was altered or moved back"
        return ""

    def _checkpoint_if_due(
        self, cur: Any, key: bytes, before: int, last: ChainedEvent
    ) -> Checkpoint | None:
        """Sign and store a checkpoint when the batch crossed a multiple of
        ``checkpoint_every`` or this process has not made one for ``checkpoint_seconds``."""
        every, now = self._checkpoint_every, time.monotonic()
        if before // every == last.seq // every and now < self._checkpoint_due:
            return None
        self._checkpoint_due = now + self._checkpoint_seconds
        cur.execute("SELECT MAX(n) FROM audit_checkpoints")
        found = cur.fetchone()
        n = int(found[0] or 0) + 1 if found else 1
        cp = Checkpoint.make(key, n, last.seq, last.hash, time.time_ns() // 1000)
        cur.execute(
            _INSERT_CHECKPOINT_SQL.replace("?", "%s" if self._postgres else "?"),
            (cp.n, cp.seq, cp.hash, cp.ts, cp.mac),
        )
        return cp

    def _flush_raw(self, events: list[AuditEvent]) -> None:
        """One group commit on the flusher's own driver connection (no ORM overhead)."""
        conn = self._raw_conn
        if conn is None:
            conn = self._raw_conn = self._engine.raw_connection()
            if self._postgres:
                conn.driver_connection.autocommit = True  # type: ignore[union-attr]
            else:
                setup = conn.cursor()
                # Never wait inside SQLite on this connection (see _flush_pending), and
                # leave checkpoints (an fsync) to the background checkpointer.
                setup.execute("PRAGMA busy_timeout=0")
                setup.execute("PRAGMA wal_autocheckpoint=0")
                setup.close()
        cur = conn.cursor()
        try:
            try:
                cur.execute("BEGIN" if self._postgres else "BEGIN IMMEDIATE")
            except Exception as exc:
                if not self._postgres and "locked" in str(exc):
                    raise _WriteLockBusy from exc
                raise
            try:
                chained = self.append_with_cursor(cur, events)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            self._last_flushed = chained[-1].seq
        except _WriteLockBusy:
            raise
        except Exception:
            # A broken connection is replaced on the next flush.
            self._raw_conn = None
            with contextlib.suppress(Exception):
                conn.invalidate()
            raise
        finally:
            with contextlib.suppress(Exception):
                cur.close()

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
        """Walk the database chain; name the first event altered, missing or moved, and
        find truncation against the head MAC, the checkpoints (table and file) and the
        highest event this process committed."""
        return verify_database(
            self._engine, self._key(), self._anchored(), self._file_path, self._committed_seq
        )

    def verify_file(self, path: Path | None = None) -> VerifyResult:
        """Walk the JSON-lines copy of the chain the same way, and find a cut file
        against the database's signed head and latest checkpoint."""
        path = path or self._file_path
        if path is None:
            return VerifyResult(ok=False, events=0, reason="no audit file is configured")
        return verify_file(self._engine, self._key(), self._anchored(), path)
