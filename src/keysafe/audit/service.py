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
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from keysafe.audit.chains import Appended, ChainAppender, log_checkpoint
from keysafe.audit.file_verify import verify_file
from keysafe.audit.filesink import FileSink
from keysafe.audit.models import AuditEvent, ChainedEvent, chained_from_row, head_mac
from keysafe.audit.trail_verify import verify_database
from keysafe.audit.verify import VerifyResult
from keysafe.errors import AuditUnavailable, InvalidInput, KeysafeError, NotFound, Sealed
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.invalidations import after_commit
from keysafe.store.offload import wait_bound
from keysafe.store.tables import audit_events, audit_head

log = logging.getLogger("keysafe.audit")
# Checkpoints on their own logger, which the server sends to its log at INFO.
CHECKPOINT_LOGGER = "keysafe.audit.checkpoint"

_BUSY_RETRY_SECONDS = 0.0005
_BUSY_GIVE_UP_SECONDS = 5.0


class _WriteLockBusy(Exception):
    """SQLite's write lock is held by another connection right now."""


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
        self._sink = FileSink(file_path) if file_path is not None else None
        self._chains = ChainAppender(
            engine,
            key,
            anchored,
            node,
            checkpoint_every=checkpoint_every,
            checkpoint_seconds=checkpoint_seconds,
            file_writer=self._write_tracked if file_path is not None else None,
        )
        self._pending: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._scheduled = False
        self._running = False
        self._postgres = engine.dialect.name == "postgresql"
        self._raw_conn: Any = None
        self._busy_since: float | None = None
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
                self.append_in_txn(conn, [event])
        except Exception as exc:
            log.error("audit write failed, failing the operation closed: %s", exc)
            self._failed(exc)
            raise AuditUnavailable(_REFUSED) from exc
        self._failed_at = None

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
        return None if self._sink is None else self._sink.problem()

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
        """Append inside the caller's write transaction (opened by ``write_txn``: it
        commits or rolls back with it, and reaches the audit file only once committed).

        Raises AuditUnavailable when the events cannot be written.
        """
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            return self.append_with_cursor(cur, events, conn)
        finally:
            cur.close()

    def append_with_cursor(
        self, cur: Any, events: list[AuditEvent], conn: Connection
    ) -> list[ChainedEvent]:
        """Append inside the transaction open on a driver cursor of ``conn`` (opened by
        ``write_txn``), with no ORM overhead. Raises AuditUnavailable (the caller rolls
        back)."""
        appended = self._append(cur, events)
        after_commit(conn, lambda: self._after_commit(appended))
        return appended.chained

    def _append(self, cur: Any, events: list[AuditEvent]) -> Appended:
        # Fail closed before the commit: the lines can only be written after it.
        if self._sink is not None and self._sink.problem() is not None:
            raise AuditUnavailable(_REFUSED)
        try:
            return self._chains.append(cur, events)
        except KeysafeError:
            raise
        except Exception as exc:
            # The reason (paths, driver text) goes to the log, never to the client.
            log.error("audit event could not be written: %s", exc)
            raise AuditUnavailable(_REFUSED) from exc

    def _after_commit(self, appended: Appended, *, refuse: bool = False) -> None:
        """The events are stored: note it, and only now copy them to the file.

        When the file write fails, health reports the sink and the next appends are
        refused for a while (see FileSink). ``refuse`` (the group commit of events
        recorded before answering) also raises, so those requests fail closed: a read
        never answers with a value whose audit line was not written. A change made in
        its own transaction has committed already and stands."""
        self._chains.committed(appended.chain, appended.chained[-1].chain_seq)
        if appended.checkpoint is not None:
            log_checkpoint(appended.checkpoint)
        if appended.lines:
            try:
                self._write_tracked(appended.lines)
            except OSError:
                if refuse:
                    raise

    def _write_tracked(self, data: bytes) -> None:
        assert self._sink is not None
        try:
            self._sink.write(data)
        except OSError as exc:
            self._failed(exc)
            raise

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
                appended = self._append(cur, events)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
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
        self._after_commit(appended, refuse=True)

    # -- reading and verifying -----------------------------------------------------------

    def events(self, after: int = 0, limit: int = 100) -> list[ChainedEvent]:
        with read_conn(self._engine) as conn:
            rows = conn.execute(
                select(audit_events)
                .where(audit_events.c.seq > after)
                .order_by(audit_events.c.seq)
                .limit(limit)
            )
            return [chained_from_row(r) for r in rows]

    def verify(self) -> VerifyResult:
        """Walk the database chain; name the first event altered, missing or moved, and
        find truncation against the head MAC, the checkpoints (table and file) and the
        highest event this process committed."""
        return verify_database(
            self._engine,
            self._key(),
            self._anchored(),
            self._file_path,
            self._chains.committed_positions(),
        )

    def verify_file(self, path: Path | None = None) -> VerifyResult:
        """Walk a node's JSON-lines file (this node's by default) chain by chain, and
        find a cut file against the database's signed heads and checkpoints."""
        own = path is None
        path = path or self._file_path
        if path is None:
            return VerifyResult(ok=False, events=0, reason="no audit file is configured")
        node = self._node if own else ""
        return verify_file(self._engine, self._key(), self._anchored(), path, node)

    def node_file(self, name: str) -> Path:
        """Another node's audit file, named relative to this node's audit directory (the
        only place a caller may point the server at). Raises InvalidInput or NotFound."""
        if self._file_path is None:
            raise InvalidInput("this node has no audit file, so no audit directory")
        folder = self._file_path.parent.resolve()
        candidate = (folder / name).resolve()
        if candidate.parent != folder:
            raise InvalidInput("the audit file must be in this node's audit directory")
        if not candidate.is_file():
            raise NotFound("no such audit file in this node's audit directory")
        return candidate
