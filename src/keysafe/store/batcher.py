"""Group commit for writes: many small write operations, one transaction.

Concurrent writers on SQLite (and on one PostgreSQL row lock) spend their time waiting
for each other; SQLite's busy handler sleeps in whole milliseconds. One writer thread per
process instead takes every queued operation, runs each inside its own SAVEPOINT of one
transaction (so a failed check-and-set rolls back only itself), commits once, and only
then answers each caller. An operation's result is durable when its caller sees it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from keysafe.errors import KeysafeError, StorageUnavailable
from keysafe.store.engine import write_txn
from keysafe.store.offload import wait_bound

T = TypeVar("T")
log = logging.getLogger("keysafe.store")

_MAX_BATCH = 256
_STOP = object()


class WriteBatcher:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wait = wait_bound(engine)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="keysafe-writer", daemon=True
                    )
                    self._thread.start()

    def submit(self, fn: Callable[[Connection], T]) -> Future[T]:
        """Queue ``fn(conn)``; the future resolves after its transaction committed."""
        self._ensure_started()
        fut: Future[T] = Future()
        self._queue.put((fn, fut))
        return fut

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)``'s result once committed. On PostgreSQL the wait is bounded
        (StorageUnavailable): a hung server must not hold requests forever; the write
        may then still commit when the server wakes, as with any lost answer."""
        fut = asyncio.wrap_future(self.submit(fn))
        if self._wait is None:
            return await fut
        try:
            # Shielded: the writer thread must still be able to settle the future.
            return await asyncio.wait_for(asyncio.shield(fut), self._wait)
        except TimeoutError:
            raise StorageUnavailable(
                f"the database did not answer within {self._wait:g} s"
            ) from None

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        return self.submit(fn).result()

    def stop(self) -> None:
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[tuple[Callable[[Connection], Any], Future[Any]]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with write_txn(self._engine) as conn:
                for fn, _ in batch:
                    savepoint = conn.begin_nested()
                    try:
                        result = fn(conn)
                    except BaseException as exc:
                        savepoint.rollback()
                        outcomes.append((False, exc))
                    else:
                        savepoint.commit()
                        outcomes.append((True, result))
        except Exception as exc:
            # The transaction itself failed (lock timeout, disk, connection): nothing of
            # this batch is stored; each caller learns why (its own error if it had one).
            error = (
                exc
                if isinstance(exc, KeysafeError)
                else StorageUnavailable(f"the write could not be committed: {type(exc).__name__}")
            )
            log.error("write batch of %d failed: %s", len(batch), exc)
            for index, (_, fut) in enumerate(batch):
                own = outcomes[index] if index < len(outcomes) else None
                fut.set_exception(own[1] if own is not None and not own[0] else error)
            return
        for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
