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
from concurrent.futures import Future, InvalidStateError
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from keysafe.errors import KeysafeError, StorageUnavailable
from keysafe.store.engine import write_txn
from keysafe.store.invalidations import after_commit_mark, drop_after_commit
from keysafe.store.offload import wait_bound

T = TypeVar("T")
log = logging.getLogger("keysafe.store")

_MAX_BATCH = 256
_STOP = object()
_Item = tuple[Callable[[Connection], Any], Future[Any]]


class WriteBatcher:
    """One writer thread per instance; see the module docstring.

    The thread outlives any caller: a caller that gives up (its task cancelled while the
    operation waits or runs) is skipped or ignored, never answered into an error here.
    Should the thread still die, the next ``submit`` starts a new one (and logs it), and
    ``alive`` is False until then so that health reports it.
    """

    def __init__(self, engine: Engine, name: str = "keysafe-writer") -> None:
        self._engine = engine
        self._name = name
        self._wait = wait_bound(engine)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.restarts = 0

    @property
    def alive(self) -> bool:
        """False only when the writer thread was started and has died (not yet
        restarted): writes would wait until the next ``submit`` restarts it."""
        thread = self._thread
        return thread is None or thread.is_alive()

    def _ensure_started(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive():
                return
            if thread is not None:
                self.restarts += 1
                log.error("the %s thread had died: restarting it", self._name)
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def revive(self) -> bool:
        """Restart the writer thread if it died (logged); True when it did. The server's
        poll loop calls it, so that a node nobody writes to comes back by itself."""
        if self.alive:
            return False
        self._ensure_started()
        return True

    def submit(self, fn: Callable[[Connection], T]) -> Future[T]:
        """Queue ``fn(conn)``; the future resolves after its transaction committed."""
        fut: Future[T] = Future()
        self._queue.put((fn, fut))
        # After the put: a thread restarted here finds the item already queued.
        self._ensure_started()
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
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout=10)

    def _loop(self) -> None:
        batch: list[_Item] = []
        try:
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
                try:
                    self._run_batch(batch)
                except Exception as exc:  # a bug here must not strand callers or the thread
                    log.exception("write batch of %d broke the writer", len(batch))
                    _fail_all(batch, exc)
                batch = []
                if stop:
                    return
        except BaseException as exc:
            # Only something like SystemExit gets here: the thread ends, its callers
            # learn why, and the next submit starts a new thread.
            log.error("the %s thread died: %r", self._name, exc)
            _fail_all(batch, exc)

    def _run_batch(self, batch: list[_Item]) -> None:
        # A caller that was cancelled before its turn is skipped; once marked running a
        # future can no longer be cancelled, so the answer below always lands.
        batch = [(fn, fut) for fn, fut in batch if fut.set_running_or_notify_cancel()]
        if not batch:
            return
        outcomes: list[tuple[bool, Any]] = []
        try:
            with write_txn(self._engine) as conn:
                for fn, _ in batch:
                    savepoint = conn.begin_nested()
                    mark = after_commit_mark(conn)
                    try:
                        result = fn(conn)
                    except BaseException as exc:
                        savepoint.rollback()
                        # What it meant to do after the commit (an audit file line, an
                        # announcement) is rolled back with it.
                        drop_after_commit(conn, mark)
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
                _settle(fut, False, own[1] if own is not None and not own[0] else error)
            return
        for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
            _settle(fut, ok, value)


def _settle(fut: Future[Any], ok: bool, value: Any) -> None:
    """Answer ``fut`` unless it is already answered (never raises)."""
    try:
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
    except InvalidStateError:
        pass  # answered already (by _fail_all after a crash): nothing left to tell


def _fail_all(batch: list[_Item], exc: BaseException) -> None:
    """Answer every caller of ``batch`` still waiting with StorageUnavailable."""
    error = StorageUnavailable(f"the write could not be committed: {type(exc).__name__}")
    for _, fut in batch:
        if not fut.done():
            if not fut.running() and not fut.set_running_or_notify_cancel():
                continue
            _settle(fut, False, error)
